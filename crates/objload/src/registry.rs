//! The registry of loaded libraries, the handles that keep them alive, and loaded programs.
//!
//! A [`Library`] is shared (`Arc`) between the registry and whatever needs it: a [`Dependency`] held by
//! each library or [`Program`] that resolved a symbol against it, and a [`FunctionHandle`] per function a
//! caller looked up. Each kind is counted, so [`Registry::unload_library`] can refuse while any remain and
//! say which. A library's destructors run and its memory is released when its last holder lets go, which
//! after a successful unload is the registry itself.
//!
//! # Safety
//! The unsafe blocks call constructors, destructors and `main` at addresses taken from an image this crate
//! linked and sealed read-execute; running loaded code is the purpose of the crate, and the code is trusted
//! as the user's own (see [`Program::run`]).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CString, OsStr};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::archive;
use crate::error::Error;
use crate::host::{self, Host};
use crate::link::{self, Export, Found, Linked, Resolver};
use crate::object_file::ObjectFile;

/// A loaded library.
#[derive(Debug)]
pub struct Library {
    path: PathBuf,
    image: Linked,
    symbols: HashMap<String, Export>,
    constructed: AtomicBool,
    handles: AtomicUsize,
    dependents: AtomicUsize,
    // Declared after `image`: dropped after it, so this library's destructors run while what they call is
    // still loaded.
    deps: Vec<Dependency>,
}

impl Library {
    /// The path it was loaded from (made absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The global functions it defines, by name.
    pub fn functions(&self) -> impl Iterator<Item = &Export> {
        self.image.exports.iter().filter(|e| e.is_function)
    }

    /// Function handles callers hold.
    pub fn handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    /// Loaded libraries and programs that resolved symbols against it.
    pub fn dependents(&self) -> usize {
        self.dependents.load(Ordering::Acquire)
    }

    /// Where its image is mapped, and how large it is.
    pub fn image(&self) -> (u64, usize) {
        (self.image.mapping.addr(), self.image.mapping.len())
    }

    /// Relocations applied when it was linked.
    pub fn relocations(&self) -> usize {
        self.image.relocations
    }

