//! What the pager writes: log lines, the `--stats` line, and its last words when it cannot go on.
//!
//! Log lines are `TOOL[PID NAME]: map ...`; a pager that cannot go on exits with
//! [`EXIT_PAGER_FAILED`].
//!
//! # Safety
//!
//! Called from the handlers: fixed buffers, raw system calls and atomics only.

use core::sync::atomic::{AtomicU64, Ordering};
use uexec_elf::PAGE_SIZE;

use crate::regions::{Region, PREDICTED};
use crate::state::{state, State};
use crate::sys;
use crate::text::{prot_str, Line};

/// The exit status of a process whose pager could not go on (a system call it needs failed); neither a
/// shell's 126/127, nor 128 + a signal, nor a status programs commonly use.
pub const EXIT_PAGER_FAILED: i32 = 122;

/// Starts a log line with whose it is: `TOOL[PID NAME]`, so that the lines of a process tree (a
/// pipeline's programs, each paged) can be told apart. The pid is read at each line: a forked child
/// logs its own.
pub fn push_whose<const N: usize>(line: &mut Line<N>, tool: &str) {
    let name = crate::state::program_name();
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    line.push(tool.as_bytes())
        .push(b"[")
        .dec(u64::from(
            rustix::process::getpid()
                .as_raw_nonzero()
                .get()
                .unsigned_abs(),
        ))
        .push(b" ")
        .push(name.get(..len).unwrap_or(&[]))
        .push(b"]");
}

/// Writes `tool: map ADDR SIZE PROT SOURCE why[N]` for `count` pages from `page`.
pub(crate) fn log(state: &State, region: &Region, page: u64, count: u64, why: &[u8]) {
    let fd = state.log_fd.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let mut line = Line::<200>::new();
    push_whose(&mut line, state.tool);
    line.push(b": map ")
        .hex(page, 12)
        .push(b" ")
        .hex(count * PAGE_SIZE, 0);
    line.push(b" ").push(prot_str(region.prot)).push(b" ");
    match region.file_offset {
        Some(offset) => line.push(b"file@").hex(offset + (page - region.start), 0),
        None => line.push(b"anon"),
    };
    line.push(b" ")
        .push(why)
        .push(b"[")
        .dec(u64::from(region.segment))
        .push(b"]\n");
    line.write_to(fd);
}

/// The pager cannot make `page` accessible (the kernel refused with `errno`) and cannot go on: says so
/// on stderr, prints the statistics if asked, and ends the process with [`EXIT_PAGER_FAILED`] — not
/// with the SIGSEGV the program would be blamed for.
pub(crate) fn cannot_go_on(state: &State, page: u64, errno: i32) -> ! {
    let mut line = Line::<200>::new();
    push_whose(&mut line, state.tool);
    line.push(b": cannot map page ")
        .hex(page, 0)
        .push(b" of the program: mprotect failed (error ")
        .dec(errno.unsigned_abs().into())
        .push(b")\n");
    line.write_to(2);
    print_stats();
    sys::exit_group(EXIT_PAGER_FAILED)
}

/// The kernel refused the seccomp filter when syscall user dispatch ended (see crate::dispatch): the
/// pager can no longer see the program's calls. Says so, as [`cannot_go_on`] does, and ends the process
/// with [`EXIT_PAGER_FAILED`].
pub(crate) fn cannot_attach_filter(error: i64) -> ! {
    let mut line = Line::<200>::new();
    match state() {
        Some(state) => push_whose(&mut line, state.tool),
        None => {
            line.push(b"uexec-pager");
        }
    }
    line.push(b": cannot attach the system-call filter (error ")
        .dec(error.unsigned_abs())
        .push(b")\n");
    line.write_to(2);
    print_stats();
    sys::exit_group(EXIT_PAGER_FAILED)
}

/// Writes the statistics line: `TOOL: stats key=value ...`.
pub fn print_stats() {
    let Some(state) = state() else { return };
    if !state.print_stats {
        return;
    }
    account_predictions(state);
    let fd = state.log_fd.load(Ordering::Relaxed);
    let fd = if fd >= 0 { fd } else { 2 };
    let s = &state.stats;
    let (peak_vm, peak_rss) = peak_memory_kib();
    let mut line = Line::<400>::new();
    push_whose(&mut line, state.tool);
    line.push(b": stats");
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (key, value) in [
        (&b"faults"[..], load(&s.faults)),
        (b"demand_pages", load(&s.demand_pages)),
        (b"predicted_pages", load(&s.predicted_pages)),
        (b"predicted_used", load(&s.predicted_used)),
        (b"predicted_unused", load(&s.predicted_unused)),
        (b"around_pages", load(&s.around_pages)),
        (b"lookups", load(&state.table.lookups)),
        (b"cache_hits", load(&state.table.hits)),
        (b"real_faults", load(&s.real_faults)),
        (b"vmas", count_vmas()),
        (b"peak_vm_kib", peak_vm),
        (b"peak_rss_kib", peak_rss),
    ] {
        line.push(b" ").push(key).push(b"=").dec(value);
    }
    line.push(b"\n");
    line.write_to(fd);
}

/// The process's mappings (VMAs) now: the lines of `/proc/self/maps`, read in fixed-size pieces (0 if
/// unreadable).
fn count_vmas() -> u64 {
    let Ok(fd) = rustix::fs::open(
        c"/proc/self/maps",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return 0;
    };
    let mut buf = [0u8; 4096];
    let mut lines = 0u64;
    loop {
        match rustix::io::read(&fd, &mut buf) {
            Ok(n) if n > 0 => {
                let read = buf.get(..n).unwrap_or(&[]);
                lines += read.iter().filter(|&&b| b == b'\n').count() as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            _ => break,
        }
    }
    lines
}

/// VmPeak and VmHWM from `/proc/self/status`, in KiB (0 if unreadable).
fn peak_memory_kib() -> (u64, u64) {
    let mut buf = [0u8; 4096];
    let Ok(fd) = rustix::fs::open(
        c"/proc/self/status",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return (0, 0);
    };
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..) {
        match rustix::io::read(&fd, rest) {
            Ok(n) if n > 0 => len += n,
            _ => break,
        }
    }
    let text = buf.get(..len).unwrap_or(&[]);
    let field = |name: &[u8]| -> u64 {
        for line in text.split(|&b| b == b'\n') {
            if let Some(rest) = line.strip_prefix(name) {
                return rest
                    .iter()
                    .filter(|b| b.is_ascii_digit())
                    .fold(0u64, |v, &d| {
                        v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
            }
        }
        0
    };
    (field(b"VmPeak:"), field(b"VmHWM:"))
}

/// At exit: how many predicted pages the program touched (resident) and how many it never did.
fn account_predictions(state: &State) {
    let states = state.table.states();
    let mut resident = [0u8; 1024];
    for region in state.table.regions() {
        let pages = region.pages() as usize;
        let mut done = 0;
        while done < pages {
            let chunk = (pages - done).min(resident.len());
            let addr = region.start + done as u64 * PAGE_SIZE;
            let ok = sys::mincore(addr, chunk, &mut resident);
            for i in 0..chunk {
                let predicted = states
                    .get(region.first_state + done + i)
                    .is_some_and(|s| s.load(Ordering::Relaxed) == PREDICTED);
                if predicted {
                    let touched = ok && resident.get(i).is_some_and(|r| r & 1 != 0);
                    let counter = if touched {
                        &state.stats.predicted_used
                    } else {
                        &state.stats.predicted_unused
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            done += chunk;
        }
    }
}
