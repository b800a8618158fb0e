//! A Go program (fixtures/go), natively and under each loader: the Go runtime installs its own handlers
//! for every signal, runs them on sigaltstacks of its own, preempts goroutines with SIGURG, makes raw
//! system calls, and recovers a nil dereference through its SIGSEGV handler — everything the pagers
//! must pass through or virtualise; as the invoker and as uid 65534. Skipped with a printed note when `go` is not installed (Debian:
//! golang-go; .ci/run installs it).

use difftest::{compare, go_binary, identities, require_loader, run_native_as, run_under_as};

#[test]
fn go_program_matches_native() {
    let Some(binary) = go_binary("goroutines") else {
        return;
    };
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
