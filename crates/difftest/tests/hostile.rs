//! Programs that are hard on a demand pager, run many times, because what they break breaks only
//! sometimes: the Go garbage collector working from many goroutines (fixtures/go/gc.go), and threads on
//! 16 KiB stacks making trapped system calls (fixtures/small_stacks.c). Both must give the native
//! result in every one of [`RUNS`] runs under every pager configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use difftest::{compare, note, require_loader, run_native, run_under, variants, Outcome};

/// Runs of each program under each configuration.
const RUNS: usize = 20;

const PAGERS: &[(&str, &[&str])] = &[
    ("dpager", &["-q"]),
    ("hpager", &["-q", "--predict=adaptive"]),
    ("hpager", &["-q", "--predict=next", "--pages=3"]),
];

/// Runs `program` [`RUNS`] times under each of [`PAGERS`]; every run must match `native`.
fn every_run_matches(what: &str, program: &Path, args: &[&str], native: &Outcome) -> Vec<String> {
    let mut failures = Vec::new();
    for &(loader, options) in PAGERS {
        let path = require_loader(loader);
        let mut failed = 0;
        for run in 0..RUNS {
            let loaded = run_under(&path, options, program, args);
            if let Err(e) = compare(
                &format!("{what} under `{loader} {options:?}`, run {}", run + 1),
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
                "{what} under `{loader} {options:?}`: {failed} of {RUNS} runs differ"
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
        let native = run_native(fx.path, &[] as &[&str]);
        assert_eq!(
            native.status.shell_code(),
            0,
            "small_stacks ({}) must run natively: {native:?}",
            fx.variant
        );
        failures.extend(every_run_matches(
            &format!("small_stacks ({})", fx.variant),
            Path::new(fx.path),
            &[],
            &native,
        ));
    }
    assert!(seen > 0, "small_stacks was not built");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn go_garbage_collector_passes_every_run() {
    let Some(binary) = go_build("gc") else {
        return;
    };
    let native = run_native(&binary, &[] as &[&str]);
    assert_eq!(
        native.status.shell_code(),
        0,
        "gc must run natively: {native:?}"
    );
    let failures = every_run_matches("go gc", &binary, &[], &native);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Builds fixtures/go/NAME.go as a static binary (CGO_ENABLED=0); `None`, with a printed note, when
/// `go` is not installed (Debian: golang-go; .ci/run installs it).
fn go_build(name: &str) -> Option<PathBuf> {
    let Some(go) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("go"))
            .find(|p| p.is_file())
    }) else {
        note(&format!(
            "SKIPPED {name}.go: `go` not found (Debian: apt-get install golang-go)"
        ));
        return None;
    };
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-hostile");
    std::fs::create_dir_all(&tmp).expect("go scratch dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../fixtures/go/{name}.go"));
    let binary = tmp.join(name);
    let status = Command::new(go)
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", tmp.join("cache"))
        .env("GOPATH", tmp.join("gopath"))
        .env("GO111MODULE", "off")
        .status()
        .expect("running go build");
    assert!(status.success(), "go build of {name}.go failed");
    Some(binary)
}
