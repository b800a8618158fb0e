//! The host: the running executable's own symbols, and the dynamic symbols of what it is linked with.
//!
//! The executable's symbol table is read from its file (`/proc/self/exe`) and shifted by the load bias of
//! the running image. Before trusting it, the file's `NT_GNU_BUILD_ID` note is compared with the one in the
//! running image's own `PT_NOTE` segments (found through `dl_iterate_phdr`, whose first entry is the main
//! program): an executable rebuilt on disk after this process started has a different build-id and is
//! refused, since its addresses would be wrong. The table is read once per process and cached.
//! Dynamic symbols (libc's `printf`, say) come from `dlsym(RTLD_DEFAULT, …)`, with their type from
//! `dladdr1`.
//!
//! # Safety
//! The unsafe blocks call `dl_iterate_phdr`, `dlsym` and `dladdr1`, and read the running image's program
//! headers and note segments, which the dynamic loader keeps mapped and readable for the process's life.

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use object::elf;
use object::read::elf::{FileHeader, NoteIterator, SectionHeader, Sym as _};
use object::LittleEndian as LE;

use crate::error::Error;

/// A symbol the host provides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HostSymbol {
    pub addr: u64,
    pub is_function: bool,
}

/// The running executable, as far as linking needs it.
#[derive(Debug)]
pub(crate) struct Host {
    symbols: HashMap<Box<[u8]>, HostSymbol>,
    /// `[lowest, highest)` address of its `PT_LOAD` segments.
    pub range: (u64, u64),
}

/// What the running image says about itself.
#[derive(Clone, Debug)]
pub(crate) struct RunningImage {
    pub bias: u64,
    pub range: (u64, u64),
    pub build_id: Option<Vec<u8>>,
}

impl Host {
    /// The executable's symbol `name`, if it defines it.
    pub(crate) fn symbol(&self, name: &[u8]) -> Option<HostSymbol> {
        self.symbols.get(name).copied()
    }
}

/// The host, read and checked on first use.
pub(crate) fn host() -> Result<Arc<Host>, Error> {
    static CACHE: Mutex<Option<Arc<Host>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(h) = cache.as_ref() {
        return Ok(Arc::clone(h));
    }
    let running = running_image()?;
    let host = Arc::new(read_host_file(Path::new("/proc/self/exe"), &running)?);
    *cache = Some(Arc::clone(&host));
    Ok(host)
}

fn gnu_build_id(notes: &mut NoteIterator<'_, elf::FileHeader64<LE>>) -> Option<Vec<u8>> {
    while let Ok(Some(note)) = notes.next() {
        if note.name() == elf::ELF_NOTE_GNU && note.n_type(LE) == elf::NT_GNU_BUILD_ID {
            return Some(note.desc().to_vec());
        }
    }
    None
}

struct Walk {
    image: Option<Result<RunningImage, &'static str>>,
}

unsafe extern "C" fn first_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut c_void,
) -> c_int {
    // SAFETY: `data` is the `&mut Walk` passed to `dl_iterate_phdr` below, alive for the whole call.
    let walk = unsafe { &mut *data.cast::<Walk>() };
    // SAFETY: `dl_iterate_phdr` passes a valid `dl_phdr_info` for the duration of the callback.
    let info = unsafe { &*info };
    walk.image = Some(describe(info));
    1 // The first object is the main program: stop.
}

