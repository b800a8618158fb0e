//! `#!` scripts as PROG (issue 12): run natively and under every loader, as every user, they must
//! print the same and exit the same way: an interpreter with and without its one argument, a script
//! whose interpreter is a script, the kernel's deepest chain (5 levels), and one level more, which
//! the kernel and the loaders refuse (`ELOOP`, 126).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use difftest::{compare, identities, require_loader, run_native_as, run_under_as, scratch_dir};

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const LOADERS: [(&str, &[&str]); 3] = [
    ("apager", &["-q"]),
    ("dpager", &["-q"]),
    ("hpager", &["-q", "--predict=next"]),
];

#[test]
fn scripts_run_as_execve_runs_them() {
    let dir = scratch_dir("scripts");
    let sh = script(&dir, "args.sh", "#!/bin/sh\necho \"$0|$#|$*\"; exit 3\n");
    let with_arg = script(
        &dir,
        "with-arg.sh",
        &format!("#!{}  one two  \n", sh.display()),
    );
    let mut chain = sh.clone();
    for level in 1..=4 {
        chain = script(
            &dir,
            &format!("level{level}.sh"),
            &format!("#!{}\n", chain.display()),
        );
    }
    let mut failures = Vec::new();
    for &who in identities() {
        for (what, path) in [
            ("a sh script", &sh),
            ("interpreter argument", &with_arg),
            ("5 levels", &chain),
        ] {
            let native = run_native_as(who, path, &["a", "b c"]);
            assert_eq!(native.status.shell_code(), 3, "{what} natively: {native:?}");
            for (loader, args) in LOADERS {
                let loaded = run_under_as(who, require_loader(loader), args, path, &["a", "b c"]);
                if let Err(e) = compare(what, &native, &loaded) {
                    failures.push(format!("{what} under {loader} {who}: {e}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn one_level_past_the_kernels_limit_is_refused() {
    let dir = scratch_dir("scripts-deep");
    let mut chain = script(&dir, "level0.sh", "#!/bin/sh\necho ran\n");
    for level in 1..=5 {
        chain = script(
            &dir,
            &format!("level{level}.sh"),
            &format!("#!{}\n", chain.display()),
        );
    }
    // Natively: execve fails with ELOOP (spawning the command fails).
    let err = std::process::Command::new(&chain).output().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(40), "natively: {err}");
    for &who in identities() {
        for (loader, args) in LOADERS {
            let out = run_under_as(who, require_loader(loader), args, &chain, &[] as &[&str]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.shell_code(), 126, "{loader} {who}: {stderr}");
            assert!(out.stdout.is_empty(), "{loader} {who}");
            assert!(
                stderr.contains("too many levels of #! interpreters"),
                "{stderr}"
            );
        }
    }
}
