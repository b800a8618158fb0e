#!/usr/bin/env python3
"""Splits traced runs (docs/report/startup.sh) into start-up phases and prints their medians.

Input: DIR holding PROG.txt, the `perf script -F pid,time,event,trace --ns` output of a recording
(raw_syscalls:sys_enter/sys_exit and exceptions:page_fault_user) of a shell that ran, round after
round, PROG natively, under apager, dpager and hpager, each as a child process of its own. The runs
are told apart by pid, in the order they started; the shell's own pid (the first) and the first
round (warm-up) are left out. Each run is cut at these system calls of the measured command (x86-64
numbers):

  exec        its execve (59), entry to exit: the kernel's exec of the program (native) or of the loader
  read        execve's exit to getrandom's (318) exit: the loader's own start, PATH/access checks,
              open, fstat, pread of the headers (and interpreter), validation, the random numbers
  map         to prlimit64 (302): the reservation and every segment's mmap
  stack       to prctl(PR_SET_NAME) (157, option 15): the stack's mmap and its contents
  hand-over   to the exit of the first close(3) after it: the /proc view (PR_SET_MM_MAP), apager's
              trampoline and self-unmap, the pagers' detach from their own file (as root)
  pager       to seccomp's (317) exit: the pagers' regions, stacks, handlers and filter
  jump        from the end of the loader (or native: from execve's exit) to the next system call's
              entry: the jump and the program's first instructions, with their faults (under the
              pagers the next call is usually the handler's mprotect for the first demand fault)
  total       execve's entry to exit_group's (231) entry

Prints, per program and configuration, the median of each phase in microseconds over the runs and the
median number of user page faults in it; then, per configuration, the system calls of the whole run
that take longest (median entry-to-exit time, by number: 59 execve, 317 seccomp, 25 mremap, 267
readlinkat, 11 munmap, ...).
"""
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+(\S+):\s+(.*)$")
PHASES = ["exec", "read", "map", "stack", "hand-over", "pager", "jump", "total"]


MODES = ["native", "apager", "dpager", "hpager"]


def events_by_pid(path):
    """The events of each pid, in the order the pids first appear."""
    by_pid = {}
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        by_pid.setdefault(int(m.group(1)), []).append(line)
    return list(by_pid.values())


def events(lines):
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        _, t, name, rest = m.groups()
        t = float(t) * 1e6
        if name == "raw_syscalls:sys_enter":
            nr, args = re.match(r"NR (-?\d+) \(([^)]*)\)", rest).groups()
            yield t, "enter", int(nr), [int(a, 16) for a in args.split(", ")]
        elif name == "raw_syscalls:sys_exit":
            nr = int(re.match(r"NR (-?\d+)", rest).group(1))
            yield t, "exit", nr, None
        elif name == "exceptions:page_fault_user":
            yield t, "fault", 0, None


def durations(lines):
    """Entry-to-exit time of every system call of one run, by number."""
    out = defaultdict(list)
    pending = None
    for t, kind, nr, _ in events(lines):
        if kind == "enter":
            pending = (t, nr)
        elif kind == "exit" and pending and pending[1] == nr:
            out[nr].append(t - pending[0])
            pending = None
    return out


def split(lines, loader):
    evs = list(events(lines))
    start = next(i for i, e in enumerate(evs) if e[1] == "enter" and e[2] == 59)
    evs = evs[start:]
    marks = {"exec0": evs[0][0]}
    exec_exit = next(i for i, e in enumerate(evs) if e[1] == "exit" and e[2] == 59)
    marks["exec"] = evs[exec_exit][0]
    end_loader = exec_exit
    if loader:
        def after(i, pred):
            return next(j for j in range(i, len(evs)) if pred(evs[j]))
        i = after(exec_exit, lambda e: e[1] == "exit" and e[2] == 318)
        marks["read"] = evs[i][0]
        i = after(i, lambda e: e[1] == "enter" and e[2] == 302)
        marks["map"] = evs[i][0]
        i = after(i, lambda e: e[1] == "enter" and e[2] == 157 and e[3][0] == 15)
        marks["stack"] = evs[i][0]
        j = after(i, lambda e: e[1] == "enter" and e[2] == 3 and e[3][0] == 3)
        j = after(j, lambda e: e[1] == "exit" and e[2] == 3)
        marks["hand-over"] = evs[j][0]
        end_loader = j
        seccomp = [k for k in range(j, len(evs)) if evs[k][1] == "exit" and evs[k][2] == 317]
        if seccomp:
            end_loader = seccomp[0]
            marks["pager"] = evs[end_loader][0]
    nxt = next(k for k in range(end_loader + 1, len(evs)) if evs[k][1] == "enter")
    marks["jump"] = evs[nxt][0]
    last = next(k for k in range(len(evs)) if evs[k][1] == "enter" and evs[k][2] == 231)
    marks["total"] = evs[last][0]
    # Phase durations and faults, in order.
    order = ["exec0", "exec", "read", "map", "stack", "hand-over", "pager"]
    present = [p for p in order if p in marks]
    bounds = [(present[k], marks[present[k - 1]], marks[present[k]]) for k in range(1, len(present))]
    bounds.append(("jump", marks[present[-1]], marks["jump"]))
    out = {}
    for name, lo, hi in bounds:
        faults = sum(1 for e in evs if e[1] == "fault" and lo <= e[0] < hi)
        out[name] = (hi - lo, faults)
    faults = sum(1 for e in evs if e[1] == "fault" and e[0] < marks["total"])
    out["total"] = (marks["total"] - marks["exec0"], faults)
    return out


def main():
    root = Path(sys.argv[1])
    runs = defaultdict(list)
    calls = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.glob("*.txt")):
        prog = path.name[: -len(".txt")]
        children = events_by_pid(path)[1:]
        for k, lines in enumerate(children):
            if k < len(MODES):
                continue
            mode = MODES[k % len(MODES)]
            for nr, ts in durations(lines).items():
                calls[(prog, mode)][nr].append(statistics.median(ts))
            try:
                runs[(prog, mode)].append(split(lines, mode != "native"))
            except StopIteration:
                print(f"skipped run {k} of {prog} ({mode}): a phase boundary is missing", file=sys.stderr)
    progs = sorted({p for p, _ in runs})
    modes = MODES
    for prog in progs:
        n = min(len(runs[(prog, m)]) for m in modes if (prog, m) in runs)
        print(f"\n{prog}: median us (median user page faults) over {n} runs\n")
        print("| phase | " + " | ".join(m for m in modes if (prog, m) in runs) + " |")
        print("|---|" + "---|" * sum(1 for m in modes if (prog, m) in runs))
        for phase in PHASES:
            cells = []
            for m in modes:
                if (prog, m) not in runs:
                    continue
                vals = [r[phase] for r in runs[(prog, m)] if phase in r]
                if not vals:
                    cells.append("–")
                    continue
                us = statistics.median(v[0] for v in vals)
                f = statistics.median(v[1] for v in vals)
                cells.append(f"{us:.1f} ({f:g})")
            print(f"| {phase} | " + " | ".join(cells) + " |")
        print(f"\n{prog}: the longest system calls, median us (number: time)\n")
        for m in modes:
            if (prog, m) not in calls:
                continue
            top = sorted(((statistics.median(v), nr) for nr, v in calls[(prog, m)].items()), reverse=True)
            print(f"  {m:7} " + ", ".join(f"{nr}: {us:.1f}" for us, nr in top[:6]))


if __name__ == "__main__":
    main()
