//! Loading and linking real gcc output: every flag set at every optimisation level, archives, the host's
//! symbols, COMMON, weak symbols, constructors and destructors, and calls across the boundary.

mod common;

use std::ffi::{c_char, c_int, CStr};
use std::sync::atomic::{AtomicI32, Ordering};

use common::{archive, native, object, scratch, FLAG_SETS, OPT_LEVELS};
use objload::{FunctionHandle, Registry};

/// Defined here for `hostref.c`: the loaded code must find these in this executable's symbol table.
#[no_mangle]
pub extern "C" fn objload_test_host_twice(x: i64) -> i64 {
    2 * x
}
#[no_mangle]
pub static mut objload_test_host_value: i64 = 1000;

fn func<T: Copy>(h: &FunctionHandle) -> T {
    assert_eq!(size_of::<T>(), size_of::<usize>());
    // SAFETY: each caller names the C type the fixture declares for the function; the handle keeps the
    // library loaded while it is used.
    unsafe { std::mem::transmute_copy::<usize, T>(&h.addr()) }
}

fn find(reg: &Registry, name: &str) -> FunctionHandle {
    reg.find_library_function(name)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The report `prog_report.c` writes, when linked natively by gcc and run.
fn native_report(flags: &[&str]) -> String {
    let exe = native("prog_report", &["prog_report.c", "lib_math.c"], flags);
    let out = scratch(&format!("native-report{}", flags.join("")));
    let status = std::process::Command::new(&exe)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(3));
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&out);
    text
}

#[test]
fn every_flag_set_and_level_links_and_matches_the_native_build() {
    let expected = native_report(&["-O0"]);
    // Written by hand from the C source, so that a wrong native build cannot hide a loader bug either.
    assert!(
        expected.starts_with(
            "add 42 mul -42\napply 50\nstrlen 13 name two many\nbump 9 counter 9\nfill 135 last 27\nformat 9 x=1234567\n"
        ),
        "{expected}"
    );
    assert!(
        expected.contains("\n-3 0 5 7 42 99\n11 22 33 44 55 66 77 -1\nscale 4.000 argc 2\n"),
        "{expected}"
    );
    for flags in FLAG_SETS {
        for opt in OPT_LEVELS {
            let mut all: Vec<&str> = flags.to_vec();
            all.push(opt);
            let lib = object("lib_math.c", &all);
            let prog = object("prog_report.c", &all);
            let mut reg = Registry::new();
            reg.load_library(&lib)
                .unwrap_or_else(|e| panic!("{all:?}: {e}"));
            let program = reg
                .load_program(&prog)
                .unwrap_or_else(|e| panic!("{all:?}: {e}"));
            let out = scratch(&format!("report{}", all.join("")));
            // SAFETY: prog_report.c's main has the C signature; it only writes the report file.
            let rc = unsafe { program.run(&[prog.as_os_str(), out.as_os_str()]) };
            assert_eq!(rc, 3, "{all:?}");
            let got = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{all:?}: {e}"));
            let _ = std::fs::remove_file(&out);
            assert_eq!(got, expected, "{all:?}");
            drop(program);
            reg.unload_library(&lib)
                .unwrap_or_else(|e| panic!("{all:?}: {e}"));
        }
    }
}

extern "C" fn cube(x: i64) -> i64 {
    x * x * x
}

