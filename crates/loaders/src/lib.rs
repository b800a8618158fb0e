//! What the uexec loader binaries (apager, and later dpager and hpager) share: their runtime ([`rt`]),
//! command line ([`cli`]), program search ([`search`]), output ([`out`], [`maplog`]) and the common
//! start of every run ([`run`]).
//!
//! The binaries are `no_std`: no libc start-up runs before the program they load, nothing of theirs
//! (signal dispositions, buffered output, TLS, rseq registration) leaks into it, and their own start-up
//! costs a handful of system calls.
#![cfg_attr(not(test), no_std)]

pub mod checkpoint;
pub mod cli;
pub mod maplog;
pub mod out;
pub mod rt;
pub mod script;
pub mod search;

pub use uexec_load;

use core::ffi::CStr;
use core::fmt::Write;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use uexec_load::scratch::Scratch;
use uexec_load::{Laziness, LoadError, Quiet, Ready, Request, Startup};
use uexec_pager::predict::Policy;

use cli::{Command, UsageError};
use maplog::MapLog;

/// Exit status for a usage error, as most command-line tools use.
pub const USAGE_STATUS: i32 = 2;
/// Exit status when the `--log` file cannot be opened: the loader's own failure, before the program
/// runs, as `env` and `nice` use 125 (the program's own statuses are its own).
pub const LOG_FAILED: i32 = 125;

/// The text of `--help`, with `{tool}` the loader's name.
fn help(tool: &Tool) {
    let name = tool.name;
    // SAFETY: fd 1 is borrowed only for these writes.
    let mut out = out::FdWriter::<2048>::new(unsafe { rustix::stdio::stdout() });
    let _ = write!(
        out,
        "Usage: {name} [OPTIONS] PROG [ARGS...]\n\
         Loads the ELF executable PROG into this process and runs it, as execve would.\n\
         PROG without a '/' is searched for in PATH. Options end at PROG.\n\n\
         Options:\n  \
           -q, --quiet          do not log mappings\n      \
               --log FILE       write the mapping log to FILE instead of standard error\n      \
               --log-append FILE  the same, appending to FILE\n      \
               --argv0 NAME     give the program NAME as argv[0] (PROG is still what is run)\n      \
               --ckpt-image PATH  on the checkpoint signal, write an image of the program to PATH\n\
         \x20                      (restart it with urestart PATH); the program goes on\n      \
               --ckpt-signal SIG  the checkpoint signal (default USR2; a name or number)\n"
    );
    if tool.pager {
        let _ = writeln!(
            out,
            "      --stats          print paging statistics when the program exits"
        );
    }
    if tool.predicts {
        let _ = write!(
            out,
            "      --predict=POLICY pages to map with each fault: none, next, stride, trend,\n\
             \x20                      adaptive (default)\n      \
             --pages=N        pages per fault for the fixed policies, the faulting one included\n\
             \x20                      (1 to 65, default 2); the initial window for adaptive\n"
        );
    }
    let _ = write!(
        out,
        "  -h, --help           print this help\n  \
           -V, --version        print the version\n\n\
         Each mapping made for PROG is logged as one line:\n  \
           {name}: map|unmap ADDRESS SIZE PROT SOURCE ROLE\n\
         Exit status: PROG's own; 127 if PROG is not found, 126 if it cannot be executed.\n"
    );
    if tool.pager {
        let _ = writeln!(
            out,
            "A pager's lines begin {name}[PID NAME]: (each program of a process tree has its own)."
        );
    }
    out.flush();
}

/// What a loader does once it has parsed its command line and loaded the program.
// Returned once per run, and there is no allocator to box the large variant with.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Start the program.
    Start(Started),
    /// Exit with this status (help, version, or an error already reported).
    Exit(i32),
}

