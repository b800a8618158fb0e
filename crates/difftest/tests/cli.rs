//! The loaders' command line as users of other tools expect it (issue 12): the loader's own
//! failures have statuses of their own, bundled short flags work, `--log -` is standard error, the
//! empty program is named.

use std::process::Command;

use difftest::{fixture, require_loader};

fn run(loader: &str, args: &[&str]) -> std::process::Output {
    Command::new(require_loader(loader))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_log_file_that_cannot_be_opened_exits_125() {
    for loader in ["apager", "dpager", "hpager"] {
        let program = fixture("malloc", "glibc-static").path;
        let out = run(loader, &["--log", "/nonexistent-dir/log", program]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{loader}: {stderr}");
        assert!(out.stdout.is_empty(), "{loader}: the program ran");
        assert_eq!(
            stderr.trim_end(),
            format!("{loader}: /nonexistent-dir/log: No such file or directory")
        );
    }
}

#[test]
fn log_dash_is_standard_error() {
    let program = fixture("malloc", "glibc-static").path;
    // In an empty directory of its own, so that a file named `-` could only be this run's.
    let dir = difftest::scratch_dir("cli-log-dash");
    let out = Command::new(require_loader("apager"))
        .args(["--log", "-", program])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.starts_with("apager: map ")),
        "{stderr}"
    );
    assert!(!dir.join("-").exists(), "a file named - was created");
}

#[test]
fn bundled_short_flags_and_the_empty_program() {
    for loader in ["apager", "dpager", "hpager"] {
        let out = run(loader, &["-qV"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).split(' ').next(),
            Some(loader)
        );
        let out = run(loader, &[""]);
        assert_eq!(out.status.code(), Some(127));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim_end(),
            format!("{loader}: '': command not found")
        );
    }
}