    fn run_constructors(&self) {
        if !self.constructed.swap(true, Ordering::AcqRel) {
            run_all(&self.image.init);
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        if *self.constructed.get_mut() {
            run_all(&self.image.fini);
        }
    }
}

fn run_all(functions: &[u64]) {
    for &f in functions {
        // SAFETY: `f` was read from a relocated `.init_array`/`.fini_array` of an image this crate linked;
        // its code is mapped read-execute for as long as the image lives, which outlasts this call. Such
        // entries have the C type `void (*)(void)`.
        let f: extern "C" fn() =
            unsafe { std::mem::transmute::<usize, extern "C" fn()>(f as usize) };
        f();
    }
}

/// A counted reference from a library or program to a library it resolved symbols against.
#[derive(Debug)]
struct Dependency(Arc<Library>);

impl Dependency {
    fn new(lib: Arc<Library>) -> Self {
        lib.dependents.fetch_add(1, Ordering::AcqRel);
        Dependency(lib)
    }
}

impl Drop for Dependency {
    fn drop(&mut self) {
        self.0.dependents.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A function of a loaded library, found by name. While it is held, the library cannot be unloaded.
#[derive(Debug)]
pub struct FunctionHandle {
    lib: Arc<Library>,
    name: String,
    addr: u64,
}

impl FunctionHandle {
    /// The function's address. Call it through a function pointer of its C type.
    pub fn addr(&self) -> usize {
        self.addr as usize
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The library that defines it.
    pub fn library(&self) -> &Path {
        self.lib.path()
    }
}

impl Drop for FunctionHandle {
    fn drop(&mut self) {
        self.lib.handles.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A loaded program: its image, and the libraries it uses. Dropping it runs its destructors and unloads it.
#[derive(Debug)]
pub struct Program {
    name: String,
    image: Linked,
    entry: u64,
    // Held only to keep the libraries the program uses loaded (and counted) while it lives.
    _deps: Vec<Dependency>,
}

impl Program {
    /// The address of its `main`.
    pub fn entry(&self) -> usize {
        self.entry as usize
    }

    /// What it was loaded from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Relocations applied when it was linked.
    pub fn relocations(&self) -> usize {
        self.image.relocations
    }

    /// Runs `main(argc, argv, envp)` with `args` as `argv` (the first is the program's name) and the
    /// process environment, and returns what it returns.
    ///
    /// # Safety
    /// The program runs inside this process with all its rights: it can corrupt any memory or exit the
    /// process. The caller vouches for the code, and that its `main` has the C type
    /// `int main(int, char **, char **)` (or a prefix of it).
    pub unsafe fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> i32 {
        let owned: Vec<CString> = args
            .iter()
            .map(|a| {
                let bytes = a.as_ref().as_bytes();
                let cut = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                CString::new(&bytes[..cut]).unwrap_or_default()
            })
            .collect();
        let mut argv: Vec<*const c_char> = owned.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let argc = c_int::try_from(owned.len()).unwrap_or(c_int::MAX);
        extern "C" {
            static environ: *const *const c_char;
        }
        type Main = extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
        // SAFETY: `entry` is the relocated address of the image's `main`, mapped read-execute while `self`
        // lives; the caller vouched for its C type. `environ` is libc's, read once.
        unsafe {
            let main = std::mem::transmute::<usize, Main>(self.entry as usize);
            main(argc, argv.as_ptr(), environ)
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        run_all(&self.image.fini);
    }
}

/// A snapshot of one loaded library, for listings.
#[derive(Clone, Debug)]
pub struct LibraryInfo {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Its global functions and their addresses, sorted by name.
    pub functions: Vec<(String, usize)>,
    /// Libraries and programs depending on it.
    pub dependents: usize,
    /// Function handles held on it.
    pub handles: usize,
}

/// The loaded libraries and the functions they define.
#[derive(Debug, Default)]
pub struct Registry {
    libraries: Vec<Arc<Library>>,
    functions: HashMap<String, Arc<Library>>,
}

struct Lookup<'a> {
    host: &'a Host,
    libraries: &'a [Arc<Library>],
    functions: Option<&'a HashMap<String, Arc<Library>>>,
}

impl Resolver for Lookup<'_> {
    fn check_functions(&self, names: &[&str]) -> Result<(), Error> {
        let Some(functions) = self.functions else {
            return Ok(());
        };
        for name in names {
            if let Some(lib) = functions.get(*name) {
                return Err(Error::DuplicateFunction {
                    name: (*name).to_owned(),
                    defined_by: lib.path.clone(),
                });
            }
        }
        Ok(())
    }

    fn resolve(&mut self, name: &[u8]) -> Result<Option<Found>, Error> {
        if let Some(s) = self.host.symbol(name) {
            return Ok(Some(Found {
                addr: s.addr,
                is_function: s.is_function,
                library: None,
            }));
        }
        if let Some(s) = host::dynamic_symbol(name) {
            return Ok(Some(Found {
                addr: s.addr,
                is_function: s.is_function,
                library: None,
            }));
        }
        let Ok(name) = std::str::from_utf8(name) else {
            return Ok(None);
        };
        for (i, lib) in self.libraries.iter().enumerate() {
            if let Some(e) = lib.symbols.get(name) {
                return Ok(Some(Found {
                    addr: e.addr,
                    is_function: e.is_function,
                    library: Some(i),
                }));
            }
        }
        Ok(None)
    }

    fn host_range(&self) -> Option<(u64, u64)> {
        Some(self.host.range)
    }
}

/// Where an input came from.
enum Source<'a> {
    File(&'a Path),
    Bytes(&'a str, &'a [u8]),
}

fn read(source: &Source<'_>) -> Result<(String, std::borrow::Cow<'static, [u8]>), Error> {
    match source {
        Source::File(path) => {
            let data = std::fs::read(path).map_err(|e| Error::Io {
                path: path.to_path_buf(),
                source: e,
            })?;
            Ok((path.display().to_string(), data.into()))
        }
        Source::Bytes(name, data) => Ok(((*name).to_owned(), data.to_vec().into())),
    }
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

impl Registry {
    /// An empty registry (the free functions of the crate use a process-wide one).
    pub fn new() -> Self {
        Self::default()
    }

    fn link(
        &self,
        source: &Source<'_>,
        as_library: bool,
    ) -> Result<(String, Linked, Vec<Dependency>), Error> {
        let host = host::host()?;
        let (display, data) = read(source)?;
        let members = archive::members(&display, &data)?;
        let mut objects = Vec::with_capacity(members.len());
        for m in &members {
            objects.push(ObjectFile::parse(
                &archive::member_label(&display, m),
                m.data,
            )?);
        }
        let mut lookup = Lookup {
            host: &host,
            libraries: &self.libraries,
            functions: as_library.then_some(&self.functions),
        };
        let linked = link::link(&display, &objects, &mut lookup)?;
        let deps = linked
            .used_libraries
            .iter()
            .filter_map(|&i| self.libraries.get(i))
            .map(|l| Dependency::new(Arc::clone(l)))
            .collect();
        Ok((display, linked, deps))
    }

    /// Links the library at `path` without registering it or running its constructors.
    pub(crate) fn prepare_library(&self, path: &Path) -> Result<Arc<Library>, Error> {
        let abs = absolute(path)?;
        if self.libraries.iter().any(|l| l.path == abs) {
            return Err(Error::AlreadyLoaded { path: abs });
        }
        let (_, image, deps) = self.link(&Source::File(&abs), true)?;
        let symbols = image
            .exports
            .iter()
            .map(|e| (e.name.clone(), e.clone()))
            .collect();
        Ok(Arc::new(Library {
            path: abs,
            image,
            symbols,
            constructed: AtomicBool::new(false),
            handles: AtomicUsize::new(0),
            dependents: AtomicUsize::new(0),
            deps,
        }))
    }

    /// Registers a prepared library; the conflict checks were made when it was linked against `self`.
    pub(crate) fn commit(&mut self, lib: &Arc<Library>) {
        for f in lib.functions() {
            self.functions.insert(f.name.clone(), Arc::clone(lib));
        }
        self.libraries.push(Arc::clone(lib));
    }

    /// Loads the object or archive at `path` as a library, registers its global functions and runs its
    /// constructors. Nothing is registered if any step fails.
    pub fn load_library(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        let lib = self.prepare_library(path.as_ref())?;
        self.commit(&lib);
        lib.run_constructors();
        Ok(())
    }

    /// Loads the object or archive at `path` as a program and runs its constructors. It must define `main`.
    pub fn load_program(&self, path: impl AsRef<Path>) -> Result<Program, Error> {
        self.program(&Source::File(path.as_ref()))
    }

    /// Like [`Registry::load_program`], from bytes in memory, named `name` in messages.
    pub fn load_program_bytes(&self, name: &str, data: &[u8]) -> Result<Program, Error> {
        self.program(&Source::Bytes(name, data))
    }

    /// Links a program without running its constructors.
    pub(crate) fn prepare_program(&self, path: &Path) -> Result<Program, Error> {
        self.prepare(&Source::File(path))
    }

    pub(crate) fn prepare_program_bytes(&self, name: &str, data: &[u8]) -> Result<Program, Error> {
        self.prepare(&Source::Bytes(name, data))
    }

    fn prepare(&self, source: &Source<'_>) -> Result<Program, Error> {
        let (name, image, deps) = self.link(source, false)?;
        let entry = image
            .exports
            .iter()
            .find(|e| e.name == "main" && e.is_function)
            .map(|e| e.addr);
        let Some(entry) = entry else {
            return Err(Error::NoMain { path: name });
        };
        Ok(Program {
            name,
            image,
            entry,
            _deps: deps,
        })
    }

    fn program(&self, source: &Source<'_>) -> Result<Program, Error> {
        let p = self.prepare(source)?;
        run_all(&p.image.init);
        Ok(p)
    }

    /// The address of `name`, a global function of a loaded library, as a handle that keeps the library
    /// loaded until dropped.
    pub fn find_library_function(&self, name: &str) -> Result<FunctionHandle, Error> {
        let lib = self
            .functions
            .get(name)
            .ok_or_else(|| Error::FunctionNotFound {
                name: name.to_owned(),
            })?;
        let addr =
            lib.symbols
                .get(name)
                .map(|e| e.addr)
                .ok_or_else(|| Error::FunctionNotFound {
                    name: name.to_owned(),
                })?;
        lib.handles.fetch_add(1, Ordering::AcqRel);
        Ok(FunctionHandle {
            lib: Arc::clone(lib),
            name: name.to_owned(),
            addr,
        })
    }

    /// Takes the library at `path` out of the registry, if nothing needs it; the caller drops the result to
    /// run its destructors and release its memory.
    pub(crate) fn remove_library(&mut self, path: &Path) -> Result<Arc<Library>, Error> {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let Some(at) = self
            .libraries
            .iter()
            .position(|l| l.path == abs || l.path == path)
        else {
            return Err(Error::NotLoaded {
                path: path.to_path_buf(),
            });
        };
        let lib = &self.libraries[at];
        let handles = lib.handles();
        let dependents = lib.dependents();
        if handles > 0 || dependents > 0 {
            let needed_by: Vec<PathBuf> = self
                .libraries
                .iter()
                .filter(|other| other.deps.iter().any(|d| Arc::ptr_eq(&d.0, lib)))
                .map(|other| other.path.clone())
                .collect();
            let programs = dependents.saturating_sub(needed_by.len());
            return Err(Error::InUse {
                path: lib.path.clone(),
                needed_by,
                programs,
                handles,
            });
        }
        let lib = self.libraries.remove(at);
        self.functions.retain(|_, l| !Arc::ptr_eq(l, &lib));
        Ok(lib)
    }

    /// Unloads the library at `path`: its functions can no longer be found, its destructors run and its
    /// memory is released. Refused while another library or a program depends on it, or a handle to one of
    /// its functions is held.
    pub fn unload_library(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        drop(self.remove_library(path.as_ref())?);
        Ok(())
    }

    /// The loaded libraries, in load order.
    pub fn libraries(&self) -> Vec<LibraryInfo> {
        self.libraries
            .iter()
            .map(|l| {
                let mut functions: Vec<(String, usize)> = l
                    .functions()
                    .map(|f| (f.name.clone(), f.addr as usize))
                    .collect();
                functions.sort();
                LibraryInfo {
                    path: l.path.clone(),
                    functions,
                    dependents: l.dependents(),
                    handles: l.handles(),
                }
            })
            .collect()
    }

    /// Runs a prepared library's constructors (once).
    pub(crate) fn construct(lib: &Library) {
        lib.run_constructors();
    }

    /// Runs a prepared program's constructors.
    pub(crate) fn construct_program(p: &Program) {
        run_all(&p.image.init);
    }
}