/// A loaded program, and where a pager's log lines go from now on.
pub struct Started {
    pub ready: Ready,
    /// The program's path as it was opened (after the PATH search).
    pub program: &'static core::ffi::CStr,
    /// The path PROG was found at (a script's, for a `#!` script): what names the process.
    pub execfn: &'static core::ffi::CStr,
    /// `--stats`.
    pub stats: bool,
    /// `--predict` and `--pages`, for hpager (adaptive and 2 by default).
    pub predict: Option<(Policy, u32)>,
    /// `--ckpt-image` and `--ckpt-signal`.
    pub checkpoint: Option<checkpoint::Request>,
    /// The `--log` file as an absolute path, for the programs a pager executes (`--log-append`).
    pub log_path: Option<&'static CStr>,
    /// `-q`.
    pub quiet: bool,
    /// For pagers: a descriptor of the log (stderr or `--log FILE`) moved out of the program's way, or
    /// `None` with `--quiet`. Always `None` for apager, which has closed everything.
    pub log_fd: Option<i32>,
}

/// Which loader is running.
#[derive(Copy, Clone)]
pub struct Tool {
    pub name: &'static str,
    /// What the program's image leaves for demand paging.
    pub laziness: Laziness,
    /// A pager: its log must outlive the load (it logs from its fault handler) and it takes `--stats`.
    pub pager: bool,
    /// Takes `--predict` and `--pages` (hpager).
    pub predicts: bool,
}

/// Default `--pages`: N = 2, one predicted page per fault.
pub const DEFAULT_PAGES: u32 = 2;

/// The highest descriptor number [`park_descriptor`] uses: the first past `select`'s `FD_SETSIZE`, so
/// code that scans or selects on descriptors below 1024 does not meet it either.
///
/// The kernel sizes a process's descriptor table to its highest open descriptor, zeroes all of it when it
/// grows, and copies it on every `fork`: a descriptor parked at `RLIMIT_NOFILE - 1` (19999 here, often a
/// million) costs a table of up to 8 MiB at start-up and again at each of the program's forks; at 1024,
/// 16 KiB.
const PARK_MAX: u64 = 1024;

/// Duplicates `fd` to a high descriptor number with close-on-exec, so the program's own descriptors
/// (its first `open` returns 3) and `dup2` calls do not meet it: the highest below both
/// `RLIMIT_NOFILE` and [`PARK_MAX`] that is free.
fn park_descriptor(fd: rustix::fd::BorrowedFd<'_>) -> Option<i32> {
    use rustix::fd::IntoRawFd;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1024);
    let high = limit.saturating_sub(1).min(PARK_MAX) as i32;
    for min in [high, high / 2, 64] {
        if let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(fd, min) {
            return Some(fd.into_raw_fd());
        }
    }
    None
}

