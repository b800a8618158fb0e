//! Differential testing of the uexec loaders.
//!
//! `build.rs` compiles every program of `fixtures/` in every variant (glibc static and
//! static-pie, musl static, freestanding) into `$OUT_DIR`; [`FIXTURES`] lists them.
//! The integration tests run each fixture natively and under a loader
//! (`apager -q PROG ARGS...`) and require the same stdout and the same exit status as
//! a shell sees it (exit code, or the killing signal; the core-dump flag is not
//! compared, and children run with `RLIMIT_CORE` 0 so no core files are written).
//!
//! The harness never normalises output: fixtures print only what is deterministic
//! (see `fixtures/README.md`). Children get a fixed environment ([`ENV`]), stdin from
//! `/dev/null`, and absolute program paths, so that argv, envp and AT_EXECFN are the
//! same for every run.
//!
//! Loaders are looked up in `$UEXEC_BIN_DIR` if set, else in `<workspace>/target/release`.
//!
//! # Two identities
//! Every differential test runs twice in the same test function ([`identities`]): as the user
//! running the tests ([`As::Invoker`], root in CI) and as uid/gid 65534 with no supplementary
//! groups ([`As::Nobody`]), entered by prefixing each child with
//! `/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --`. A native run is only ever
//! compared with a loader run under the same identity. When the tests do not run as root there is
//! only one identity, the invoker's, and a note says so once per test process.
//!
//! Uid 65534 must be able to reach the programs and loaders it runs. A path is used as it is when
//! every directory above it is searchable by others and the file is readable (and, if it has any
//! execute bit, executable) by others; otherwise it is copied, once per process and content, into
//! `$TMPDIR/uexec-difftest.UID/nobody/` (mode 0755) and that copy is what *both* the native and the
//! loader run of that identity see, so the two still get the same path. (A checkout under `/root`,
//! mode 0700, or a build under umask 077, takes that route; with umask 022 build.rs's fixtures and
//! the loaders are mode 0755 under 0755 directories and nothing is copied.) Only files the harness
//! builds or finds itself (under the workspace, the build directory or the loaders' directory) are
//! ever copied: a file the tests make unreadable on purpose is run as it is. Scratch files the tests
//! write go in [`scratch_dir`], which 65534 can always reach and write.
//!
//! # Safety
//! One `unsafe` block: the `pre_exec` hook that lowers `RLIMIT_CORE` in the child
//! between fork and exec (see [`command`]).

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How the tests use a fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Run natively and under each loader; stdout and exit status must match.
    Diff,
    /// Runs natively, but every loader must refuse it (exit 126, "overlaps").
    Refused,
}

/// One built fixture program.
#[derive(Clone, Copy, Debug)]
pub struct Fixture {
    /// Base name of the source, e.g. `auxv_dump`.
    pub name: &'static str,
    /// `glibc-static`, `glibc-static-pie`, `musl-static`, `nolibc-static`, `nolibc-static-pie`.
    pub variant: &'static str,
    /// Absolute path of the executable in `$OUT_DIR/fixtures`.
    pub path: &'static str,
    /// How the tests use it.
    pub role: Role,
}

include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

/// The fixture `name` built as `variant`; panics if it was not built.
#[track_caller]
pub fn fixture(name: &str, variant: &str) -> &'static Fixture {
    FIXTURES
        .iter()
        .find(|f| f.name == name && f.variant == variant)
        .unwrap_or_else(|| panic!("fixture {name} ({variant}) was not built"))
}

/// Every built variant of the fixture `name`.
pub fn variants(name: &str) -> impl Iterator<Item = &'static Fixture> + '_ {
    FIXTURES.iter().filter(move |f| f.name == name)
}

/// The environment every child gets, and nothing else.
pub const ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LC_ALL", "C"),
    ("UEXEC_DIFFTEST", "1"),
    ("EMPTY", ""),
    ("WITH_SPACES", "a b  c"),
];

/// How long one child may run before it is killed and the run counted as hung.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Exit status as a shell sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Exited with this code (`$?` = code).
    Code(i32),
    /// Killed by this signal (`$?` = 128 + signal); whether a core was dumped is ignored.
    Signal(i32),
}

impl Status {
    fn from_exit(s: ExitStatus) -> Status {
        match (s.code(), s.signal()) {
            (Some(c), _) => Status::Code(c),
            (None, Some(sig)) => Status::Signal(sig),
            (None, None) => Status::Code(-1),
        }
    }

