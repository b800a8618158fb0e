#!/bin/sh
# Where start-up time goes, natively and under each loader, measured from kernel tracepoints: every
# system call's entry and exit (raw_syscalls) and every user page fault (exceptions:page_fault_user)
# of one whole run, recorded by `perf record` from the `execve` of the measured command to its
# `exit_group`. docs/report/startup_phases.py splits each run into phases at the loader's own system
# calls (see its header) and prints the median of each phase over RUNS runs, per configuration.
#
#   sh docs/report/startup.sh [RUNS]        (default 40; after `make loaders`; needs perf and root or
#                                            kernel.perf_event_paranoid <= 1 for tracepoints)
#
# The configurations are run round-robin (native, apager, dpager, hpager, native, ...) so that drift
# on a shared machine is shared; the first round is dropped (warm-up). Tracing adds to every event
# (each system call is two records in a ring buffer, each fault one): absolute times are inflated
# (about twice the loader's untraced share, printed at the end), the split is what counts.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="${UEXEC_BIN_DIR:-$root/target/release}"
out="$root/target/report/startup"
runs=${1:-40}
rm -rf "$out"
mkdir -p "$out"
work="$root/crates/uexec-bench/workloads"
# The benchmark's own hello worlds, built with the same flags as crates/uexec-bench/build.rs.
gcc -O2 -static -nostdlib -ffreestanding -fno-stack-protector -fno-builtin \
	-o "$out/hello-nostdlib" "$work/hello_nostdlib.c"
gcc -O2 -static -o "$out/hello-glibc" "$work/hello.c"
rounds=$(seq "$runs" | tr '\n' ' ')
events="-e raw_syscalls:sys_enter -e raw_syscalls:sys_exit"
# FAULTS=0 records system calls only (fewer events, less inflation; the fault counts then read 0).
[ "${FAULTS:-1}" = 0 ] || events="$events -e exceptions:page_fault_user"
for prog in hello-nostdlib hello-glibc; do
	# One recording per program: a shell runs every configuration in turn, RUNS rounds; each run is
	# a child process of its own (fork, then execve of the measured command), traced from its
	# execve on. startup_phases.py tells the runs apart by pid, in order: native, apager, dpager,
	# hpager, native, ...
	loop="for i in $rounds; do $out/$prog; $bin/apager -q $out/$prog; $bin/dpager -q $out/$prog; $bin/hpager -q $out/$prog; done"
	# shellcheck disable=SC2086
	perf record -q -o "$out/$prog.data" $events -- sh -c "$loop" >/dev/null 2>&1
	perf script -i "$out/$prog.data" -F pid,time,event,trace --ns >"$out/$prog.txt" 2>/dev/null
	rm -f "$out/$prog.data"
done
echo "commit $(git -C "$root" rev-parse --short HEAD), $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$root/docs/report/startup_phases.py" "$out"
# Untraced: the whole process from its exec to its exit (perf stat's task-clock counter, enabled at
# exec: its enabled time, the 5th CSV field, in ns; mean of 300 runs), for the program natively, for
# each loader doing nothing but start and exit (--version: its own exec) and for each loader running
# the program.
echo
echo "untraced, exec to exit, mean of 300 runs (us):"
for prog in hello-nostdlib hello-glibc; do
	for cmd in "$out/$prog" "$bin/apager --version" "$bin/apager -q $out/$prog" \
		"$bin/dpager --version" "$bin/dpager -q $out/$prog" "$bin/hpager -q $out/$prog"; do
		# shellcheck disable=SC2086
		ms=$(perf stat -r 300 -x, -e task-clock -- $cmd 2>&1 >/dev/null | grep task-clock | cut -d, -f5)
		us=$(echo "$ms" | awk '{ printf "%.1f", $1 / 1000 }')
		printf '  %-16s %-40s %s\n' "$prog" "$(echo "$cmd" | sed "s|$root/||g")" "$us"
	done
done