/// The common part of every loader: parse the command line, find and load the program, log its
/// mappings, and hand back a process ready to start.
pub fn run(tool: Tool, startup: &Startup) -> Outcome {
    let described = tool;
    let Tool {
        name: tool,
        laziness,
        pager: keeps_log,
        predicts,
    } = tool;
    let options = match cli::parse(startup.args()) {
        Command::Run(options) => options,
        Command::Help => {
            help(&described);
            return Outcome::Exit(0);
        }
        Command::Version => {
            // SAFETY: fd 1 is borrowed only for this write.
            let mut out = out::FdWriter::<128>::new(unsafe { rustix::stdio::stdout() });
            let _ = writeln!(out, "{tool} (uexec) {}", env!("CARGO_PKG_VERSION"));
            out.flush();
            return Outcome::Exit(0);
        }
        Command::Usage(error) => {
            let (what, message): (&[u8], &str) = match error {
                UsageError::MissingProgram => (b"", "missing PROG (try --help)"),
                UsageError::MissingValue(opt) => (opt.to_bytes(), "option needs a value"),
                UsageError::UnknownOption(opt) => (opt.to_bytes(), "unknown option (try --help)"),
            };
            out::error_line(tool, what, message);
            return Outcome::Exit(USAGE_STATUS);
        }
    };
    let not_here = |opt: &[u8]| {
        out::error_line(tool, opt, "this option is not accepted here (try --help)");
        Outcome::Exit(USAGE_STATUS)
    };
    if options.stats && !keeps_log {
        return not_here(b"--stats");
    }
    if !predicts && options.predict.is_some() {
        return not_here(b"--predict");
    }
    if !predicts && options.pages.is_some() {
        return not_here(b"--pages");
    }
    let predict = if predicts {
        let policy = options
            .predict
            .map_or(Some(Policy::Adaptive), |p| Policy::parse(p.to_bytes()));
        let pages = match options.pages {
            None => Some(DEFAULT_PAGES),
            Some(n) => core::str::from_utf8(n.to_bytes())
                .ok()
                .and_then(|n| n.parse().ok())
                .filter(|&n| (1..=65).contains(&n)),
        };
        match (policy, pages) {
            (Some(policy), Some(pages)) => Some((policy, pages)),
            (None, _) => {
                out::error_line(
                    tool,
                    b"--predict",
                    "expects none, next, stride, trend or adaptive",
                );
                return Outcome::Exit(USAGE_STATUS);
            }
            (_, None) => {
                out::error_line(tool, b"--pages", "expects a number from 1 to 65");
                return Outcome::Exit(USAGE_STATUS);
            }
        }
    } else {
        None
    };
    let checkpoint = match (options.ckpt_image, options.ckpt_signal) {
        (None, None) => None,
        (None, Some(_)) => {
            out::error_line(tool, b"--ckpt-signal", "needs --ckpt-image");
            return Outcome::Exit(USAGE_STATUS);
        }
        (Some(image), signal) => {
            let signal = match signal {
                None => Some(checkpoint::DEFAULT_SIGNAL),
                Some(s) => cli::parse_signal(s.to_bytes()),
            };
            match signal {
                Some(signal) if !image.is_empty() => Some(checkpoint::Request { image, signal }),
                Some(_) => {
                    out::error_line(tool, b"--ckpt-image", "expects a file name");
                    return Outcome::Exit(USAGE_STATUS);
                }
                None => {
                    out::error_line(
                        tool,
                        b"--ckpt-signal",
                        "expects a signal that can carry a checkpoint (USR2, USR1, RTMIN+N, a number...)",
                    );
                    return Outcome::Exit(USAGE_STATUS);
                }
            }
        }
    };
    let mut args = startup.args().skip(options.program);
    let Some(name) = args.next() else {
        return Outcome::Exit(USAGE_STATUS);
    };

    static PATH_BUF: Scratch<{ search::PATH_BUF }> = Scratch::new();
    // SAFETY: `run` runs once, single-threaded, and is PATH_BUF's only user.
    let path_buf = unsafe { PATH_BUF.borrow() };
    let path = match search::resolve(name, startup.getenv(b"PATH"), path_buf) {
        Ok(path) => path,
        Err(errno) => {
            let error = LoadError::Open(errno);
            if name.is_empty() {
                // As bash names it (`'': command not found`), so the message does not lose it.
                out::error_line(tool, b"''", "command not found");
            } else if errno == rustix::io::Errno::NOENT && !name.to_bytes().contains(&b'/') {
                out::error_line(tool, name.to_bytes(), "command not found");
            } else {
                out::error_line(tool, name.to_bytes(), error);
            }
            return Outcome::Exit(error.exit_status());
        }
    };

    let (log_name, append) = match (options.log, options.log_append) {
        (_, Some(file)) => (Some(file), true),
        (file, None) => (file, false),
    };
    let log_file: Option<OwnedFd> = match log_name {
        // `--log -`: standard error, as without the option.
        Some(file) if file.to_bytes() == b"-" => None,
        Some(file) if !options.quiet => {
            let how = if append {
                OFlags::APPEND
            } else {
                // O_APPEND too: the programs a pager executes append to the same file, and the
                // pager's own later lines must land after theirs, not over them.
                OFlags::TRUNC | OFlags::APPEND
            };
            let flags = OFlags::WRONLY | OFlags::CREATE | how | OFlags::CLOEXEC;
            match rustix::fs::open(file, flags, Mode::from_raw_mode(0o644)) {
                Ok(fd) => Some(fd),
                Err(errno) => {
                    out::error_line(tool, file.to_bytes(), LoadError::Open(errno));
                    return Outcome::Exit(LOG_FAILED);
                }
            }
        }
        _ => None,
    };
    // Loads `program_path` with argv = `front[..count]` then PROG's arguments.
    let load_as = |program_path: &'static CStr, front: [&'static CStr; FRONT], count: usize| {
        let request = Request {
            path: program_path,
            execfn: path,
            argv: front
                .into_iter()
                .take(count)
                .chain(startup.args().skip(options.program + 1)),
            envp: startup.env(),
            startup,
            randomize: rt::kernel_randomizes(),
            laziness,
            // The checkpoint handler is the loader's code: it stays.
            loader_stays: keeps_log || checkpoint.is_some(),
        };
        if options.quiet {
            uexec_load::load(request, &mut Quiet)
        } else {
            // SAFETY: fd 2 stays open for the whole run; it is only borrowed here.
            let fd = log_file
                .as_ref()
                .map_or(unsafe { rustix::stdio::stderr() }, |f| f.as_fd());
            let mut log = MapLog::new(tool, fd);
            if keeps_log {
                log = log.with_whose(path.to_bytes());
            }
            let result = uexec_load::load(request, &mut log);
            log.flush();
            result
        }
    };
    let mut front: [&'static CStr; FRONT] = [c""; FRONT];
    front[0] = options.argv0.unwrap_or(name);
    let mut result = load_as(path, front, 1);
    let mut program_path = path;
    let mut depth = 0;
    // Not ELF: a `#!` script runs its interpreter (see `script`), with the interpreters' names and
    // arguments in front of the script's path (`--argv0` only applies to an ELF program). Looked at
    // only now, so that an ELF program costs no extra read.
    if matches!(result, Err(LoadError::Elf(uexec_elf::ElfError::NotElf))) {
        static LINES: ScriptLines = ScriptLines(core::cell::UnsafeCell::new(
            [const { script::Line::empty() }; script::MAX_DEPTH],
        ));
        // SAFETY: `run` runs once, single-threaded, and is LINES' only user.
        let lines = unsafe { &mut *LINES.0.get() };
        depth = match script::follow(path, lines) {
            Ok(depth) => depth,
            Err((error, _)) => {
                let message = match error {
                    script::ScriptError::NoInterpreter => "bad #! line: no interpreter named",
                    script::ScriptError::TooDeep => {
                        "too many levels of #! interpreters (at most 5)"
                    }
                };
                out::error_line(tool, name.to_bytes(), message);
                return Outcome::Exit(126);
            }
        };
        if let Some(used) = lines.get(..depth).filter(|u| !u.is_empty()) {
            let mut count = 0;
            let mut push = |arg: &'static CStr| {
                if let Some(slot) = front.get_mut(count) {
                    *slot = arg;
                    count += 1;
                }
            };
            for line in used.iter().rev() {
                push(line.name());
                if let Some(arg) = line.arg() {
                    push(arg);
                }
            }
            push(path);
            program_path = used.last().map_or(path, script::Line::name);
            result = load_as(program_path, front, count);
        }
    }
    // A pager keeps a descriptor only for a --log file (README: the highest free one up to 1024);
    // logging to standard error, it writes to the program's fd 2, so the program sees no descriptor
    // it did not open.
    let log_fd = match (&log_file, options.quiet, keeps_log) {
        (_, true, _) | (_, _, false) => None,
        (Some(file), _, true) => park_descriptor(file.as_fd()),
        (None, _, true) => Some(2),
    };
    let log_path = match (&log_file, log_name) {
        (Some(_), Some(name)) => absolute_log_path(name),
        _ => None,
    };
    drop(log_file);
    match result {
        Ok(ready) => Outcome::Start(Started {
            ready,
            program: program_path,
            execfn: path,
            stats: options.stats,
            predict,
            checkpoint,
            log_fd,
            log_path,
            quiet: options.quiet,
        }),
        Err(LoadError::Open(errno)) if depth > 0 => {
            // As bash reports it: the interpreter is named; 127 if it does not exist.
            out::error_line(tool, name.to_bytes(), BadInterpreter(program_path, errno));
            Outcome::Exit(LoadError::Open(errno).exit_status())
        }
        Err(error) => {
            out::error_line(tool, name.to_bytes(), error);
            Outcome::Exit(error.exit_status())
        }
    }
}

