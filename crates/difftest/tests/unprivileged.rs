//! The loaders started by an ordinary user: every loader must run a fixture as uid/gid 65534 exactly as
//! it runs natively under that identity. (The pagers once refused to start for every non-root user,
//! unnoticed because the suite ran only as root.) When the test process is already unprivileged the
//! identity is left as it is. Dropping privileges uses `setpriv` (util-linux, in Debian's base image).

use difftest::{compare, fixture, require_loader, run_native, run_under};

const UNPRIVILEGED: &[&str] = &["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn every_loader_runs_a_program_for_an_ordinary_user() {
    let fx = fixture("auxv_dump", "glibc-static");
    let mut failures = Vec::new();
    for (loader, options) in [
        ("apager", &["-q"][..]),
        ("dpager", &["-q"][..]),
        ("hpager", &["-q", "--predict=adaptive"][..]),
    ] {
        let path = require_loader(loader);
        let path = path.to_str().expect("loader path is UTF-8");
        let (native, loaded) = if is_root() {
            let mut under: Vec<&str> = UNPRIVILEGED.to_vec();
            under.push(path);
            under.extend_from_slice(options);
            let native = run_native(
                "/usr/bin/setpriv",
                &[UNPRIVILEGED, &[fx.path, "x"]].concat(),
            );
            let loaded = run_under("/usr/bin/setpriv", &under, fx.path, &["x"]);
            (native, loaded)
        } else {
            (
                run_native(fx.path, &["x"]),
                run_under(path, options, fx.path, &["x"]),
            )
        };
        assert!(
            native.status.shell_code() == 0,
            "auxv_dump does not run natively as uid 65534 (is the fixture readable by it?): {}",
            String::from_utf8_lossy(&native.stderr)
        );
        if let Err(e) = compare(
            &format!("auxv_dump as uid 65534 under {loader}"),
            &native,
            &loaded,
        ) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