    /// `$?` in a shell.
    pub fn shell_code(self) -> i32 {
        match self {
            Status::Code(c) => c,
            Status::Signal(s) => 128 + s,
        }
    }
}

/// `SIGSEGV`, for expectations.
pub const SIGSEGV: i32 = 11;

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        31 => "SIGSYS",
        _ => "signal",
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Status::Code(c) => write!(f, "exit {c}"),
            Status::Signal(s) => write!(
                f,
                "killed by {} ({s}; shell status {})",
                signal_name(s),
                128 + s
            ),
        }
    }
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Everything written to fd 1.
    pub stdout: Vec<u8>,
    /// Everything written to fd 2.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub status: Status,
    /// True if it ran past [`TIMEOUT`] and was killed (status is then SIGKILL).
    pub timed_out: bool,
}

/// A command with the harness's fixed conditions: environment [`ENV`] only, stdin
/// `/dev/null`, stdout and stderr piped, no core dumps.
fn command(program: &OsStr) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .envs(ENV.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    extern "C" {
        fn setrlimit(resource: i32, rlim: *const [u64; 2]) -> i32;
    }
    const RLIMIT_CORE: i32 = 4;
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe functions may be called; setrlimit is a plain system call
    // wrapper that neither allocates nor takes locks, and its argument is a local.
    unsafe {
        cmd.pre_exec(|| {
            let none = [0u64, 0u64];
            setrlimit(RLIMIT_CORE, &none);
            Ok(())
        });
    }
    cmd
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits for `child` with [`TIMEOUT`], collecting its output.
fn finish(mut child: Child, what: &str) -> Outcome {
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let mut timed_out = false;
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > TIMEOUT => {
                timed_out = true;
                let _ = child.kill();
                break child
                    .wait()
                    .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
            }
            Ok(None) => {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    Outcome {
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        status: Status::from_exit(status),
        timed_out,
    }
}

/// Who a child runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// The user running the tests, unchanged (root in CI).
    Invoker,
    /// uid 65534, gid 65534, no supplementary groups, no capabilities: an ordinary user. Only used
    /// when the invoker is root (see [`identities`]).
    Nobody,
}

/// `setpriv` and the options that make a root process uid/gid 65534.
pub const SETPRIV: &str = "/usr/bin/setpriv";
const DROP_TO_NOBODY: &[&str] = &["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

impl fmt::Display for As {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            As::Invoker => write!(f, "as uid {}", effective_uid().unwrap_or(u32::MAX)),
            As::Nobody => f.write_str("as uid 65534"),
        }
    }
}

/// The effective uid of the test process, from `/proc/self/status`.
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The identities every differential test runs under: the invoker and, when the invoker is root,
/// uid 65534 too. Not root: only the invoker, and a note (once per process) says so. Root without
/// `setpriv` is a failure, not a skip.
pub fn identities() -> &'static [As] {
    static NOTED: std::sync::Once = std::sync::Once::new();
    if effective_uid() == Some(0) {
        assert!(
            Path::new(SETPRIV).is_file(),
            "{SETPRIV} not found: the tests run every program as uid 65534 too (Debian: util-linux)"
        );
        &[As::Invoker, As::Nobody]
    } else {
        NOTED.call_once(|| {
            note(&format!(
                "NOTE: the tests run as uid {} (not root): each differential test runs once, as \
                 that user; the second pass as uid 65534 needs root",
                effective_uid().map_or("?".to_owned(), |u| u.to_string())
            ))
        });
        &[As::Invoker]
    }
}

/// A directory for the tests' scratch files, `$TMPDIR/uexec-difftest.UID/NAME`, created empty
/// (any previous content removed) with mode 0777 so that uid 65534 can read and write it; its parent
/// is mode 0755.
pub fn scratch_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let base = harness_tmp();
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
    dir
}

/// `$TMPDIR/uexec-difftest.UID`, mode 0755.
fn harness_tmp() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let base = std::env::temp_dir().join(format!(
        "uexec-difftest.{}",
        effective_uid().unwrap_or(u32::MAX)
    ));
    std::fs::create_dir_all(&base)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", base.display()));
    base
}

/// True if a process with no relation to the owner or group (uid 65534) can search every
/// directory above `path` and read the file, and execute it if anyone can.
fn others_can_use(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode()).ok();
    let Some(file) = mode(path) else {
        return true; // missing: let the run report it
    };
    let dirs_ok = path
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .all(|d| mode(d).is_some_and(|m| m & 0o001 != 0));
    let exec_ok = file & 0o111 == 0 || file & 0o001 != 0;
    dirs_ok && file & 0o004 != 0 && exec_ok
}

