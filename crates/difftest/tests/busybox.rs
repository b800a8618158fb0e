//! Debian's busybox-static, a real static program, natively and under each loader: a few
//! applets (called as `busybox APPLET` and through a symlink named after the applet,
//! which busybox dispatches on argv[0]), and a shell that runs applets by re-executing
//! /proc/self/exe and other programs by execve; stdout and exit status must match.
//! Skipped with a printed note when /bin/busybox is absent.

use std::path::{Path, PathBuf};

use difftest::{compare, note, require_loader, run_native, run_under};

const BUSYBOX: &str = "/bin/busybox";

/// A scratch directory with a file to `cat`, a `#!` script and applet symlinks.
fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    std::fs::write(dir.join("hello.txt"), "line one\nline two\n\u{e9}t\u{e9}\n")
        .expect("hello.txt");
    // A script the shell executes: under a pager, its interpreter must be started through the pager.
    let script = dir.join("script.sh");
    std::fs::write(
        &script,
        format!("#!{BUSYBOX}  sh \necho \"script $0 $1\"\n"),
    )
    .expect("script.sh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("chmod script");
    for applet in ["echo", "sh"] {
        let link = dir.join(applet);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(BUSYBOX, &link).expect("applet symlink");
    }
    dir
}

#[test]
fn busybox_applets_match_native() {
    if !Path::new(BUSYBOX).is_file() {
        note("SKIPPED busybox_applets_match_native: /bin/busybox not found (Debian: apt-get install busybox-static)");
        return;
    }
    let dir = scratch();
    let file = dir.join("hello.txt").display().to_string();
    let ls_dir = dir.display().to_string();
    let bb = BUSYBOX.to_string();
    let echo = dir.join("echo").display().to_string();
    let sh = dir.join("sh").display().to_string();
    let runs: Vec<(String, Vec<String>)> = vec![
        (bb.clone(), vec!["echo".into(), "hello".into(), "world".into()]),
        (bb.clone(), vec!["ls".into(), "/".into()]),
        (bb.clone(), vec!["ls".into(), "-a".into(), ls_dir]),
        (bb.clone(), vec!["sh".into(), "-c".into(), "echo $((6*7))".into()]),
        (bb.clone(), vec!["sh".into(), "-c".into(), "x=1; for i in 1 2 3; do x=$((x*2)); done; echo $x; exit 3".into()]),
        (bb.clone(), vec!["cat".into(), file.clone()]),
        (bb.clone(), vec!["wc".into(), "-l".into(), file]),
        (bb.clone(), vec!["true".into()]),
        (bb.clone(), vec!["false".into()]),
        (echo, vec!["via".into(), "argv[0]".into()]),
        (sh, vec!["-c".into(), "echo sh via argv0; false".into()]),
        // Applets busybox runs by re-executing itself, a dynamically linked program, a missing one.
        (
            bb.clone(),
            vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "cat {file2} | wc -c; busybox true && echo ok; /bin/true; echo $?; nonexist; echo $?; {script} arg; echo $?",
                    file2 = dir.join("hello.txt").display(),
                    script = dir.join("script.sh").display()
                ),
            ],
        ),
    ];
    let mut failures = Vec::new();
    for loader in ["apager", "dpager", "hpager"] {
        let path = require_loader(loader);
        for (prog, args) in &runs {
            let what = format!("{prog} {args:?} under `{loader} -q`");
            let native = run_native(prog, args);
            let loaded = run_under(&path, &["-q"], prog, args);
            if let Err(e) = compare(&what, &native, &loaded) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
