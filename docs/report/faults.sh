#!/bin/sh
# A NULL dereference natively and under each loader: the exit status a shell sees (139 = 128 +
# SIGSEGV) and, under the pagers, the --stats line (real_faults=1: the fault was not the pager's).
# Builds fixtures/fault.c (the differential tests' fixture) as a static glibc program.
#   sh docs/report/faults.sh             (after `make loaders`)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="${UEXEC_BIN_DIR:-$root/target/release}"
out="$root/target/report"
mkdir -p "$out"
${CC:-gcc} -O2 -static -o "$out/fault" "$root/fixtures/fault.c" || exit 1
ulimit -c 0
for mode in null null-write write-text past-bss; do
	for loader in native apager dpager hpager; do
		case $loader in
		native) "$out/fault" $mode >/dev/null 2>&1 ;;
		apager) "$bin/apager" -q "$out/fault" $mode >/dev/null 2>&1 ;;
		*) "$bin/$loader" -q --stats --log "$out/fault.$loader.log" "$out/fault" $mode >/dev/null 2>&1 ;;
		esac
		status=$?
		printf '%-10s %-7s exit status %s\n' "$mode" "$loader" "$status"
	done
done
echo
echo "\$ dpager --stats --log fault.log ./fault null; echo \$?; grep -v ' map ' fault.log"
"$bin/dpager" --stats --log "$out/fault.log" "$out/fault" null
echo "$?"
grep -v ' map ' "$out/fault.log"