/// True for the files the harness builds or finds for itself: under the workspace, the build
/// directory or [`bin_dir`]. Only those are ever copied; any other path (a refusal test's file that
/// 65534 must not be able to read, a name looked up in `PATH`) is run exactly as given.
fn built_here(path: &Path) -> bool {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.ancestors().nth(2).unwrap_or(manifest);
    // $OUT_DIR is <target>/<profile>/build/difftest-HASH/out.
    let out = Path::new(env!("OUT_DIR"));
    let target = out.ancestors().nth(4).unwrap_or(out);
    path.is_absolute()
        && (path.starts_with(workspace) || path.starts_with(target) || path.starts_with(bin_dir()))
}

/// `path` as uid 65534 should be given it: `path` itself if it can use it or if the harness did not
/// build it, else a copy it can use (see the crate header).
pub fn reachable_by_nobody(path: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPYING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !built_here(path) || others_can_use(path) {
        return path.to_path_buf();
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return path.to_path_buf();
    };
    let flat = path.display().to_string().replace('/', "_");
    let dir = harness_tmp().join("nobody");
    let copy = dir.join(flat.trim_start_matches('_'));
    let _guard = COPYING.lock().unwrap_or_else(|e| e.into_inner());
    let fresh = std::fs::metadata(&copy)
        .is_ok_and(|c| c.len() == meta.len() && c.modified().ok() >= meta.modified().ok());
    if !fresh {
        std::fs::create_dir_all(&dir).expect("create the copy directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // One copy at a time in this process (the lock); other processes use other names.
        let tmp = dir.join(format!(".copying.{}", std::process::id()));
        std::fs::copy(path, &tmp)
            .unwrap_or_else(|e| panic!("cannot copy {} for uid 65534: {e}", path.display()));
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&tmp, &copy).expect("rename the copy into place");
    }
    copy
}

/// A command that runs `program` as `who`, with [`command`]'s fixed conditions.
fn command_as(who: As, program: &Path) -> Command {
    match who {
        As::Invoker => command(program.as_os_str()),
        As::Nobody => {
            let mut cmd = command(OsStr::new(SETPRIV));
            cmd.args(DROP_TO_NOBODY).arg(reachable_by_nobody(program));
            cmd
        }
    }
}

/// A command that runs `program` as `who` with the harness's fixed environment, standard input
/// empty and standard output and error piped, for tests that drive a child themselves.
pub fn command_for(who: As, program: &Path) -> Command {
    command_as(who, program)
}

/// The path `who` runs for `path` (a copy for uid 65534 when it cannot reach `path`).
pub fn path_as(who: As, path: &Path) -> PathBuf {
    match who {
        As::Invoker => path.to_path_buf(),
        As::Nobody => reachable_by_nobody(path),
    }
}

/// Runs `path args...` natively (argv[0] = `path`) as the invoker.
pub fn run_native<S: AsRef<OsStr>>(path: impl AsRef<Path>, args: &[S]) -> Outcome {
    run_native_as(As::Invoker, path, args)
}

/// Runs `path args...` natively as `who` (argv[0] = the path run, see [`path_as`]).
pub fn run_native_as<S: AsRef<OsStr>>(who: As, path: impl AsRef<Path>, args: &[S]) -> Outcome {
    let path = path.as_ref();
    let child = command_as(who, path)
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {who}: {e}", path.display()));
    finish(child, &path.display().to_string())
}

/// Runs `loader loader_args... path args...` as the invoker: the program as the loader's PROG.
pub fn run_under<S: AsRef<OsStr>, T: AsRef<OsStr>>(
    loader: impl AsRef<Path>,
    loader_args: &[S],
    path: impl AsRef<Path>,
    args: &[T],
) -> Outcome {
    run_under_as(As::Invoker, loader, loader_args, path, args)
}

/// Runs `loader loader_args... path args...` as `who`; the loader and the program are both given
/// as [`path_as`] has them for `who`.
pub fn run_under_as<S: AsRef<OsStr>, T: AsRef<OsStr>>(
    who: As,
    loader: impl AsRef<Path>,
    loader_args: &[S],
    path: impl AsRef<Path>,
    args: &[T],
) -> Outcome {
    let loader = loader.as_ref();
    let child = command_as(who, loader)
        .args(loader_args)
        .arg(path_as(who, path.as_ref()))
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {who}: {e}", loader.display()));
    finish(child, &loader.display().to_string())
}

