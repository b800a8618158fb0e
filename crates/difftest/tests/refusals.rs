//! Bad input given to each loader, from files on disk: a missing file, a directory, a file without
//! execute permission, a shell script, an empty file, a truncated ELF file, a 32-bit ELF file, a
//! relocatable object. Each must be refused before anything runs, with exit status 127 (not found)
//! or 126 (cannot execute), nothing on stdout, and exactly one line on stderr naming the file and the
//! problem. (The ELF rules themselves are unit-tested case by case in crates/uexec-elf.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use difftest::{fixture, require_loader, run_under, Status};

fn scratch() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("refusals");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Writes `bytes` to `name` in the scratch directory with mode `mode`.
fn file(name: &str, bytes: &[u8], mode: u32) -> String {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("write scratch file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.display().to_string()
}

fn cases() -> Vec<(String, i32, &'static str)> {
    let real = std::fs::read(fixture("malloc", "glibc-static").path).expect("read a fixture");
    let mut class32 = real.clone();
    class32[4] = 1; // ELFCLASS32
    let mut object = real.clone();
    object[16] = 1; // ET_REL
    let dir = scratch().join("a-directory");
    std::fs::create_dir_all(&dir).expect("dir");
    vec![
        (
            scratch().join("does-not-exist").display().to_string(),
            127,
            "No such file or directory",
        ),
        (dir.display().to_string(), 126, "Is a directory"),
        (
            file("not-executable", &real, 0o644),
            126,
            "Permission denied",
        ),
        (
            file("script.sh", b"#!/bin/sh\necho hi\n", 0o755),
            126,
            "not an ELF file",
        ),
        (file("empty", b"", 0o755), 126, "not an ELF file"),
        (file("truncated", &real[..40], 0o755), 126, "truncated"),
        (file("class32", &class32, 0o755), 126, "32-bit"),
        (file("object.o", &object, 0o755), 126, "relocatable object"),
    ]
}

#[test]
fn bad_input_is_refused_with_one_line_and_a_shell_status() {
    let mut failures = Vec::new();
    for loader in ["apager", "dpager", "hpager"] {
        let path = require_loader(loader);
        for (target, status, words) in cases() {
            let out = run_under(&path, &["-q"], &target, &[] as &[&str]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let ok = out.status == Status::Code(status)
                && out.stdout.is_empty()
                && lines.len() == 1
                && lines[0].starts_with(&format!("{loader}: {target}: "))
                && lines[0].contains(words);
            if !ok {
                failures.push(format!(
                    "{loader} {target}: expected status {status} and one line containing {words:?}; \
                     got {:?}, stdout {:?}, stderr {stderr:?}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_name_without_slash_is_looked_up_in_path() {
    // run_under gives the children a fixed PATH (/usr/local/bin:/usr/bin:/bin): `true` is found there,
    // a made-up name is not.
    let apager = require_loader("apager");
    let found = run_under(&apager, &["-q"], "true", &[] as &[&str]);
    assert_eq!(found.status, Status::Code(0), "{found:?}");
    let missing = run_under(&apager, &["-q"], "uexec-no-such-command", &[] as &[&str]);
    assert_eq!(missing.status, Status::Code(127), "{missing:?}");
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "apager: uexec-no-such-command: command not found\n"
    );
}