#[test]
fn rust_callers_pass_pointers_strings_callbacks_and_share_globals() {
    for flags in FLAG_SETS {
        let lib = object("lib_math.c", &[flags, &["-O2"][..]].concat());
        let mut reg = Registry::new();
        reg.load_library(&lib).unwrap_or_else(|e| panic!("{e}"));
        let add: extern "C" fn(i64, i64) -> i64 = func(&find(&reg, "lib_add"));
        assert_eq!(add(40, 2), 42);
        let apply: extern "C" fn(extern "C" fn(i64) -> i64, i64) -> i64 =
            func(&find(&reg, "lib_apply"));
        assert_eq!(apply(cube, 3), 28);
        let strlen: extern "C" fn(*const c_char) -> usize = func(&find(&reg, "lib_strlen"));
        assert_eq!(strlen(c"twelve chars".as_ptr()), 12);
        let name: extern "C" fn(c_int) -> *const c_char = func(&find(&reg, "lib_name"));
        // SAFETY: lib_name returns a pointer to a static NUL-terminated string of the library.
        assert_eq!(unsafe { CStr::from_ptr(name(3)) }, c"three");
        let fill: extern "C" fn(*mut i64, usize) -> i64 = func(&find(&reg, "lib_fill"));
        let mut out = [0i64; 4];
        assert_eq!(fill(out.as_mut_ptr(), 4), 18);
        assert_eq!(out, [0, 3, 6, 9]);
        let format: extern "C" fn(*mut c_char, usize, *const c_char, i64) -> c_int =
            func(&find(&reg, "lib_format"));
        let mut buf = [0 as c_char; 16];
        assert_eq!(format(buf.as_mut_ptr(), buf.len(), c"k".as_ptr(), -5), 4);
        // SAFETY: snprintf NUL-terminated the buffer.
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }, c"k=-5");
        let pick: extern "C" fn(c_int) -> extern "C" fn(i64, i64) -> i64 =
            func(&find(&reg, "lib_pick"));
        assert_eq!(pick(1)(6, 7), 42);
        let bump: extern "C" fn() -> c_int = func(&find(&reg, "lib_bump"));
        assert_eq!((bump(), bump()), (6, 7));
        let scale: extern "C" fn(f64) -> f64 = func(&find(&reg, "lib_scale"));
        assert_eq!(scale(2.0), 5.25);
        // lib_counter is data: not a function, so not found by name.
        assert!(reg.find_library_function("lib_counter").is_err());
    }
}

#[test]
fn host_executable_symbols_are_found_and_shared() {
    for flags in FLAG_SETS {
        let obj = object("hostref.c", &[flags, &["-O1"][..]].concat());
        let mut reg = Registry::new();
        reg.load_library(&obj)
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        let call: extern "C" fn(i64) -> i64 = func(&find(&reg, "hostref_call"));
        // SAFETY: the tests of this binary only read this variable.
        let value = unsafe { objload_test_host_value };
        assert_eq!(call(21), 42 + value, "{flags:?}");
        let addr: extern "C" fn() -> *const i64 = func(&find(&reg, "hostref_value_addr"));
        assert_eq!(addr(), &raw const objload_test_host_value, "{flags:?}");
        assert_eq!(objload_test_host_twice(1), 2);
    }
}

#[test]
fn an_archive_is_one_library_of_all_its_members() {
    let a = object("common_a.c", &["-fcommon", "-O2"]);
    let b = object("common_b.c", &["-fcommon", "-O2"]);
    let lib = archive("libcommon.a", &[a, b]);
    let mut reg = Registry::new();
    reg.load_library(&lib).unwrap_or_else(|e| panic!("{e}"));
    let set: extern "C" fn(c_int) -> c_int = func(&find(&reg, "common_set"));
    let get: extern "C" fn() -> i64 = func(&find(&reg, "common_get"));
    assert_eq!(get(), 0, "COMMON storage starts zeroed");
    assert_eq!(set(21), 21);
    assert_eq!(
        get(),
        63,
        "both members share one shared_common and one common_big"
    );
    let info = reg.libraries();
    assert_eq!(info.len(), 1);
    let names: Vec<&str> = info[0].functions.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["common_get", "common_set"]);
}

#[test]
fn weak_undefined_symbols_resolve_to_zero_or_to_the_host() {
    for flags in FLAG_SETS {
        let obj = object("weak.c", &[flags, &["-O0"][..]].concat());
        let mut reg = Registry::new();
        reg.load_library(&obj)
            .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        let missing: extern "C" fn() -> c_int = func(&find(&reg, "weak_missing"));
        let present: extern "C" fn() -> c_int = func(&find(&reg, "weak_present"));
        assert_eq!(missing(), -7, "{flags:?}");
        assert_eq!(present(), 1, "{flags:?}");
    }
}

static DESTRUCTED: AtomicI32 = AtomicI32::new(0);
extern "C" fn record(v: c_int) {
    DESTRUCTED.store(v, Ordering::SeqCst);
}

