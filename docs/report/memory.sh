#!/bin/sh
# Peak resident memory of docs/report/sparse_table.c (a 32 MiB initialised table, one page in 16
# read) natively and under each loader, with /usr/bin/time (GNU time: %M is the peak RSS in KiB,
# from wait4's ru_maxrss), RUNS times each, round-robin. The file is read once first so that its
# pages are in the page cache (fault-around maps only cached pages).
#   sh docs/report/memory.sh [RUNS]      (default 5; after `make loaders`)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="${UEXEC_BIN_DIR:-$root/target/release}"
out="$root/target/report"
runs=${1:-5}
mkdir -p "$out"
${CC:-gcc} -O2 -static -o "$out/sparse_table" "$root/docs/report/sparse_table.c"
cat "$out/sparse_table" >/dev/null
readelf -lW "$out/sparse_table" | grep LOAD
echo "commit $(git -C "$root" rev-parse --short HEAD), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$runs"); do
	for mode in native apager dpager hpager; do
		case $mode in
		native) set -- "$out/sparse_table" ;;
		hpager) set -- "$bin/hpager" -q "$out/sparse_table" ;;
		*) set -- "$bin/$mode" -q "$out/sparse_table" ;;
		esac
		/usr/bin/time -f "$mode run $i: %M KiB peak RSS, %R minor faults, %e s" "$@" >/dev/null
	done
done 2>&1 | sort -s -k1,1
# How much one fault maps natively: the same table with one page in 64, 256 and 512 read.
for step in 64 256 512; do
	${CC:-gcc} -O2 -static -DSTEP=$step -o "$out/sparse_table_$step" "$root/docs/report/sparse_table.c"
	cat "$out/sparse_table_$step" >/dev/null
	/usr/bin/time -f "native, one page in $step: %M KiB peak RSS, %R minor faults" "$out/sparse_table_$step" 2>&1
done
"$bin/dpager" -q --stats "$out/sparse_table"
"$bin/hpager" -q --stats "$out/sparse_table"