/// Room for the arguments put in front of PROG's: its argv[0], or the `#!` interpreters' names and
/// arguments and the script's path.
const FRONT: usize = 2 * script::MAX_DEPTH + 1;

/// The `#!` lines of PROG and of the interpreters it leads to.
struct ScriptLines(core::cell::UnsafeCell<[script::Line; script::MAX_DEPTH]>);
// SAFETY: used only by `run`, once, before any other thread exists.
unsafe impl Sync for ScriptLines {}

/// `bad interpreter PATH: ERROR`.
struct BadInterpreter<'a>(&'a CStr, rustix::io::Errno);

impl core::fmt::Display for BadInterpreter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bad interpreter {}: {}",
            out::Lossy(self.0.to_bytes()),
            LoadError::Open(self.1)
        )
    }
}

/// `name` made absolute against the current directory (the program may change directory before it
/// executes another), in a buffer of its own; `None` if it does not fit.
fn absolute_log_path(name: &CStr) -> Option<&'static CStr> {
    static BUF: Scratch<{ 2 * search::PATH_BUF }> = Scratch::new();
    // SAFETY: called once, from `run`, single-threaded; BUF's only user.
    let buf = unsafe { BUF.borrow() };
    let len = uexec_capture::sys::absolute_path(name.to_bytes(), buf)?;
    CStr::from_bytes_with_nul(buf.get(..=len)?).ok()
}

