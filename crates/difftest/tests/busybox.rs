//! Debian's busybox-static, a real static program, natively and under each loader: a few
//! applets (called as `busybox APPLET` and through a symlink named after the applet,
//! which busybox dispatches on argv[0]), and a shell that runs applets by re-executing
//! /proc/self/exe and other programs by execve; stdout and exit status must match, as the invoker
//! and as uid 65534.
//! Skipped with a printed note when /bin/busybox is absent.
//!
//! Known difference: as uid 65534 the loaders cannot re-point `/proc/self/exe` at the program
//! (that takes CAP_SYS_RESOURCE). The pagers trap the program's `execve` and start the program itself
//! for `/proc/self/exe`; apager does not stay in the process, so an applet busybox runs by
//! re-executing `/proc/self/exe` starts apager instead: that one run is its own ignored test,
//! `busybox_reexecutes_itself_under_apager_as_nobody`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use difftest::{
    compare, identities, note, require_loader, run_native_as, run_under_as, scratch_dir, As,
};

const BUSYBOX: &str = "/bin/busybox";

/// A scratch directory (that uid 65534 can use too) with a file to `cat`, a `#!` script and applet
/// symlinks.
fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(make_scratch).clone()
}

fn make_scratch() -> PathBuf {
    let dir = scratch_dir("busybox");
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

/// Runs each of `runs` natively and under each loader as each of `who`; all mismatches.
const LOADERS: &[&str] = &["apager", "dpager", "hpager"];

fn diff_runs(runs: &[(String, Vec<String>)], who: &[As], loaders: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    for &loader in loaders {
        let path = require_loader(loader);
        for &who in who {
            for (prog, args) in runs {
                let what = format!("{prog} {args:?} under `{loader} -q` {who}");
                let native = run_native_as(who, prog, args);
                let loaded = run_under_as(who, &path, &["-q"], prog, args);
                if let Err(e) = compare(&what, &native, &loaded) {
                    failures.push(e);
                }
            }
        }
    }
    failures
}

fn have_busybox(test: &str) -> bool {
    let found = Path::new(BUSYBOX).is_file();
    if !found {
        note(&format!(
            "SKIPPED {test}: /bin/busybox not found (Debian: apt-get install busybox-static)"
        ));
    }
    found
}

#[test]
fn busybox_applets_match_native() {
    if !have_busybox("busybox_applets_match_native") {
        return;
    }
    let dir = scratch();
    let file = dir.join("hello.txt").display().to_string();
    let ls_dir = dir.display().to_string();
    let bb = BUSYBOX.to_string();
    let echo = dir.join("echo").display().to_string();
    let sh = dir.join("sh").display().to_string();
    let runs: Vec<(String, Vec<String>)> = vec![
        (
            bb.clone(),
            vec!["echo".into(), "hello".into(), "world".into()],
        ),
        (bb.clone(), vec!["ls".into(), "/".into()]),
        (bb.clone(), vec!["ls".into(), "-a".into(), ls_dir]),
        (
            bb.clone(),
            vec!["sh".into(), "-c".into(), "echo $((6*7))".into()],
        ),
        (
            bb.clone(),
            vec![
                "sh".into(),
                "-c".into(),
                "x=1; for i in 1 2 3; do x=$((x*2)); done; echo $x; exit 3".into(),
            ],
        ),
        (bb.clone(), vec!["cat".into(), file.clone()]),
        (bb.clone(), vec!["wc".into(), "-l".into(), file]),
        (bb.clone(), vec!["true".into()]),
        (bb.clone(), vec!["false".into()]),
        (echo, vec!["via".into(), "argv[0]".into()]),
        (sh, vec!["-c".into(), "echo sh via argv0; false".into()]),
        // A dynamically linked program, a missing one, a `#!` script, all started by execve.
        (
            bb.clone(),
            vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "/bin/true; echo $?; nonexist; echo $?; {script} arg; echo $?",
                    script = dir.join("script.sh").display()
                ),
            ],
        ),
    ];
    let failures = diff_runs(&runs, identities(), LOADERS);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Applets busybox's shell runs by re-executing `/proc/self/exe` (a pipeline, `busybox APPLET`).
fn reexec_runs() -> Vec<(String, Vec<String>)> {
    vec![(
        BUSYBOX.into(),
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "cat {file} | wc -c; busybox true && echo ok",
                file = scratch().join("hello.txt").display()
            ),
        ],
    )]
}

#[test]
fn busybox_reexecutes_itself() {
    if !have_busybox("busybox_reexecutes_itself") {
        return;
    }
    let failures = diff_runs(&reexec_runs(), &[As::Invoker], LOADERS);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn busybox_reexecutes_itself_under_the_pagers_as_nobody() {
    if !have_busybox("busybox_reexecutes_itself_under_the_pagers_as_nobody") {
        return;
    }
    if !identities().contains(&As::Nobody) {
        return; // not root: the invoker run above is the only one
    }
    let failures = diff_runs(&reexec_runs(), &[As::Nobody], &["dpager", "hpager"]);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
#[ignore = "as uid 65534 /proc/self/exe names apager, which does not stay in the process to redirect \
            the program's execve of it: a re-executed applet starts apager (its own usage errors)"]
fn busybox_reexecutes_itself_under_apager_as_nobody() {
    if !have_busybox("busybox_reexecutes_itself_under_apager_as_nobody") {
        return;
    }
    if !identities().contains(&As::Nobody) {
        return;
    }
    let failures = diff_runs(&reexec_runs(), &[As::Nobody], &["apager"]);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