/// Where the loader binaries are looked for: `$UEXEC_BIN_DIR`, else
/// `<workspace>/target/release`.
pub fn bin_dir() -> PathBuf {
    match std::env::var_os("UEXEC_BIN_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            // crates/difftest -> the workspace root
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .ancestors()
                .nth(2)
                .unwrap_or(manifest)
                .join("target/release")
        }
    }
}

/// The loader `name` (`apager`, `dpager`, `hpager`) if it exists. Private: tests get a loader
/// through [`require_loader`] only, so that a loader that was not built fails the test instead of
/// skipping it.
fn find_loader(name: &str) -> Option<PathBuf> {
    let p = bin_dir().join(name);
    let p = p.canonicalize().unwrap_or(p);
    p.is_file().then_some(p)
}

/// The loader `name`; panics with a hint if it is not built (every test file, apager's, dpager's and
/// hpager's alike, fails rather than passing without running anything).
#[track_caller]
pub fn require_loader(name: &str) -> PathBuf {
    find_loader(name).unwrap_or_else(|| {
        panic!(
            "{name} not found at {}: build it with `make` (or `make loaders`), \
             or point UEXEC_BIN_DIR at the directory that holds it",
            bin_dir().join(name).display()
        )
    })
}

/// Prints `line` on the test process's stderr even when the test harness captures
/// output (it captures only the `print!` family), so that skips and notes are always visible.
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// What a fixture must do natively (a check on the fixture itself).
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Exit 0.
    Success,
    /// Killed by this signal.
    Signal(i32),
}

/// One run of a fixture: its arguments and what it must do natively.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// Arguments after argv[0].
    pub args: &'static [&'static str],
    /// The native outcome the fixture is written to produce.
    pub native: Expect,
}

const fn ok(args: &'static [&'static str]) -> Case {
    Case {
        args,
        native: Expect::Success,
    }
}

const fn segv(args: &'static [&'static str]) -> Case {
    Case {
        args,
        native: Expect::Signal(SIGSEGV),
    }
}

/// The runs the differential tests make of fixture `name`.
pub fn cases(name: &str) -> &'static [Case] {
    const AUXV_DUMP: &[Case] = &[
        ok(&["first", "two words", "", "--flag=value", "\u{e9}t\u{e9}"]),
        ok(&[]),
    ];
    const ENTRY_PROBE: &[Case] = &[ok(&["a", "b"])];
    const BSS_SCAN: &[Case] = &[
        ok(&["seq"]),
        ok(&["sparse"]),
        ok(&["stride"]),
        ok(&["backward"]),
        ok(&["random"]),
        // The first access to each page a read (the benchmark's `-rmw` workloads).
        ok(&["sparse", "rmw"]),
    ];
    const FAULT: &[Case] = &[
        segv(&["null"]),
        segv(&["null-write"]),
        segv(&["write-text"]),
        segv(&["write-rodata"]),
        segv(&["past-bss"]),
        segv(&["exec-data"]),
        ok(&["ok"]),
    ];
    const NO_ARGS: &[Case] = &[ok(&[])];
    match name {
        "auxv_dump" => AUXV_DUMP,
        "entry_probe" => ENTRY_PROBE,
        "bss_scan" => BSS_SCAN,
        "fault" => FAULT,
        _ => NO_ARGS,
    }
}

