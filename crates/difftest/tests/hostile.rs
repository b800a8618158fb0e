//! Programs that are hard on a demand pager, run many times, because what they break breaks only
//! sometimes: the Go garbage collector working from many goroutines (fixtures/go/gc.go), and threads on
//! 16 KiB stacks making trapped system calls (fixtures/small_stacks.c). Both must give the native
//! result in every one of [`RUNS`] runs under every pager configuration, as the invoker and as uid
//! 65534.

use std::path::Path;

use difftest::{
    compare, go_binary, identities, require_loader, run_native_as, run_under_as, variants, As,
    Outcome,
};

/// Runs of each program under each configuration.
const RUNS: usize = 20;

const PAGERS: &[(&str, &[&str])] = &[
    ("dpager", &["-q"]),
    ("hpager", &["-q", "--predict=adaptive"]),
    ("hpager", &["-q", "--predict=next", "--pages=3"]),
];

/// Runs `program` [`RUNS`] times under each of [`PAGERS`] as `who`; every run must match `native`.
fn every_run_matches(
    who: As,
    what: &str,
    program: &Path,
    args: &[&str],
    native: &Outcome,
) -> Vec<String> {
    let mut failures = Vec::new();
    for &(loader, options) in PAGERS {
        let path = require_loader(loader);
        let mut failed = 0;
        for run in 0..RUNS {
            let loaded = run_under_as(who, &path, options, program, args);
            if let Err(e) = compare(
                &format!("{what} under `{loader} {options:?}` {who}, run {}", run + 1),
                native,
                &loaded,
            ) {
                if failed == 0 {
                    failures.push(e);
                }
                failed += 1;
            }
        }
        if failed > 0 {
            failures.push(format!(
                "{what} under `{loader} {options:?}` {who}: {failed} of {RUNS} runs differ"
            ));
        }
    }
    failures
}

#[test]
fn threads_on_small_stacks_pass_every_run() {
    let mut failures = Vec::new();
    let mut seen = 0;
    for fx in variants("small_stacks") {
        seen += 1;
        for &who in identities() {
            let native = run_native_as(who, fx.path, &[] as &[&str]);
            assert_eq!(
                native.status.shell_code(),
                0,
                "small_stacks ({}) must run natively {who}: {native:?}",
                fx.variant
            );
            failures.extend(every_run_matches(
                who,
                &format!("small_stacks ({})", fx.variant),
                Path::new(fx.path),
                &[],
                &native,
            ));
        }
    }
    assert!(seen > 0, "small_stacks was not built");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn go_garbage_collector_passes_every_run() {
    let Some(binary) = go_binary("gc") else {
        return;
    };
    let mut failures = Vec::new();
    for &who in identities() {
        let native = run_native_as(who, &binary, &[] as &[&str]);
        assert_eq!(
            native.status.shell_code(),
            0,
            "gc must run natively {who}: {native:?}"
        );
        failures.extend(every_run_matches(who, "go gc", &binary, &[], &native));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
