//! A Go program (fixtures/go), natively and under each loader: the Go runtime installs its own handlers
//! for every signal, runs them on sigaltstacks of its own, preempts goroutines with SIGURG, makes raw
//! system calls, and recovers a nil dereference through its SIGSEGV handler — everything the pagers
//! must pass through or virtualise; as the invoker and as uid 65534. Skipped with a printed note when `go` is not installed (Debian:
//! golang-go; .ci/run installs it).

use std::path::Path;
use std::process::Command;

use difftest::{compare, identities, note, require_loader, run_native_as, run_under_as};

#[test]
fn go_program_matches_native() {
    let Ok(go) = which("go") else {
        note(
            "SKIPPED go_program_matches_native: `go` not found (Debian: apt-get install golang-go)",
        );
        return;
    };
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    std::fs::create_dir_all(&tmp).expect("go scratch dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/go/goroutines.go");
    let binary = tmp.join("goroutines");
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
    assert!(status.success(), "go build failed");
    let mut failures = Vec::new();
    for &who in identities() {
        let native = run_native_as(who, &binary, &["x"]);
        for (loader, options) in [
            ("apager", &["-q"][..]),
            ("dpager", &["-q"][..]),
            ("hpager", &["-q", "--predict=adaptive"][..]),
            ("hpager", &["-q", "--predict=next", "--pages=3"][..]),
        ] {
            let path = require_loader(loader);
            for _ in 0..3 {
                let loaded = run_under_as(who, &path, options, &binary, &["x"]);
                if let Err(e) = compare(
                    &format!("go program under `{loader} {options:?}` {who}"),
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

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