fn describe(info: &libc::dl_phdr_info) -> Result<RunningImage, &'static str> {
    if info.dlpi_phdr.is_null() {
        return Err("the running image has no program headers");
    }
    // SAFETY: the loader's `dlpi_phdr` points to `dlpi_phnum` program headers of a mapped object.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let bias = info.dlpi_addr;
    let mut lo = u64::MAX;
    let mut hi = 0;
    let mut build_id = None;
    for ph in phdrs {
        match ph.p_type {
            libc::PT_LOAD => {
                lo = lo.min(bias.wrapping_add(ph.p_vaddr));
                hi = hi.max(bias.wrapping_add(ph.p_vaddr).wrapping_add(ph.p_memsz));
            }
            libc::PT_NOTE if build_id.is_none() => {
                let start = bias.wrapping_add(ph.p_vaddr) as *const u8;
                let len = usize::try_from(ph.p_memsz).map_err(|_| "PT_NOTE larger than memory")?;
                // SAFETY: a PT_NOTE segment of the running image lies inside one of its PT_LOAD segments,
                // which the kernel or the dynamic loader mapped readable and which stay mapped.
                let bytes = unsafe { std::slice::from_raw_parts(start, len) };
                if let Ok(mut notes) = NoteIterator::new(LE, ph.p_align.max(1), bytes) {
                    build_id = gnu_build_id(&mut notes);
                }
            }
            _ => {}
        }
    }
    if lo >= hi {
        return Err("the running image has no PT_LOAD segment");
    }
    Ok(RunningImage {
        bias,
        range: (lo, hi),
        build_id,
    })
}

