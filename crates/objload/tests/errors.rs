//! Every error the issue lists, as a value with the specific details, never a crash; and a failed load
//! leaves nothing behind.

mod common;

use std::path::{Path, PathBuf};

use common::{archive, native, object, scratch};
use objload::{Error, Registry};

/// For `far_data.c`.
#[no_mangle]
pub static objload_test_host_value: i64 = 5;

fn load_err(reg: &mut Registry, path: &Path) -> Error {
    match reg.load_library(path) {
        Ok(()) => panic!("{} loaded but must fail", path.display()),
        Err(e) => e,
    }
}

fn patched(src: &Path, name: &str, patch: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap_or_else(|e| panic!("{e}"));
    patch(&mut bytes);
    let dest = scratch(name);
    std::fs::write(&dest, bytes).unwrap_or_else(|e| panic!("{e}"));
    dest
}

#[test]
fn the_same_library_twice() {
    let lib = object("lib_math.c", &["-O1"]);
    let mut reg = Registry::new();
    reg.load_library(&lib).unwrap_or_else(|e| panic!("{e}"));
    // Another spelling of the same file is the same library.
    let other = lib
        .parent()
        .map(|d| d.join(".").join(lib.file_name().unwrap_or_default()))
        .unwrap_or_default();
    match load_err(&mut reg, &other) {
        Error::AlreadyLoaded { path } => {
            assert_eq!(path, std::fs::canonicalize(&lib).unwrap_or_default())
        }
        e => panic!("wrong error: {e}"),
    }
    assert_eq!(reg.libraries().len(), 1);
}