/// A pager set-up failure, for the one-line error message.
pub struct PagerError(pub uexec_pager::SetupError);

impl core::fmt::Display for PagerError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            uexec_pager::SetupError::Map(errno) => {
                write!(f, "cannot set up demand paging: {errno}")
            }
            uexec_pager::SetupError::TooManyRegions => {
                f.write_str("cannot set up demand paging: too many regions")
            }
            uexec_pager::SetupError::Signal(e) => {
                write!(f, "cannot install the fault handler (error {})", -e)
            }
        }
    }
}

/// The pager's own binary as an absolute path in `buf`: the file the kernel executed (AT_EXECFN, made
/// absolute against the current directory) when that is an ELF file, else what `/proc/self/exe` names.
///
/// AT_EXECFN is read first because it costs no system call when absolute (and one `getcwd` when not),
/// while the first look at `/proc/self` is one of the slower calls of a pager's start-up (it builds
/// the process's procfs entries: about 30 µs, a tenth of a hello world under apager). It names the
/// pager unless the kernel ran it as the interpreter of a `#!` script (then it names the script, which
/// is not ELF) or through a descriptor (`/dev/fd/N`, gone by the time it is needed).
fn own_path<'b>(startup: &Startup, buf: &'b mut [u8]) -> Option<&'b CStr> {
    let execfn = startup
        .aux_str(uexec_load::stack::at::EXECFN)
        .map(CStr::to_bytes)
        .filter(|name| {
            !name.is_empty() && !name.starts_with(b"/dev/fd/") && !name.starts_with(b"/proc/")
        });
    if let Some(len) = execfn.and_then(|name| uexec_capture::sys::absolute_path(name, buf)) {
        let path = CStr::from_bytes_with_nul(buf.get(..=len)?).ok()?;
        if starts_as_elf(path) {
            // Reborrowed: the checks above borrowed `buf` only for the length.
            return CStr::from_bytes_with_nul(buf.get(..=len)?).ok();
        }
    }
    let room = buf.len().checked_sub(1)?;
    let n = rustix::fs::readlinkat_raw(rustix::fs::CWD, c"/proc/self/exe", buf.get_mut(..room)?)
        .ok()?;
    *buf.get_mut(n)? = 0; // readlink writes no NUL
    CStr::from_bytes_with_nul(buf.get(..=n)?).ok()
}

