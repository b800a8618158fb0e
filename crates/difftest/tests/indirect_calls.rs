//! System calls that reach their buffers through a pointer in memory — `readv`/`writev` and the
//! `p*v` family, `sendmsg`/`recvmsg`/`sendmmsg`/`recvmmsg`, `process_vm_readv`/`writev`, `vmsplice`,
//! `futex_waitv`, `io_submit` — with the outer structure on the stack or in initialised data and the
//! buffers in untouched bss or data (fixtures/indirect_calls.c), and garbage pointers that must give
//! `EFAULT` rather than crash the pager's handler. Each case runs alone, every variant, natively and
//! under every loader, as every identity; output and status must match.

use difftest::{compare, identities, require_loader, run_native_as, run_under_as, variants};

/// The fixture's cases (its `CASES` table).
const CASES: &[&str] = &[
    "readv",
    "readv_data",
    "writev",
    "preadv",
    "pwritev",
    "msg",
    "msg_data",
    "mmsg",
    "process_vm",
    "vmsplice",
    "futex_waitv",
    "io_submit",
    "garbage",
];

const CONFIGS: &[(&str, &[&str])] = &[
    ("apager", &["-q"]),
    ("dpager", &["-q"]),
    ("hpager", &["-q"]),
    ("hpager", &["-q", "--predict=next", "--pages=3"]),
];

#[test]
fn indirect_buffers_are_prepared_case_by_case() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for fx in variants("indirect_calls") {
        seen += 1;
        for &who in identities() {
            for &case in CASES {
                let native = run_native_as(who, fx.path, &[case]);
                assert_eq!(
                    native.status.shell_code(),
                    0,
                    "indirect_calls {case} ({}) must run natively {who}: {native:?}",
                    fx.variant
                );
                assert!(
                    !String::from_utf8_lossy(&native.stdout).contains("differ"),
                    "indirect_calls {case} ({}) natively {who}: {native:?}",
                    fx.variant
                );
                for &(loader, options) in CONFIGS {
                    let loaded =
                        run_under_as(who, require_loader(loader), options, fx.path, &[case]);
                    if let Err(e) = compare(
                        &format!(
                            "indirect_calls {case} ({}) under `{loader} {options:?}` {who}",
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
    assert!(seen > 0, "indirect_calls was not built");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn all_cases_in_one_process_match() {
    let mut failures = Vec::new();
    for fx in variants("indirect_calls") {
        for &who in identities() {
            let native = run_native_as(who, fx.path, &[] as &[&str]);
            assert_eq!(native.status.shell_code(), 0, "{native:?}");
            for &(loader, options) in CONFIGS {
                let loaded = run_under_as(
                    who,
                    require_loader(loader),
                    options,
                    fx.path,
                    &[] as &[&str],
                );
                if let Err(e) = compare(
                    &format!(
                        "indirect_calls ({}) under `{loader} {options:?}` {who}",
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
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