#[test]
fn a_function_another_library_defines_and_nothing_left_behind() {
    let math = object("lib_math.c", &["-O1"]);
    let dup = object("dup.c", &["-O1"]);
    let mut reg = Registry::new();
    reg.load_library(&math).unwrap_or_else(|e| panic!("{e}"));
    match load_err(&mut reg, &dup) {
        Error::DuplicateFunction { name, defined_by } => {
            assert_eq!(name, "lib_add");
            assert_eq!(defined_by, std::fs::canonicalize(&math).unwrap_or_default());
        }
        e => panic!("wrong error: {e}"),
    }
    assert!(matches!(
        reg.find_library_function("dup_only"),
        Err(Error::FunctionNotFound { .. })
    ));
    assert_eq!(reg.libraries().len(), 1);
    // Once lib_math is gone, dup.c loads.
    reg.unload_library(&math).unwrap_or_else(|e| panic!("{e}"));
    reg.load_library(&dup).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn two_members_defining_one_symbol() {
    let a = object("twice_a.c", &[]);
    let b = object("twice_b.c", &[]);
    let lib = archive("libtwice.a", &[a, b]);
    let mut reg = Registry::new();
    match load_err(&mut reg, &lib) {
        Error::MultipleDefinition {
            name,
            first,
            second,
        } => {
            assert_eq!(name, "twice");
            assert!(first.ends_with("libtwice.a(twice_a.default.o)"), "{first}");
            assert!(
                second.ends_with("libtwice.a(twice_b.default.o)"),
                "{second}"
            );
        }
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn a_name_that_cannot_be_found_and_unloading_what_is_not_loaded() {
    let mut reg = Registry::new();
    match reg.find_library_function("objload_never_defined") {
        Err(Error::FunctionNotFound { name }) => assert_eq!(name, "objload_never_defined"),
        other => panic!("wrong result: {other:?}"),
    }
    match reg.unload_library("/nonexistent/lib.o") {
        Err(Error::NotLoaded { path }) => assert_eq!(path, Path::new("/nonexistent/lib.o")),
        other => panic!("wrong result: {other:?}"),
    }
    let lib = object("weak.c", &[]);
    match reg.unload_library(&lib) {
        Err(Error::NotLoaded { .. }) => {}
        other => panic!("wrong result: {other:?}"),
    }
}

#[test]
fn a_missing_file() {
    let mut reg = Registry::new();
    match load_err(&mut reg, Path::new("/nonexistent/objload.o")) {
        Error::Io { path, source } => {
            assert_eq!(path, Path::new("/nonexistent/objload.o"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn objects_for_another_machine_or_class() {
    let obj = object("weak.c", &[]);
    let arm = patched(&obj, "aarch64.o", |b| {
        b[18..20].copy_from_slice(&183u16.to_le_bytes())
    });
    let mut reg = Registry::new();
    match load_err(&mut reg, &arm) {
        Error::WrongMachine { found, .. } => assert_eq!(found, "EM_AARCH64 (183)"),
        e => panic!("wrong error: {e}"),
    }
    let elf32 = patched(&obj, "elf32.o", |b| b[4] = 1);
    match load_err(&mut reg, &elf32) {
        Error::WrongMachine { found, .. } => assert_eq!(found, "ELF32"),
        e => panic!("wrong error: {e}"),
    }
    let big = patched(&obj, "big.o", |b| b[5] = 2);
    match load_err(&mut reg, &big) {
        Error::WrongMachine { found, .. } => assert_eq!(found, "another ELF class big-endian"),
        e => panic!("wrong error: {e}"),
    }
    let exe = native("hello", &["hello.c"], &[]);
    match load_err(&mut reg, &exe) {
        Error::NotRelocatable { e_type, .. } => assert_eq!(e_type, 3, "a PIE is ET_DYN"),
        e => panic!("wrong error: {e}"),
    }
    assert!(reg.libraries().is_empty());
}

#[test]
fn truncated_and_malformed_objects() {
    let obj = object("lib_math.c", &["-O2"]);
    let bytes = std::fs::read(&obj).unwrap_or_default();
    let mut reg = Registry::new();
    // Every truncation fails cleanly (section headers are at the end, so each cut loses some).
    for len in (0..bytes.len())
        .step_by(97)
        .chain([1, 15, 16, 63, 64, bytes.len() - 1])
    {
        let cut = patched(&obj, "cut.o", |b| b.truncate(len));
        match load_err(&mut reg, &cut) {
            Error::Malformed { member, what } => {
                assert!(member.contains("cut.o"), "{member}");
                assert!(!what.is_empty());
            }
            e => panic!("truncated to {len}: wrong error: {e}"),
        }
    }
    let garbage = patched(&obj, "garbage.o", |b| {
        b.iter_mut().for_each(|x| *x = x.wrapping_mul(31))
    });
    match load_err(&mut reg, &garbage) {
        Error::Malformed { what, .. } => assert_eq!(what, "not an ELF file (bad magic)"),
        e => panic!("wrong error: {e}"),
    }
    // e_shoff pointing past the end of the file.
    let far = patched(&obj, "shoff.o", |b| {
        b[40..48].copy_from_slice(&u64::MAX.to_le_bytes())
    });
    assert!(matches!(load_err(&mut reg, &far), Error::Malformed { .. }));
    // A relocation whose symbol index is out of range: find .rela.text's first entry and corrupt r_info.
    let bad_sym = patched(&obj, "badsym.o", |b| {
        corrupt_first_rela(b, |info| (info & 0xffff_ffff) | (0xfff_fff << 32))
    });
    match load_err(&mut reg, &bad_sym) {
        Error::Malformed { what, .. } => assert_eq!(what, "relocation symbol index out of range"),
        e => panic!("wrong error: {e}"),
    }
    assert!(reg.libraries().is_empty());
}

/// Applies `f` to `r_info` of the first entry of the first `SHT_RELA` section.
fn corrupt_first_rela(b: &mut [u8], f: impl Fn(u64) -> u64) {
    let rd64 =
        |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let rd32 =
        |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default());
    let shoff = rd64(b, 40) as usize;
    let shnum = u16::from_le_bytes([b[60], b[61]]) as usize;
    for i in 0..shnum {
        let sh = shoff + i * 64;
        if rd32(b, sh + 4) == 4 {
            let off = rd64(b, sh + 24) as usize;
            let info = rd64(b, off + 8);
            b[off + 8..off + 16].copy_from_slice(&f(info).to_le_bytes());
            return;
        }
    }
    panic!("no SHT_RELA");
}

#[test]
fn truncated_and_malformed_archives() {
    let a = object("common_a.c", &["-fcommon", "-O2"]);
    let b = object("common_b.c", &["-fcommon", "-O2"]);
    let lib = archive("libcut.a", &[a, b]);
    let bytes = std::fs::read(&lib).unwrap_or_default();
    let mut reg = Registry::new();
    for len in [9, 60, 68, 100, bytes.len() / 2, bytes.len() - 3] {
        let cut = patched(&lib, "cut.a", |b| b.truncate(len));
        match load_err(&mut reg, &cut) {
            Error::Malformed { member, .. } => assert!(member.contains("cut.a"), "{member}"),
            e => panic!("truncated to {len}: wrong error: {e}"),
        }
    }
    // A member header whose size field is not a number.
    let bad = patched(&lib, "badsize.a", |b| {
        b[8 + 48..8 + 58].copy_from_slice(b"12x4567890")
    });
    assert!(matches!(load_err(&mut reg, &bad), Error::Malformed { .. }));
    // A member that is not an ELF object.
    let text = scratch("notes.txt");
    std::fs::write(&text, "just text\n").unwrap_or_default();
    let mixed = archive("libmixed.a", &[object("weak.c", &[]), text]);
    match load_err(&mut reg, &mixed) {
        Error::Malformed { member, what } => {
            assert!(
                member.ends_with(")") && member.contains("libmixed.a(notes.txt"),
                "{member}"
            );
            assert_eq!(what, "not an ELF file (bad magic)");
        }
        e => panic!("wrong error: {e}"),
    }
    assert!(reg.libraries().is_empty());
}

#[test]
fn undefined_symbols_are_all_reported_at_once() {
    let obj = object("undef.c", &["-O2"]);
    let mut reg = Registry::new();
    match load_err(&mut reg, &obj) {
        Error::UndefinedSymbols { names, .. } => {
            let mut names = names;
            names.sort();
            assert_eq!(names, ["missing_data", "missing_one", "missing_two"]);
        }
        e => panic!("wrong error: {e}"),
    }
    let text = load_err(&mut reg, &obj).to_string();
    assert_eq!(
        text.lines().count(),
        3,
        "one line per missing name:\n{text}"
    );
    assert!(
        text.lines()
            .all(|l| l.contains("undefined symbol `missing_")),
        "{text}"
    );
}

#[test]
fn an_unsupported_relocation_is_named_with_section_and_offset() {
    let obj = object("reloc16.s", &[]);
    let mut reg = Registry::new();
    match load_err(&mut reg, &obj) {
        Error::UnsupportedRelocation {
            section,
            offset,
            r_type,
            ..
        } => {
            assert_eq!(
                (section.as_str(), offset, r_type.as_str()),
                (".data", 0, "R_X86_64_16")
            );
        }
        e => panic!("wrong error: {e}"),
    }
}

#[test]
fn thread_local_storage_is_refused() {
    let mut reg = Registry::new();
    for flags in [&[][..], &["-fPIC"], &["-mcmodel=large", "-fPIC"]] {
        let obj = object("tls.c", flags);
        match load_err(&mut reg, &obj) {
            Error::ThreadLocal { what, .. } => assert_eq!(what, "section .tbss", "{flags:?}"),
            e => panic!("wrong error: {e}"),
        }
    }
}

#[test]
fn out_of_range_relocations_come_with_advice() {
    let mut reg = Registry::new();
    // -fno-pic: `&arr[1]` is an R_X86_64_32 absolute, and the image is above 4 GiB.
    let obj = object("abs32.c", &["-fno-pic", "-O2"]);
    let e = load_err(&mut reg, &obj);
    match &e {
        Error::OutOfRange {
            section,
            r_type,
            symbol,
            ..
        } => {
            assert_eq!(section, ".text");
            assert!(
                *r_type == "R_X86_64_32" || *r_type == "R_X86_64_32S",
                "{r_type}"
            );
            assert!(symbol == ".bss" || symbol == "arr", "{symbol}");
        }
        e => panic!("wrong error: {e}"),
    }
    assert!(
        e.to_string()
            .contains("recompile with -fPIC, or with -mcmodel=large"),
        "{e}"
    );
    // Default PIE code reaching data both in libc (stdout) and in the executable: no place reaches both.
    let obj = object("far_data.c", &["-O2"]);
    match load_err(&mut reg, &obj) {
        Error::OutOfRange { r_type, symbol, .. } => {
            assert_eq!(r_type, "R_X86_64_PC32");
            assert!(
                symbol == "stdout" || symbol == "objload_test_host_value",
                "{symbol}"
            );
        }
        e => panic!("wrong error: {e}"),
    }
    // The same source with -fPIC goes through the GOT and loads.
    reg.load_library(object("far_data.c", &["-O2", "-fPIC"]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objload_test_host_value, 5);
}

#[test]
fn load_program_needs_main() {
    let reg = Registry::new();
    match reg.load_program(object("weak.c", &[])) {
        Err(Error::NoMain { path }) => assert!(path.ends_with("weak.default.o"), "{path}"),
        other => panic!("wrong result: {other:?}"),
    }
}

#[test]
fn unload_refuses_while_a_library_a_program_or_a_handle_needs_it() {
    let math = object("lib_math.c", &["-O2", "-fPIC"]);
    let user = object("dep_user.c", &["-O2", "-fPIC"]);
    let prog = object("prog_report.c", &["-O2", "-fPIC"]);
    let mut reg = Registry::new();
    reg.load_library(&math).unwrap_or_else(|e| panic!("{e}"));
    reg.load_library(&user).unwrap_or_else(|e| panic!("{e}"));
    let program = reg.load_program(&prog).unwrap_or_else(|e| panic!("{e}"));
    let handle = reg
        .find_library_function("lib_add")
        .unwrap_or_else(|e| panic!("{e}"));
    let e = reg.unload_library(&math).map(|_| ()).unwrap_err();
    match &e {
        Error::InUse {
            needed_by,
            programs,
            handles,
            ..
        } => {
            assert_eq!(
                needed_by,
                &[std::fs::canonicalize(&user).unwrap_or_default()]
            );
            assert_eq!((*programs, *handles), (1, 1));
        }
        e => panic!("wrong error: {e}"),
    }
    let text = e.to_string();
    assert!(
        text.contains("needed by library")
            && text.contains("1 loaded program")
            && text.contains("1 function handle"),
        "{text}"
    );
    drop(handle);
    drop(program);
    assert!(matches!(
        reg.unload_library(&math),
        Err(Error::InUse {
            handles: 0,
            programs: 0,
            ..
        })
    ));
    reg.unload_library(&user).unwrap_or_else(|e| panic!("{e}"));
    reg.unload_library(&math).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        reg.find_library_function("lib_add"),
        Err(Error::FunctionNotFound { .. })
    ));
    // Unloaded means loadable again.
    reg.load_library(&math).unwrap_or_else(|e| panic!("{e}"));
}
