//! Running one process and measuring it: wall time around spawn and `wait4`, and the
//! child's own resource usage (maximum RSS, minor and major faults) from `wait4`'s `rusage`.
//!
//! # Safety
//! `wait4` is called through `libc` with pointers to locals that live across the call.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::stats;

/// How to start a program: natively, or as `LOADER ARGS... PROG PROG-ARGS...`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The name in tables and plots: `native`, `apager`, `hpager next/2`, ...
    pub label: String,
    /// The loader, or `None` to run the program itself.
    pub loader: Option<PathBuf>,
    /// The loader's options, before the program's path.
    pub loader_args: Vec<String>,
    /// Whether the loader prints a `--stats` line on stderr to collect.
    pub stats: bool,
}

impl Config {
    /// The command that runs `program args...` in this configuration.
    pub fn command(&self, program: &Path, args: &[String]) -> Command {
        let mut cmd = match &self.loader {
            Some(loader) => {
                let mut cmd = Command::new(loader);
                cmd.args(&self.loader_args).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.args(args).stdin(Stdio::null());
        cmd
    }
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// From just before the spawn to `wait4`'s return.
    pub wall: Duration,
    /// `ru_maxrss`, in KiB.
    pub max_rss_kib: u64,
    /// `ru_minflt`: faults served without I/O.
    pub minor_faults: u64,
    /// `ru_majflt`: faults that needed I/O.
    pub major_faults: u64,
    /// Whether the program exited with status 0.
    pub ok: bool,
    /// The loader's `--stats` fields, empty if it printed none.
    pub stats: BTreeMap<String, f64>,
}

/// Runs `program args...` once in `config`, stdout to `/dev/null`; stderr goes to
/// `stderr_file` (truncated first) when the loader's statistics are wanted, else to
/// `/dev/null`.
pub fn measure(
    config: &Config,
    program: &Path,
    args: &[String],
    stderr_file: &Path,
) -> io::Result<Sample> {
    let mut cmd = config.command(program, args);
    cmd.stdout(Stdio::null());
    if config.stats {
        cmd.stderr(File::create(stderr_file)?);
    } else {
        cmd.stderr(Stdio::null());
    }
    let start = Instant::now();
    let child = cmd.spawn()?;
    let (status, usage) = wait4(child.id())?;
    let wall = start.elapsed();
    // The child is reaped: dropping `child` does not wait for it again.
    drop(child);
    let stats = if config.stats {
        stats::parse_stats(&String::from_utf8_lossy(&std::fs::read(stderr_file)?))
    } else {
        BTreeMap::new()
    };
    Ok(Sample {
        wall,
        max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        minor_faults: u64::try_from(usage.ru_minflt).unwrap_or(0),
        major_faults: u64::try_from(usage.ru_majflt).unwrap_or(0),
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stats,
    })
}

/// `wait4(pid, &status, 0, &rusage)`, retried on `EINTR`: the raw wait status and the
/// child's resource usage.
fn wait4(pid: u32) -> io::Result<(i32, libc::rusage)> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut status = 0;
    // SAFETY: rusage is a plain C struct of integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are live locals of the types wait4(2) writes to; `pid`
        // is our own child, which std has not reaped (we never called wait on it).
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if got == pid {
            return Ok((status, usage));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// What a program printed and how it ended, for checking a configuration against native.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub status: Option<i32>,
    pub signal: Option<i32>,
}

/// Runs `program args...` once in `config` with stdout captured (stderr discarded).
pub fn outcome(config: &Config, program: &Path, args: &[String]) -> io::Result<Outcome> {
    use std::os::unix::process::ExitStatusExt;
    let out = config
        .command(program, args)
        .stderr(Stdio::null())
        .output()?;
    Ok(Outcome {
        stdout: out.stdout,
        status: out.status.code(),
        signal: out.status.signal(),
    })
}
