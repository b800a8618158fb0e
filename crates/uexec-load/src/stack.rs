//! The initial process stack, laid out as the kernel's `exec.c` and `create_elf_tables` lay it out.
//!
//! From the top of the stack mapping down:
//!
//! ```text
//!   top            end of the mapping
//!   top - 8        one zero word
//!                  execfn string                       (AT_EXECFN)
//!                  envp strings, envp[0] lowest
//!   arg_start      argv strings, argv[0] lowest
//!                  0..8191 random bytes of padding, then aligned down to 16
//!                  platform string "x86_64"            (AT_PLATFORM)
//!                  16 random bytes                     (AT_RANDOM)
//!                  padding to make sp 16-byte aligned
//!                  auxv pairs, ending with AT_NULL
//!                  envp pointers, NULL
//!                  argv pointers, NULL
//!   sp             argc
//! ```
//!
//! The builder writes into a byte slice that stands for the highest bytes of the stack mapping, so the
//! layout is computed and checked without any system call (and unit-tested the same way).

use core::ffi::CStr;

/// Auxiliary-vector types this module handles (`include/uapi/linux/auxvec.h`).
pub mod at {
    pub const NULL: u64 = 0;
    pub const EXECFD: u64 = 2;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const PLATFORM: u64 = 15;
    pub const BASE_PLATFORM: u64 = 24;
    pub const RANDOM: u64 = 25;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
}

/// The most auxv entries copied from the loader's own vector (the kernel's `AT_VECTOR_SIZE` is smaller).
pub const MAX_AUXV: usize = 64;

/// The values that describe the loaded program rather than the machine.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramAux {
    /// AT_PHDR: address of the program headers in memory (0 if no segment holds them).
    pub phdr: u64,
    /// AT_PHNUM.
    pub phnum: u64,
    /// AT_ENTRY: the program's own entry point, even when an interpreter runs first.
    pub entry: u64,
    /// AT_BASE: the interpreter's load bias, or 0.
    pub base: u64,
}

/// Everything the stack is made of.
pub struct StackContents<'a, A, E> {
    pub argv: A,
    pub envp: E,
    /// The path as it would have been passed to `execve` (AT_EXECFN).
    pub execfn: &'a CStr,
    /// The loader's own auxiliary vector (without AT_NULL): machine values are copied from it in order,
    /// and the program's values replace the loader's.
    pub kernel_auxv: &'a [[u64; 2]],
    /// Strings the loader's AT_PLATFORM and AT_BASE_PLATFORM point at.
    pub platform: Option<&'a CStr>,
    pub base_platform: Option<&'a CStr>,
    pub program: ProgramAux,
    /// Fresh bytes for AT_RANDOM.
    pub random: [u8; 16],
    /// How far below the strings to start the tables (`arch_align_stack`: 0..8192, or 0 without ASLR).
    pub random_pad: u64,
}

/// Where the builder put things; all addresses are in the stack mapping.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct StackLayout {
    /// The initial stack pointer: the address of argc.
    pub sp: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    /// Address and length in bytes (AT_NULL included) of the auxiliary vector.
    pub auxv: u64,
    pub auxv_len: u64,
}

/// The stack mapping is too small for the arguments and environment (`E2BIG`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TooBig;

/// Writes into `mem`, which holds the bytes `[top - mem.len(), top)` of the new stack.
struct Writer<'m> {
    mem: &'m mut [u8],
    top: u64,
}

impl Writer<'_> {
    fn bottom(&self) -> u64 {
        self.top - self.mem.len() as u64
    }

    fn put(&mut self, addr: u64, bytes: &[u8]) -> Result<(), TooBig> {
        let start = addr.checked_sub(self.bottom()).ok_or(TooBig)?;
        let start = usize::try_from(start).map_err(|_| TooBig)?;
        let end = start.checked_add(bytes.len()).ok_or(TooBig)?;
        self.mem
            .get_mut(start..end)
            .ok_or(TooBig)?
            .copy_from_slice(bytes);
        Ok(())
    }

    fn put_word(&mut self, addr: u64, value: u64) -> Result<(), TooBig> {
        self.put(addr, &value.to_ne_bytes())
    }

    /// Copies `strings` upwards from `addr`, NULs included; returns the address after the last one.
    fn put_strings<'s>(
        &mut self,
        mut addr: u64,
        strings: impl Iterator<Item = &'s CStr>,
    ) -> Result<u64, TooBig> {
        for s in strings {
            let bytes = s.to_bytes_with_nul();
            self.put(addr, bytes)?;
            addr += bytes.len() as u64;
        }
        Ok(addr)
    }
}

