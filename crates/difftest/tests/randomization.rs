//! The randomised parts of a new process image spread as the kernel's do. The break: the kernel
//! starts it up to 1 GiB above the bss for a 64-bit task (32 MiB before Linux 6.9), so over 24 runs
//! some start more than 32 MiB above it (all 24 below would have odds of 32^-24 with 1 GiB), none
//! 1 GiB or more. fixtures/brk_offset.c prints the distance in MiB; the static (non-PIE) variants only:
//! a static-pie program's break is moved away from its image, to `ELF_ET_DYN_BASE` (as
//! `load_elf_binary` does for an `ET_DYN` without an interpreter), and a dynamic one's follows the
//! interpreter's rules. Without randomisation (`setarch -R`) the break is one fixed address, the same
//! natively and under every loader, for every variant.

use std::ffi::OsStr;
use std::path::Path;

use difftest::{
    identities, path_as, require_loader, run_native, run_native_as, run_under, variants,
};

const RUNS: usize = 24;

fn offsets(run: impl Fn() -> difftest::Outcome) -> Vec<i64> {
    (0..RUNS)
        .map(|_| {
            let out = run();
            assert_eq!(out.status.shell_code(), 0, "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("brk_offset prints a number")
        })
        .collect()
}

#[test]
fn the_break_starts_as_far_above_the_bss_as_natively() {
    let mut seen = 0;
    for fx in variants("brk_offset").filter(|f| f.variant.ends_with("-static")) {
        seen += 1;
        let native = offsets(|| run_native(fx.path, &[] as &[&str]));
        let wide = native.iter().any(|&mib| mib >= 32);
        assert!(
            native.iter().all(|&mib| (0..1024).contains(&mib)),
            "native {native:?}"
        );
        for loader in ["apager", "dpager", "hpager"] {
            let loaded =
                offsets(|| run_under(require_loader(loader), &["-q"], fx.path, &[] as &[&str]));
            assert!(
                loaded.iter().all(|&mib| (0..1024).contains(&mib)),
                "{} under {loader}: {loaded:?}",
                fx.variant
            );
            assert_eq!(
                loaded.iter().any(|&mib| mib >= 32),
                wide,
                "{} under {loader}: break offsets {loaded:?} MiB, natively {native:?}",
                fx.variant
            );
        }
    }
    assert!(seen > 0, "brk_offset was not built");
}

const SETARCH: &str = "/usr/bin/setarch";

#[test]
fn without_randomisation_the_break_starts_where_the_kernels_does() {
    assert!(
        Path::new(SETARCH).is_file(),
        "{SETARCH} not found (Debian: util-linux)"
    );
    let mut seen = 0;
    for fx in variants("brk_offset") {
        seen += 1;
        for &who in identities() {
            let program = path_as(who, Path::new(fx.path));
            let break_of = |prefix: &[&OsStr]| {
                let mut args: Vec<&OsStr> = vec![OsStr::new("-R")];
                args.extend_from_slice(prefix);
                args.push(program.as_os_str());
                args.push(OsStr::new("abs"));
                let out = run_native_as(who, SETARCH, &args);
                assert_eq!(out.status.shell_code(), 0, "{} {who}: {out:?}", fx.variant);
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            };
            let native = break_of(&[]);
            assert!(
                native.starts_with("0x"),
                "{} natively: {native:?}",
                fx.variant
            );
            for loader in ["apager", "dpager", "hpager"] {
                let loader_path = path_as(who, &require_loader(loader));
                let loaded = break_of(&[loader_path.as_os_str(), OsStr::new("-q")]);
                assert_eq!(
                    loaded, native,
                    "{} under {loader} {who}, without randomisation: the break starts at {loaded}, \
                     natively at {native}",
                    fx.variant
                );
            }
        }
    }
    assert!(seen > 0, "brk_offset was not built");
}