/// A line diff of `a` (native) against `b` (loader): lines only in `a` are marked
/// `-`, only in `b` `+`, with two lines of context around each change.
pub fn line_diff(a: &[u8], b: &[u8]) -> String {
    let a: Vec<&[u8]> = a.split_inclusive(|&c| c == b'\n').collect();
    let b: Vec<&[u8]> = b.split_inclusive(|&c| c == b'\n').collect();
    let show = |l: &[u8]| {
        let s = String::from_utf8_lossy(l);
        let s = s
            .strip_suffix('\n')
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{s}\\ (no newline)"));
        s
    };
    // Trim the common prefix and suffix, then LCS on the middle (bounded).
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<(char, &[u8])> = Vec::new();
    if am.len().saturating_mul(bm.len()) <= 4_000_000 {
        let (n, m) = (am.len(), bm.len());
        let mut l = vec![0u32; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                l[i * (m + 1) + j] = if am[i] == bm[j] {
                    l[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    l[(i + 1) * (m + 1) + j].max(l[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push((' ', am[i]));
                i += 1;
                j += 1;
            } else if j < m && (i == n || l[i * (m + 1) + j + 1] >= l[(i + 1) * (m + 1) + j]) {
                ops.push(('+', bm[j]));
                j += 1;
            } else {
                ops.push(('-', am[i]));
                i += 1;
            }
        }
    } else {
        ops.extend(am.iter().map(|l| ('-', *l)));
        ops.extend(bm.iter().map(|l| ('+', *l)));
    }
    let mut all: Vec<(char, &[u8])> = a[..pre].iter().map(|l| (' ', *l)).collect();
    all.extend(ops);
    all.extend(a[a.len() - suf..].iter().map(|l| (' ', *l)));
    let changed: Vec<bool> = all.iter().map(|(c, _)| *c != ' ').collect();
    let mut out = String::new();
    let mut skipped = false;
    for (k, (c, l)) in all.iter().enumerate() {
        let near = (k.saturating_sub(2)..(k + 3).min(all.len())).any(|x| changed[x]);
        if near {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            out.push_str(&format!("{c} {}\n", show(l)));
        } else {
            skipped = true;
        }
    }
    if skipped {
        out.push_str("  ...\n");
    }
    out
}

fn quote(args: &[&str]) -> String {
    args.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares one native run with one loader run: `Err` holds a report with the diff
/// of stdout, both statuses and both stderrs.
pub fn compare(what: &str, native: &Outcome, loaded: &Outcome) -> Result<(), String> {
    let mut problems = Vec::new();
    if loaded.timed_out {
        problems.push(format!(
            "under the loader it ran longer than {TIMEOUT:?} and was killed"
        ));
    }
    if native.status != loaded.status {
        problems.push(format!(
            "status: native {}, under the loader {}",
            native.status, loaded.status
        ));
    }
    if native.stdout != loaded.stdout {
        problems.push(format!(
            "stdout differs (- native, + under the loader):\n{}",
            line_diff(&native.stdout, &loaded.stdout)
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{what}:\n  {}\n  native stderr: {:?}\n  loader stderr: {:?}\n",
        problems.join("\n  "),
        String::from_utf8_lossy(&native.stderr),
        String::from_utf8_lossy(&loaded.stderr)
    ))
}

/// Runs every case of fixture `name` built as `variant` natively and under
/// `loader loader_args...`, once per identity of [`identities`] (native as uid 65534 against the
/// loader as uid 65534, the invoker against the invoker), and returns all mismatches.
/// A fixture that does not behave as written natively is also reported.
pub fn check_fixture(
    loader: &Path,
    loader_args: &[&str],
    name: &str,
    variant: &str,
) -> Result<(), String> {
    let fx = fixture(name, variant);
    let mut failures = Vec::new();
    for &who in identities() {
        for case in cases(name) {
            let what = format!(
                "{name} ({variant}) {} under `{} {}` {who}",
                quote(case.args),
                loader.file_name().unwrap_or_default().to_string_lossy(),
                loader_args.join(" ")
            );
            let native = run_native_as(who, fx.path, case.args);
            let native_ok = match case.native {
                Expect::Success => native.status == Status::Code(0),
                Expect::Signal(s) => native.status == Status::Signal(s),
            };
            if !native_ok || native.timed_out {
                failures.push(format!(
                    "{what}: the fixture itself misbehaves natively ({}; expected {:?}); stdout:\n{}\nstderr:\n{}",
                    native.status,
                    case.native,
                    String::from_utf8_lossy(&native.stdout),
                    String::from_utf8_lossy(&native.stderr)
                ));
                continue;
            }
            let loaded = run_under_as(who, loader, loader_args, fx.path, case.args);
            if let Err(e) = compare(&what, &native, &loaded) {
                failures.push(e);
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// Builds `fixtures/go/NAME.go` as a static Go binary (`CGO_ENABLED=0`) in the harness's temporary
/// directory;
/// `None`, with a printed note, when `go` is not installed (Debian: golang-go; .ci/run installs it).
pub fn go_binary(name: &str) -> Option<PathBuf> {
    let go = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("go"))
            .find(|p| p.is_file())
    });
    let Some(go) = go else {
        note(&format!(
            "SKIPPED {name}.go: `go` not found (Debian: apt-get install golang-go)"
        ));
        return None;
    };
    let tmp = harness_tmp().join("go");
    std::fs::create_dir_all(&tmp).expect("go scratch dir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../fixtures/go/{name}.go"));
    let binary = tmp.join(name);
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
    assert!(status.success(), "go build of {name}.go failed");
    Some(binary)
}