/// Describes the running main program through `dl_iterate_phdr`.
pub(crate) fn running_image() -> Result<RunningImage, Error> {
    let mut walk = Walk { image: None };
    // SAFETY: the callback only reads the `dl_phdr_info` it is given and writes into `walk`, which outlives
    // the call.
    unsafe { libc::dl_iterate_phdr(Some(first_object), (&raw mut walk).cast::<c_void>()) };
    match walk.image {
        Some(Ok(image)) => Ok(image),
        Some(Err(what)) => Err(Error::Host {
            what: what.to_owned(),
        }),
        None => Err(Error::Host {
            what: "dl_iterate_phdr reported no main program".to_owned(),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the symbol table of the executable file at `path`, after checking that it is the build running as
/// `running`.
pub(crate) fn read_host_file(path: &Path, running: &RunningImage) -> Result<Host, Error> {
    let err = |what: String| Error::Host { what };
    let data = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let bad = |e: object::read::Error| err(format!("{}: {}", path.display(), e));
    let header = elf::FileHeader64::<LE>::parse(&*data).map_err(bad)?;
    let sections = header.sections(LE, &*data).map_err(bad)?;

    let mut file_id = None;
    for sh in sections.iter() {
        if let Ok(Some(mut notes)) = sh.notes(LE, &*data) {
            if let Some(id) = gnu_build_id(&mut notes) {
                file_id = Some(id);
                break;
            }
        }
    }
    let Some(running_id) = &running.build_id else {
        return Err(err(
            "the running image has no NT_GNU_BUILD_ID note, so its file cannot be checked; link it with \
             -Wl,--build-id"
                .to_owned(),
        ));
    };
    match &file_id {
        Some(id) if id == running_id => {}
        Some(id) => {
            return Err(err(format!(
                "{} was rebuilt since this process started (build-id {} on disk, {} running)",
                path.display(),
                hex(id),
                hex(running_id)
            )))
        }
        None => {
            return Err(err(format!(
                "{} has no NT_GNU_BUILD_ID note",
                path.display()
            )))
        }
    }

    let mut symbols = HashMap::new();
    let symtab = sections.symbols(LE, &*data, elf::SHT_SYMTAB).map_err(bad)?;
    let strings = symtab.strings();
    for sym in symtab.iter() {
        let bind = sym.st_bind();
        let st_type = sym.st_type();
        let shndx = sym.st_shndx(LE);
        if !(bind == elf::STB_GLOBAL || bind == elf::STB_WEAK)
            || !matches!(st_type, elf::STT_FUNC | elf::STT_OBJECT | elf::STT_NOTYPE)
            || shndx == elf::SHN_UNDEF
            || shndx == elf::SHN_ABS
        {
            continue;
        }
        let Ok(name) = sym.name(LE, strings) else {
            continue;
        };
        let addr = running.bias.wrapping_add(sym.st_value(LE));
        let entry = HostSymbol {
            addr,
            is_function: st_type == elf::STT_FUNC,
        };
        // A strong definition wins over a weak one of the same name.
        if bind == elf::STB_GLOBAL {
            symbols.insert(name.into(), entry);
        } else {
            symbols.entry(name.into()).or_insert(entry);
        }
    }
    Ok(Host {
        symbols,
        range: running.range,
    })
}

/// `dladdr1`'s request for the symbol's `Elf64_Sym` (glibc's `RTLD_DL_SYMENT`).
const RTLD_DL_SYMENT: c_int = 1;

/// `name` among the dynamic symbols visible from the host (`dlsym(RTLD_DEFAULT, name)`).
pub(crate) fn dynamic_symbol(name: &[u8]) -> Option<HostSymbol> {
    let mut buf = Vec::with_capacity(name.len() + 1);
    buf.extend_from_slice(name);
    buf.push(0);
    let cname = CStr::from_bytes_with_nul(&buf).ok()?;
    // SAFETY: `cname` is NUL-terminated and outlives the call; RTLD_DEFAULT searches the global scope.
    let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, cname.as_ptr()) };
    if addr.is_null() {
        return None;
    }
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let mut sym: *mut c_void = std::ptr::null_mut();
    // SAFETY: `info` and `sym` are valid out-pointers; `addr` came from dlsym.
    let found = unsafe { libc::dladdr1(addr, info.as_mut_ptr(), &mut sym, RTLD_DL_SYMENT) };
    let is_function = if found != 0 && !sym.is_null() {
        // SAFETY: with RTLD_DL_SYMENT, dladdr1 stores a pointer to the symbol's `Elf64_Sym` in the
        // object's mapped dynamic symbol table.
        let st_info = unsafe { (*sym.cast::<libc::Elf64_Sym>()).st_info };
        matches!(st_info & 0xf, elf::STT_FUNC | elf::STT_GNU_IFUNC)
    } else {
        false
    };
    Some(HostSymbol {
        addr: addr as u64,
        is_function,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_has_a_build_id_and_matches_its_file() {
        let running = running_image().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            running.build_id.as_ref().is_some_and(|id| id.len() >= 8),
            "no build-id in the running image"
        );
        let host =
            read_host_file(Path::new("/proc/self/exe"), &running).unwrap_or_else(|e| panic!("{e}"));
        let here = running_image as fn() -> Result<RunningImage, Error> as usize as u64;
        assert!(host.range.0 <= here && here < host.range.1);
    }

    #[test]
    fn a_rebuilt_executable_is_detected() {
        let running = running_image().unwrap_or_else(|e| panic!("{e}"));
        let Some(id) = running.build_id.clone() else {
            panic!("no build-id")
        };
        let mut file = std::fs::read("/proc/self/exe").unwrap_or_default();
        let at = file
            .windows(id.len())
            .position(|w| w == id.as_slice())
            .unwrap_or_else(|| panic!("id not in file"));
        file[at] ^= 0xff;
        let dir = std::env::temp_dir().join(format!("objload-host-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let copy = dir.join("rebuilt");
        std::fs::write(&copy, &file).unwrap_or_else(|e| panic!("{e}"));
        let err = read_host_file(&copy, &running)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            err.contains("was rebuilt since this process started"),
            "{err}"
        );
        assert!(err.contains(&hex(&id)), "{err}");
    }

    #[test]
    fn dynamic_symbols_come_with_their_type() {
        let puts = dynamic_symbol(b"puts").unwrap_or_else(|| panic!("no puts"));
        assert!(puts.is_function);
        let environ = dynamic_symbol(b"environ").unwrap_or_else(|| panic!("no environ"));
        assert!(!environ.is_function);
        assert_eq!(dynamic_symbol(b"objload_no_such_symbol_anywhere"), None);
    }
}
