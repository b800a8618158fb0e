//! Bad input given to each loader, from files on disk: a missing file, a directory, a file without
//! execute permission, a text file that is not a `#!` script, `#!` scripts with a missing or no
//! interpreter, an empty file, a truncated ELF file, a 32-bit ELF file, a relocatable object. Each must be refused before anything runs, with exit status 127 (not found)
//! or 126 (cannot execute), nothing on stdout, and exactly one line on stderr naming the file and the
//! problem; as the invoker and as uid 65534, who also meets files and directories it may not read,
//! execute or search, and must get the status a shell would give (126, "Permission denied"). (The ELF rules themselves are unit-tested case by case in crates/uexec-elf.)

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use difftest::{fixture, identities, require_loader, run_under_as, scratch_dir, As, Status};

/// The scratch directory, emptied once per process; uid 65534 can search it.
fn scratch() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch_dir("refusals")).clone()
}

/// Writes `bytes` to `name` in the scratch directory with mode `mode`.
fn file(name: &str, bytes: &[u8], mode: u32) -> String {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("write scratch file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.display().to_string()
}

/// The bad inputs `who` must see refused: the same files for both identities, plus, for uid 65534,
/// a file only its owner (root) may run, a file it may execute but not read (the kernel would run it;
/// a loader has to read it and cannot), and a file and a missing name inside a directory it may not
/// search.
fn cases(who: As) -> Vec<(String, i32, &'static str)> {
    let real = std::fs::read(fixture("malloc", "glibc-static").path).expect("read a fixture");
    let mut class32 = real.clone();
    class32[4] = 1; // ELFCLASS32
    let mut object = real.clone();
    object[16] = 1; // ET_REL
    let dir = scratch().join("a-directory");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cases = vec![
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
        // A text file without `#!` (execve refuses it; a shell would run it with sh).
        (
            file("no-shebang.sh", b"echo hi\n", 0o755),
            126,
            "not an ELF file",
        ),
        (
            file("bad-interpreter.sh", b"#!/nonexistent/interpreter\n", 0o755),
            127,
            "bad interpreter /nonexistent/interpreter: No such file or directory",
        ),
        (
            file("no-interpreter.sh", b"#!  \n", 0o755),
            126,
            "no interpreter",
        ),
        (file("empty", b"", 0o755), 126, "not an ELF file"),
        (file("truncated", &real[..40], 0o755), 126, "truncated"),
        (file("class32", &class32, 0o755), 126, "32-bit"),
        (file("object.o", &object, 0o755), 126, "relocatable object"),
    ];
    if who == As::Nobody {
        let locked = scratch().join("locked");
        std::fs::create_dir_all(&locked).expect("dir");
        let inside = locked.join("prog");
        std::fs::write(&inside, &real).expect("write scratch file");
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        cases.extend([
            (file("owner-only", &real, 0o700), 126, "Permission denied"),
            (file("execute-only", &real, 0o711), 126, "Permission denied"),
            (inside.display().to_string(), 126, "Permission denied"),
            (
                locked.join("missing").display().to_string(),
                126,
                "Permission denied",
            ),
        ]);
    }
    cases
}

#[test]
fn bad_input_is_refused_with_one_line_and_a_shell_status() {
    let mut failures = Vec::new();
    for loader in ["apager", "dpager", "hpager"] {
        let path = require_loader(loader);
        for (&who, (target, status, words)) in identities()
            .iter()
            .flat_map(|who| cases(*who).into_iter().map(move |c| (who, c)))
        {
            let out = run_under_as(who, &path, &["-q"], &target, &[] as &[&str]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().collect();
            let ok = out.status == Status::Code(status)
                && out.stdout.is_empty()
                && lines.len() == 1
                && lines[0].starts_with(&format!("{loader}: {target}: "))
                && lines[0].contains(words);
            if !ok {
                failures.push(format!(
                    "{loader} {target} {who}: expected status {status} and one line containing {words:?}; \
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
    for &who in identities() {
        let found = run_under_as(who, &apager, &["-q"], "true", &[] as &[&str]);
        assert_eq!(found.status, Status::Code(0), "{who}: {found:?}");
        let missing = run_under_as(
            who,
            &apager,
            &["-q"],
            "uexec-no-such-command",
            &[] as &[&str],
        );
        assert_eq!(missing.status, Status::Code(127), "{who}: {missing:?}");
        assert_eq!(
            String::from_utf8_lossy(&missing.stderr),
            "apager: uexec-no-such-command: command not found\n",
            "{who}"
        );
    }
}
