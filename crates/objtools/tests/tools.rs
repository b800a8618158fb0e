//! objrun and objsh as a user runs them: against natively linked builds of the same C sources, hand-written
//! expectations, and the directory and semaphore state the test itself creates.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const OBJRUN: &str = env!("CARGO_BIN_EXE_objrun");
const OBJSH: &str = env!("CARGO_BIN_EXE_objsh");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../objload/fixtures")
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("objtools-fixtures");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

fn gcc(args: &[&str], srcs: &[&str], out: &str) -> PathBuf {
    let dest = out_dir().join(out);
    let tmp = dest.with_extension(format!("tmp{}", std::process::id()));
    let o = Command::new("gcc")
        .args(args)
        .args(srcs.iter().map(|s| fixtures().join(s)))
        .arg("-o")
        .arg(&tmp)
        .output()
        .unwrap_or_else(|e| panic!("gcc: {e}"));
    assert!(
        o.status.success(),
        "gcc {args:?} {srcs:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &dest).unwrap_or_else(|e| panic!("{e}"));
    dest
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn objrun_runs_hello_like_the_native_build() {
    let obj = gcc(&["-c", "-O2"], &["hello.c"], "hello.o");
    let exe = gcc(&["-O2"], &["hello.c"], "hello");
    for args in [&[][..], &["objects"]] {
        let native = run(Command::new(&exe).args(args));
        let loaded = run(Command::new(OBJRUN).arg(&obj).args(args));
        assert_eq!(text(&loaded.stdout), text(&native.stdout));
        assert_eq!(loaded.status.code(), Some(0), "{}", text(&loaded.stderr));
    }
    assert_eq!(
        text(&run(Command::new(OBJRUN).arg(&obj).arg("you")).stdout),
        "hello, you\n"
    );
}

#[test]
fn objrun_links_libraries_and_exits_with_mains_value() {
    for flags in [&["-O0"][..], &["-O3", "-fPIC"], &["-O2", "-mcmodel=large"]] {
        let tag = flags.join("");
        let lib = gcc(
            &[&["-c"][..], flags].concat(),
            &["lib_math.c"],
            &format!("lib_math{tag}.o"),
        );
        let prog = gcc(
            &[&["-c"][..], flags].concat(),
            &["prog_report.c"],
            &format!("prog_report{tag}.o"),
        );
        let exe = gcc(
            flags,
            &["prog_report.c", "lib_math.c"],
            &format!("prog_report{tag}"),
        );
        let (want, got) = (
            out_dir().join(format!("want{tag}")),
            out_dir().join(format!("got{tag}")),
        );
        assert_eq!(run(Command::new(&exe).arg(&want)).status.code(), Some(3));
        let o = run(Command::new(OBJRUN)
            .arg("--lib")
            .arg(&lib)
            .arg(&prog)
            .arg(&got));
        assert_eq!(o.status.code(), Some(3), "{flags:?}: {}", text(&o.stderr));
        let (want, got) = (
            std::fs::read_to_string(&want),
            std::fs::read_to_string(&got),
        );
        assert_eq!(
            got.unwrap_or_default(),
            want.unwrap_or_default(),
            "{flags:?}"
        );
    }
}

#[test]
fn objrun_load_errors_are_one_line_each_and_status_1() {
    let prog = gcc(&["-c", "-O2"], &["prog_report.c"], "prog_report_alone.o");
    let o = run(Command::new(OBJRUN).arg(&prog).arg("/dev/null"));
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 13, "{err}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("objrun: ") && l.contains(": undefined symbol `lib_")),
        "{err}"
    );
    let o = run(Command::new(OBJRUN)
        .arg("--lib")
        .arg("/nonexistent.a")
        .arg(&prog));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr),
        "objrun: /nonexistent.a: No such file or directory (os error 2)\n"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn a_loaded_program_uses_the_c_layer_of_its_host() {
    let lib = gcc(&["-c", "-O2"], &["lib_math.c"], "lib_math_capi.o");
    let prog = gcc(&["-c", "-O2"], &["capi_prog.c"], "capi_prog.o");
    let o = run(Command::new(OBJRUN).arg(&prog).arg(&lib));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(
        text(&o.stdout),
        "before load: function `lib_add` is not defined by any loaded library\n\
         second load: already loaded\n\
         lib_add(40, 2) = 42\n\
         unload while held: refused\n\
         unloaded; again: not loaded\n"
    );
}

fn objsh(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(OBJSH)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn objsh_loads_lists_calls_and_unloads() {
    let lib = gcc(
        &["-c", "-O2", "-fPIC", "-g"],
        &["lib_math.c"],
        "lib_math_sh.o",
    );
    let lib = lib.display().to_string();
    let script = format!(
        "load {lib}\nload {lib}\ncall lib_add 40 2\ncall lib_mul -6 0x7\ncall lib_nothing\nlibs\nunload {lib}\n\
         call lib_add 1 2\nunload {lib}\nexit\ncall lib_add 1 1\n"
    );
    let o = objsh(&[], &script);
    let out = text(&o.stdout);
    let err = text(&o.stderr);
    assert!(
        !out.contains("objsh$"),
        "no prompt when stdin is not a terminal: {out}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], " = 42");
    assert_eq!(lines[1], " = -42");
    assert!(
        lines[2].starts_with("LIBRARY")
            && lines[2].contains("FUNCTION")
            && lines[2].contains("ADDRESS"),
        "{out}"
    );
    let rows: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&lib)).collect();
    assert_eq!(rows.len(), 12, "one row per function: {out}");
    assert!(
        rows.iter()
            .any(|r| r.contains("lib_add") && r.contains("0x")),
        "{out}"
    );
    assert_eq!(lines.len(), 3 + 12, "nothing after exit runs: {out}");
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!("objsh: {lib}: library is already loaded").as_str(),
            "objsh: function `lib_nothing` is not defined by any loaded library",
            "objsh: function `lib_add` is not defined by any loaded library",
            format!("objsh: {lib}: library is not loaded").as_str(),
        ]
    );
}

#[test]
fn objsh_ls_lists_a_directory_sorted_with_directories_marked() {
    let dir = out_dir().join(format!("lsdir{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["b_dir", "a dir", ".hidden_dir"] {
        std::fs::create_dir_all(dir.join(d)).unwrap_or_else(|e| panic!("{e}"));
    }
    for f in ["zeta", "Alpha", "m.txt"] {
        std::fs::write(dir.join(f), f).unwrap_or_else(|e| panic!("{e}"));
    }
    let o = objsh(
        &[],
        &format!("ls {}\nls {}/missing\n", dir.display(), dir.display()),
    );
    // Expected, computed here: bytewise order ("A" < "a" < "b" < "m" < "z"; '.' first).
    assert_eq!(
        text(&o.stdout),
        ".hidden_dir/\nAlpha\na dir/\nb_dir/\nm.txt\nzeta\n"
    );
    assert_eq!(
        text(&o.stderr),
        format!(
            "ls: cannot open directory '{}/missing': No such file or directory\nobjsh: ls: exit status 1\n",
            dir.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn objsh_runs_command_objects_from_a_directory() {
    let dir = out_dir().join("commands");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    gcc(&["-c", "-O1"], &["hello.c"], "commands/greet.o");
    let o = objsh(
        &["--commands", &dir.display().to_string()],
        "greet\ngreet there\nnope\nls /\n",
    );
    let out = text(&o.stdout);
    assert!(out.starts_with("hello, world\nhello, there\n"), "{out}");
    assert!(
        out.contains("\nproc/\n") && out.contains("\netc/\n"),
        "built-in ls still found: {out}"
    );
    assert_eq!(text(&o.stderr), "objsh: nope: command not found\n");
}

#[test]
fn objsh_semdump_shows_a_set_with_its_values_and_waiters() {
    // SAFETY: plain System V semaphore calls on a private set this test creates and removes.
    let id = unsafe { libc::semget(libc::IPC_PRIVATE, 3, 0o600 | libc::IPC_CREAT) };
    assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
    for (n, v) in [(0, 1), (1, 2), (2, 3)] {
        // SAFETY: SETVAL on this set, with an int value.
        assert_eq!(unsafe { libc::semctl(id, n, libc::SETVAL, v) }, 0);
    }
    // A thread blocks decrementing semaphore 0 by 5: one waiter for an increase.
    let waiter = std::thread::spawn(move || {
        let mut op = libc::sembuf {
            sem_num: 0,
            sem_op: -5,
            sem_flg: 0,
        };
        // SAFETY: one operation on this set; it returns (EIDRM) when the set is removed.
        unsafe { libc::semop(id, &mut op, 1) }
    });
    // SAFETY: GETNCNT on this set.
    while unsafe { libc::semctl(id, 0, libc::GETNCNT) } != 1 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = objsh(&[], "semdump\n");
    // SAFETY: removes the set this test created.
    unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
    let _ = waiter.join();
    let out = text(&o.stdout);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["SEMID", "KEY", "NSEMS", "VALUES", "WAITING(N/Z)"],
        "{out}"
    );
    let row = lines
        .find(|l| l.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("set {id} not listed: {out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            id.to_string().as_str(),
            "0x00000000",
            "3",
            "1,2,3",
            "1/0,0/0,0/0"
        ],
        "{out}"
    );
}

#[test]
fn objsh_splits_words_as_a_shell_and_has_help_and_exit_n() {
    let dir = out_dir().join("commands-quoting");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    gcc(&["-c", "-O1"], &["hello.c"], "commands-quoting/greet.o");
    let o = objsh(
        &["--commands", &dir.display().to_string()],
        "greet \"big  world\"\ngreet 'it''s'\ngreet a\\ b\nhelp\nexit 7\ngreet never\n",
    );
    let out = text(&o.stdout);
    assert!(
        out.starts_with("hello, big  world\nhello, its\nhello, a b\n"),
        "{out}"
    );
    assert!(
        out.contains("exit [N]") && out.contains("call NAME"),
        "help: {out}"
    );
    assert!(!out.contains("never"), "{out}");
    assert_eq!(o.status.code(), Some(7));
    let o = objsh(&[], "greet \"open\n");
    assert_eq!(text(&o.stderr), "objsh: unterminated \"\n");
}

#[test]
fn objsh_scripts_fail_when_a_command_failed() {
    let o = objsh(&[], "libs\n");
    assert_eq!(o.status.code(), Some(0));
    let o = objsh(&[], "nope\nlibs\n");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let o = objsh(&["--commands", "/nonexistent-dir"], "");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "objsh: --commands /nonexistent-dir: not a directory\n"
    );
}

#[test]
fn objrun_options_end_at_the_program() {
    let prog = gcc(&["-c", "-O1"], &["hello.c"], "hello_opts.o");
    let prog = prog.display().to_string();
    // `--lib x` after PROG.o is the program's argv, as for the loaders.
    let o = run(Command::new(OBJRUN).args([&prog, "--lib", "x"]));
    assert_eq!(text(&o.stdout), "hello, --lib\n", "{}", text(&o.stderr));
    let o = run(Command::new(OBJRUN).args(["--", &prog, "--"]));
    assert_eq!(text(&o.stdout), "hello, --\n", "{}", text(&o.stderr));
    let o = run(Command::new(OBJRUN).arg("-V"));
    assert!(
        text(&o.stdout).starts_with("objrun "),
        "{}",
        text(&o.stdout)
    );
    let o = run(Command::new(OBJSH).arg("--help"));
    assert!(
        text(&o.stdout).contains("Usage: objsh"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn objsh_reports_a_fault_in_called_code_and_goes_on() {
    let lib = gcc(&["-c", "-O1"], &["lib_faulty.c"], "lib_faulty.o");
    let lib = lib.display();
    let script = format!(
        "load {lib}\ncall add 2 3\ncall boom\ncall add 1 1\nunload {lib}\nload {lib}\ncall add 4 5\n"
    );
    let o = objsh(&[], &script);
    let out = text(&o.stdout);
    let err = text(&o.stderr);
    // Natively `boom` kills the process by SIGSEGV; objsh reports it and runs the next lines.
    assert_eq!(out, " = 5\n = 9\n", "stderr: {err}");
    assert!(
        err.contains("call: boom: SIGSEGV at address 0x0 in boom"),
        "stderr: {err}"
    );
    assert!(
        err.contains("faulted or was interrupted earlier"),
        "stderr: {err}"
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed line makes a piped script fail"
    );
}

#[test]
fn objsh_call_with_the_wrong_number_of_arguments_is_an_error() {
    let lib = gcc(&["-c", "-O1", "-g"], &["lib_math.c"], "lib_math_g.o");
    let lib = lib.display();
    let o = objsh(
        &[],
        &format!(
            "load {lib}\ncall lib_add 1\ncall lib_add 1 2 3\ncall lib_bump 9\ncall lib_add 40 2\n"
        ),
    );
    assert_eq!(text(&o.stdout), " = 42\n");
    assert_eq!(
        text(&o.stderr),
        "objsh: call: lib_add takes 2 arguments (a, b), 1 given\n\
         objsh: call: lib_add takes 2 arguments (a, b), 3 given\n\
         objsh: call: lib_bump takes no arguments, 1 given\n"
    );
    assert_eq!(o.status.code(), Some(1));
    // Without debugging information the count cannot be known: objsh says so once and calls.
    let bare = gcc(&["-c", "-O1"], &["lib_math.c"], "lib_math_bare.o");
    let o = objsh(
        &[],
        &format!(
            "load {}\ncall lib_add 1\ncall lib_add 1 2\n",
            bare.display()
        ),
    );
    assert_eq!(text(&o.stdout), " = 1\n = 3\n");
    assert_eq!(
        text(&o.stderr)
            .matches("has no debugging information")
            .count(),
        1,
        "{}",
        text(&o.stderr)
    );
}
