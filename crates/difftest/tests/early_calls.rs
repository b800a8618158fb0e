//! The first system calls of a program, which dpager and hpager serve under syscall user dispatch
//! before attaching their seccomp filter (crates/uexec-pager/src/dispatch.rs): a read into untouched
//! bss, a signal handler's `rt_sigreturn`, an `int 0x80` call, more calls than the dispatch budget, an
//! early `fork`, `vfork` + `execve` twice, an early thread (fixtures/early_calls.c). Each case runs
//! alone in a fresh process, every variant, natively and under every loader, as every identity; output
//! and status must match.

use difftest::{compare, identities, require_loader, run_native_as, run_under_as, variants};

/// The fixture's cases.
const CASES: &[&str] = &[
    "bss_read", "signal", "int80", "budget", "fork", "vfork", "thread",
];

const CONFIGS: &[(&str, &[&str])] = &[
    ("apager", &["-q"]),
    ("dpager", &["-q"]),
    ("dpager", &["-q", "--stats"]),
    ("hpager", &["-q"]),
    ("hpager", &["-q", "--predict=next", "--pages=3"]),
];

#[test]
fn early_calls_match_native_case_by_case() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for fx in variants("early_calls") {
        seen += 1;
        for &who in identities() {
            for &case in CASES {
                let native = run_native_as(who, fx.path, &[case]);
                assert_eq!(
                    native.status.shell_code(),
                    0,
                    "early_calls {case} ({}) must run natively {who}: {native:?}",
                    fx.variant
                );
                for &(loader, options) in CONFIGS {
                    let loaded =
                        run_under_as(who, require_loader(loader), options, fx.path, &[case]);
                    if let Err(e) = compare(
                        &format!(
                            "early_calls {case} ({}) under `{loader} {options:?}` {who}",
                            fx.variant
                        ),
                        &native,
                        &loaded,
                    ) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    assert!(seen > 0, "early_calls was not built");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