#[test]
fn constructors_run_on_load_in_priority_order_and_destructors_on_unload() {
    let obj = object("lib_ctor.c", &["-O2", "-fPIC"]);
    let mut reg = Registry::new();
    reg.load_library(&obj).unwrap_or_else(|e| panic!("{e}"));
    {
        let count: extern "C" fn() -> c_int = func(&find(&reg, "ctor_count"));
        let order: extern "C" fn() -> c_int = func(&find(&reg, "ctor_order"));
        let set_hook: extern "C" fn(extern "C" fn(c_int)) = func(&find(&reg, "ctor_set_hook"));
        assert_eq!(count(), 2);
        assert_eq!(
            order(),
            12,
            "constructor(101) must run before the plain constructor"
        );
        set_hook(record);
    }
    assert_eq!(DESTRUCTED.load(Ordering::SeqCst), 0);
    reg.unload_library(&obj).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        DESTRUCTED.load(Ordering::SeqCst),
        12,
        "the destructor did not run on unload"
    );
}

#[test]
fn libraries_resolve_against_earlier_libraries_and_are_counted() {
    let math = object("lib_math.c", &["-O2"]);
    let user = object("dep_user.c", &["-O2"]);
    let mut reg = Registry::new();
    reg.load_library(&math).unwrap_or_else(|e| panic!("{e}"));
    reg.load_library(&user).unwrap_or_else(|e| panic!("{e}"));
    let twice: extern "C" fn(i64, i64) -> i64 = func(&find(&reg, "dep_twice_add"));
    assert_eq!(twice(3, 4), 14);
    let info = reg.libraries();
    assert_eq!(info[0].dependents, 1);
    assert_eq!(info[0].handles, 0);
}

#[test]
fn many_libraries_with_many_functions() {
    let mut reg = Registry::new();
    let mut objs = Vec::new();
    for lib in 0..12 {
        let mut src = String::new();
        for f in 0..40 {
            src.push_str(&format!(
                "long many_{lib}_{f}(long x) {{ return x * {f} + {lib}; }}\n"
            ));
        }
        let obj = common::object_from_source(&format!("many_{lib}.c"), &src, &["-O1"]);
        reg.load_library(&obj).unwrap_or_else(|e| panic!("{e}"));
        objs.push(obj);
    }
    for lib in 0..12 {
        for f in [0, 17, 39] {
            let h = find(&reg, &format!("many_{lib}_{f}"));
            let g: extern "C" fn(i64) -> i64 = func(&h);
            assert_eq!(g(3), 3 * f + lib);
        }
    }
    assert_eq!(
        reg.libraries()
            .iter()
            .map(|l| l.functions.len())
            .sum::<usize>(),
        480
    );
    for obj in objs {
        reg.unload_library(&obj).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(reg.libraries().is_empty());
}

#[test]
fn loaded_memory_is_never_writable_and_executable() {
    let lib = object("lib_math.c", &["-O2"]);
    let mut reg = Registry::new();
    reg.load_library(&lib).unwrap_or_else(|e| panic!("{e}"));
    let add = find(&reg, "lib_add").addr() as u64;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found_exec = false;
    for line in maps.lines() {
        let perms = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "W+X mapping: {line}"
        );
        let (lo, hi) = line
            .split_once(' ')
            .and_then(|(r, _)| r.split_once('-'))
            .unwrap_or(("0", "0"));
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap_or(0),
            u64::from_str_radix(hi, 16).unwrap_or(0),
        );
        if (lo..hi).contains(&add) {
            assert_eq!(perms, "r-xp", "{line}");
            found_exec = true;
        }
    }
    assert!(found_exec);
}

#[test]
fn hand_written_relocations_compute_their_psabi_formulas() {
    let obj = object("relocs.s", &["-Wa,-mrelax-relocations=no"]);
    let mut reg = Registry::new();
    reg.load_library(&obj).unwrap_or_else(|e| panic!("{e}"));
    let call = |name: &str| -> i64 {
        let f: extern "C" fn() -> i64 = func(&find(&reg, name));
        f()
    };
    assert_eq!(
        call("asm_got_twice"),
        0,
        "GOTPC64 and GOTPC32 disagree on the GOT"
    );
    assert_eq!(call("asm_gotpcrel"), 77);
    assert_eq!(call("asm_size"), 24 + 24 + 1000);
    assert_eq!(call("asm_pc64_check"), 0);
    assert_eq!(call("asm_gotoff_check"), 0);
    assert_eq!(call("asm_got64_check"), 0);
    assert_eq!(
        call("asm_far_call"),
        42,
        "PLT32 to libc's labs through a stub"
    );
}
