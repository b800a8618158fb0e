//! The randomised parts of a new process image spread as the kernel's do. The break: the kernel
//! starts it up to 1 GiB above the bss for a 64-bit task (32 MiB before Linux 6.9), so over 24 runs
//! some start more than 32 MiB above it (all 24 below would have odds of 32^-24 with 1 GiB), none
//! 1 GiB or more. fixtures/brk_offset.c prints the distance in MiB; the static (non-PIE) variants only:
//! a static-pie program's break is moved below its image (as `load_elf_binary` does for an `ET_DYN`
//! without an interpreter), and a dynamic one's follows the interpreter's rules.

use difftest::{require_loader, run_native, run_under, variants};

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