/// Whether `path` opens and starts with the ELF magic.
fn starts_as_elf(path: &CStr) -> bool {
    let Ok(file) = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let mut magic = [0u8; 4];
    matches!(rustix::io::pread(&file, &mut magic, 0), Ok(4)) && magic == *b"\x7fELF"
}

/// The whole of dpager and hpager: load with `tool.laziness`, install the pager, start the program.
pub fn pager_main(tool: Tool, startup: &Startup) -> i32 {
    // The pager's own binary, for the programs this one executes (see uexec_pager::exec); read before
    // /proc/self/exe is made to name the program. A path, not a descriptor: the program must see
    // only the descriptors it opened.
    static SELF_PATH: Scratch<{ search::PATH_BUF + 1 }> = Scratch::new();
    // SAFETY: `pager_main` runs once, single-threaded, and is SELF_PATH's only user.
    let self_buf = unsafe { SELF_PATH.borrow() };
    let self_path = own_path(startup, &mut self_buf[..search::PATH_BUF]);
    let started = match run(tool, startup) {
        Outcome::Start(s) => s,
        Outcome::Exit(status) => return status,
    };
    if let Some(own) = self_path {
        // The programs this one executes get the options the user gave: quiet, or the same log file
        // (appended to), statistics, prediction.
        let mut prefix = uexec_pager::text::Line::<4400>::new();
        prefix.push(tool.name.as_bytes()).push(b"\0");
        match (started.quiet, started.log_path) {
            (true, _) => {
                prefix.push(b"-q\0");
            }
            (false, Some(log)) => {
                prefix
                    .push(b"--log-append\0")
                    .push(log.to_bytes())
                    .push(b"\0");
            }
            (false, None) => {}
        }
        if started.stats {
            prefix.push(b"--stats\0");
        }
        if let Some((policy, pages)) = started.predict {
            prefix
                .push(b"--predict=")
                .push(policy.name().as_bytes())
                .push(b"\0--pages=");
            prefix.dec(u64::from(pages)).push(b"\0");
        }
        // SAFETY: single-threaded set-up before the program runs.
        unsafe { uexec_pager::exec::configure(own, prefix.bytes(), started.program) };
    }
    let ready = &started.ready;
    let config = uexec_pager::Config {
        tool: tool.name,
        log_fd: started.log_fd,
        lazy_file: tool.laziness.file,
        lazy_anon: tool.laziness.anon,
        stats: started.stats,
        predict: started.predict,
        program: started.execfn.to_bytes(),
    };
    // dpager starts with the entry point's page mapped; hpager has all file pages mapped already.
    let first_page = tool.laziness.file.then_some(ready.program.entry);
    let Some(image) = &ready.image else {
        return 126;
    };
    if let Some(request) = &started.checkpoint {
        uexec_pager::masks::hold_during_traps(request.signal);
    }
    // SAFETY: called once, single-threaded, with the image just mapped lazily at this bias.
    let installed = unsafe { uexec_pager::install(image, ready.program.bias, &config, first_page) };
    if let Err(e) = installed {
        out::error_line(tool.name, b"", PagerError(e));
        return 126;
    }
    if let Some(request) = &started.checkpoint {
        // The pager's own memory: its kernel-given stack (holding argv), its page-state arena and the
        // main thread's pager stack (the alternate stack installed now).
        let host = [
            startup.args().next().map_or(0, |a| a.as_ptr() as u64),
            uexec_pager::state::table().map_or(0, |t| t.states().as_ptr() as u64),
            checkpoint::current_altstack(),
        ];
        let fds = [started.log_fd.filter(|&fd| fd > 2).unwrap_or(-1)];
        let hooks = Some(&checkpoint::PAGER_HOOKS);
        // SAFETY: single-threaded, just before the jump; the pager's code stays.
        let installed = unsafe { checkpoint::install(tool.name, request, &host, &fds, hooks) };
        if let Err(status) = installed {
            return status;
        }
    }
    // SAFETY: the process is fully built and the pager installed.
    unsafe { uexec_load::handover::jump(ready.entry, ready.stack.sp) }
}