/// Stores consecutive words upwards.
struct Words<'m> {
    writer: Writer<'m>,
    at: u64,
}

impl Words<'_> {
    fn push(&mut self, value: u64) -> Result<(), TooBig> {
        self.writer.put_word(self.at, value)?;
        self.at += 8;
        Ok(())
    }
}

fn total_len<'s>(strings: impl Iterator<Item = &'s CStr>) -> u64 {
    strings.map(|s| s.to_bytes_with_nul().len() as u64).sum()
}

fn below(addr: u64, len: u64) -> Result<u64, TooBig> {
    addr.checked_sub(len).ok_or(TooBig)
}

/// Builds the stack in `mem` (the top `mem.len()` bytes of a mapping ending at `top`), returning where
/// everything went. Nothing below the returned `sp` is written.
pub fn build<'a, 's, A, E>(
    mem: &mut [u8],
    top: u64,
    contents: StackContents<'a, A, E>,
) -> Result<StackLayout, TooBig>
where
    A: Iterator<Item = &'s CStr> + Clone,
    E: Iterator<Item = &'s CStr> + Clone,
{
    let mut w = Writer { mem, top };
    let mut layout = StackLayout::default();

    // Strings: the top word stays zero; then execfn, envp and argv strings below it, argv lowest.
    let execfn_len = contents.execfn.to_bytes_with_nul().len() as u64;
    let env_len = total_len(contents.envp.clone());
    let arg_len = total_len(contents.argv.clone());
    let strings_end = below(top, 8)?;
    layout.arg_start = below(strings_end, execfn_len + env_len + arg_len)?;
    layout.arg_end = w.put_strings(layout.arg_start, contents.argv.clone())?;
    layout.env_start = layout.arg_end;
    layout.env_end = w.put_strings(layout.env_start, contents.envp.clone())?;
    let execfn = layout.env_end;
    w.put_strings(execfn, core::iter::once(contents.execfn))?;

    // create_elf_tables: random padding, platform strings, random bytes.
    let mut p = below(layout.arg_start, contents.random_pad)? & !15;
    let mut string_at = |p: &mut u64, s: Option<&CStr>| -> Result<u64, TooBig> {
        let Some(s) = s else { return Ok(0) };
        *p = below(*p, s.to_bytes_with_nul().len() as u64)?;
        w.put(*p, s.to_bytes_with_nul())?;
        Ok(*p)
    };
    let platform = string_at(&mut p, contents.platform)?;
    let base_platform = string_at(&mut p, contents.base_platform)?;
    p = below(p, 16)?;
    let random = p;
    w.put(random, &contents.random)?;

    // The auxiliary vector: the kernel's entries in the kernel's order, the program's values in place
    // of the loader's. AT_EXECFD described the loader's own start and is dropped.
    let mut auxv = [[0u64; 2]; MAX_AUXV];
    let mut count = 0;
    for &[key, value] in contents.kernel_auxv {
        let value = match key {
            at::NULL => break,
            at::EXECFD => continue,
            at::PHDR => contents.program.phdr,
            at::PHENT => uexec_elf::PHDR_SIZE as u64,
            at::PHNUM => contents.program.phnum,
            at::BASE => contents.program.base,
            at::ENTRY => contents.program.entry,
            at::EXECFN => execfn,
            at::RANDOM => random,
            at::PLATFORM => platform,
            at::BASE_PLATFORM => base_platform,
            _ => value,
        };
        let slot = auxv.get_mut(count).ok_or(TooBig)?;
        *slot = [key, value];
        count += 1;
    }
    let auxv = auxv.get(..count).unwrap_or(&[]);
    let auxv_words = (count as u64 + 1) * 2;

    let argc = contents.argv.clone().count() as u64;
    let envc = contents.envp.clone().count() as u64;
    let items = (argc + 1) + (envc + 1) + 1;
    let sp = below(below(p, auxv_words * 8)?, items * 8)? & !15;
    layout.sp = sp;

    // argc, argv pointers, envp pointers, auxv, upwards from sp.
    let mut words = Words { writer: w, at: sp };
    words.push(argc)?;
    let mut string = layout.arg_start;
    for arg in contents.argv {
        words.push(string)?;
        string += arg.to_bytes_with_nul().len() as u64;
    }
    words.push(0)?;
    for var in contents.envp {
        words.push(string)?;
        string += var.to_bytes_with_nul().len() as u64;
    }
    words.push(0)?;
    layout.auxv = words.at;
    layout.auxv_len = auxv_words * 8;
    for &[key, value] in auxv {
        words.push(key)?;
        words.push(value)?;
    }
    words.push(at::NULL)?;
    words.push(0)?;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn word(mem: &[u8], top: u64, addr: u64) -> u64 {
        let i = (addr - (top - mem.len() as u64)) as usize;
        u64::from_ne_bytes(mem[i..i + 8].try_into().unwrap())
    }

    fn string(mem: &[u8], top: u64, addr: u64) -> Vec<u8> {
        let i = (addr - (top - mem.len() as u64)) as usize;
        let end = mem[i..].iter().position(|&b| b == 0).unwrap();
        mem[i..i + end].to_vec()
    }

    const TOP: u64 = 0x7fff_0000_0000;

    fn kernel_auxv() -> Vec<[u64; 2]> {
        std::vec![
            [33, 0x7fff_1234_0000], // AT_SYSINFO_EHDR
            [51, 3632],             // AT_MINSIGSTKSZ
            [16, 0x178bfbff],       // AT_HWCAP
            [at::PAGESZ, 4096],
            [17, 100], // AT_CLKTCK
            [at::PHDR, 0x3c00_0000_0040],
            [at::PHENT, 56],
            [at::PHNUM, 5],
            [at::BASE, 0],
            [at::FLAGS, 0],
            [at::ENTRY, 0x3c00_0000_1000],
            [11, 1000],
            [12, 1000],
            [13, 1000],
            [14, 1000],
            [23, 0],
            [at::RANDOM, 0x7ffd_0000_1000],
            [26, 2],
            [at::EXECFN, 0x7ffd_0000_2000],
            [at::PLATFORM, 0x7ffd_0000_3000],
            [27, 32],
            [28, 32],
        ]
    }

    #[test]
    fn layout_matches_create_elf_tables() {
        let argv = [c"prog", c"one", c""];
        let envp = [c"A=1", c"PATH=/bin"];
        let aux = kernel_auxv();
        let mut mem = std::vec![0u8; 64 * 1024];
        let program = ProgramAux {
            phdr: 0x400040,
            phnum: 9,
            entry: 0x401bc0,
            base: 0,
        };
        let layout = build(
            &mut mem,
            TOP,
            StackContents {
                argv: argv.iter().copied(),
                envp: envp.iter().copied(),
                execfn: c"./prog",
                kernel_auxv: &aux,
                platform: Some(c"x86_64"),
                base_platform: None,
                program,
                random: [7; 16],
                random_pad: 100,
            },
        )
        .unwrap();

        // Strings: argv, envp and execfn contiguous, ending 8 bytes below the top.
        assert_eq!(layout.arg_start, TOP - 8 - (5 + 4 + 1) - (4 + 10) - 7);
        assert_eq!(layout.arg_end, layout.arg_start + 10);
        assert_eq!(
            (layout.env_start, layout.env_end),
            (layout.arg_end, layout.arg_end + 14)
        );
        assert_eq!(string(&mem, TOP, layout.env_end), b"./prog");
        assert_eq!(word(&mem, TOP, TOP - 8), 0);

        // sp: 16-byte aligned, argc then argv/envp pointers to those strings.
        assert_eq!(layout.sp % 16, 0);
        assert_eq!(word(&mem, TOP, layout.sp), 3);
        let ptr = |i: u64| word(&mem, TOP, layout.sp + 8 * i);
        assert_eq!(string(&mem, TOP, ptr(1)), b"prog");
        assert_eq!(string(&mem, TOP, ptr(2)), b"one");
        assert_eq!(string(&mem, TOP, ptr(3)), b"");
        assert_eq!(ptr(4), 0);
        assert_eq!(string(&mem, TOP, ptr(5)), b"A=1");
        assert_eq!(string(&mem, TOP, ptr(6)), b"PATH=/bin");
        assert_eq!(ptr(7), 0);
        assert_eq!(layout.auxv, layout.sp + 8 * 8);

        // auxv: same keys in the kernel's order, program values substituted, machine values kept.
        let entries: Vec<[u64; 2]> = (0..aux.len() as u64 + 1)
            .map(|i| [ptr(8 + 2 * i), ptr(9 + 2 * i)])
            .collect();
        let keys: Vec<u64> = entries.iter().map(|e| e[0]).collect();
        let mut expected_keys: Vec<u64> = aux.iter().map(|e| e[0]).collect();
        expected_keys.push(at::NULL);
        assert_eq!(keys, expected_keys);
        assert_eq!(layout.auxv_len, 8 * 2 * (aux.len() as u64 + 1));
        let value = |key: u64| entries.iter().find(|e| e[0] == key).unwrap()[1];
        assert_eq!(value(at::PHDR), 0x400040);
        assert_eq!(value(at::PHNUM), 9);
        assert_eq!(value(at::PHENT), 56);
        assert_eq!(value(at::ENTRY), 0x401bc0);
        assert_eq!(value(at::BASE), 0);
        assert_eq!(value(33), 0x7fff_1234_0000);
        assert_eq!(value(16), 0x178bfbff);
        assert_eq!(string(&mem, TOP, value(at::EXECFN)), b"./prog");
        assert_eq!(value(at::EXECFN), layout.env_end);
        assert_eq!(string(&mem, TOP, value(at::PLATFORM)), b"x86_64");
        let random = value(at::RANDOM);
        assert_eq!(random + 16, value(at::PLATFORM));
        let i = (random - (TOP - mem.len() as u64)) as usize;
        assert_eq!(&mem[i..i + 16], &[7; 16]);
        // The platform string sits below the padded, 16-aligned start of the strings.
        assert_eq!(value(at::PLATFORM) + 7, (layout.arg_start - 100) & !15);
        // Tables end below the random bytes.
        assert!(layout.auxv + layout.auxv_len <= random);
        assert!(random - (layout.auxv + layout.auxv_len) < 16);
        // Nothing below sp was written.
        let sp_index = (layout.sp - (TOP - mem.len() as u64)) as usize;
        assert!(mem[..sp_index].iter().all(|&b| b == 0));
    }

    #[test]
    fn execfd_is_dropped_and_a_full_stack_is_refused() {
        let mut aux = kernel_auxv();
        aux.insert(3, [at::EXECFD, 3]);
        let mut mem = std::vec![0u8; 4096];
        let contents = |aux: &'static [[u64; 2]]| StackContents {
            argv: [c"p"].into_iter(),
            envp: core::iter::empty(),
            execfn: c"p",
            kernel_auxv: aux,
            platform: None,
            base_platform: None,
            program: ProgramAux::default(),
            random: [0; 16],
            random_pad: 0,
        };
        let aux: &'static [[u64; 2]] = std::vec::Vec::leak(aux);
        let layout = build(&mut mem, TOP, contents(aux)).unwrap();
        let auxv_words = layout.auxv_len / 8;
        let keys: Vec<u64> = (0..auxv_words / 2)
            .map(|i| word(&mem, TOP, layout.auxv + 16 * i))
            .collect();
        assert!(!keys.contains(&at::EXECFD));
        assert_eq!(keys.len(), aux.len()); // one dropped, AT_NULL added

        let mut tiny = std::vec![0u8; 200];
        assert_eq!(build(&mut tiny, TOP, contents(aux)), Err(TooBig));
    }
}
