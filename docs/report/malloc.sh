#!/bin/sh
# Regenerates the malloc section of docs/REPORT.md: builds docs/report/malloc_maps.c (static glibc,
# non-PIE, so that addresses are the link-time ones) and runs it natively, under apager (its mapping
# log on stderr, interleaved before the program's own output) and under dpager with --stats.
# Run from the repository root after `make loaders`:  sh docs/report/malloc.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/target/report"
bin="${UEXEC_BIN_DIR:-$root/target/release}"
mkdir -p "$out"
${CC:-gcc} -O2 -static -o "$out/malloc_maps" "$root/docs/report/malloc_maps.c"
echo "\$ readelf -lW malloc_maps | grep LOAD"
readelf -lW "$out/malloc_maps" | grep LOAD
echo
echo "\$ ./malloc_maps                              # natively"
"$out/malloc_maps"
echo
echo "\$ target/release/apager --log apager.log ./malloc_maps; cat apager.log"
"$bin/apager" --log "$out/malloc.apager.log" "$out/malloc_maps"
cat "$out/malloc.apager.log"
echo
echo "\$ target/release/dpager --stats --log dpager.log ./malloc_maps"
"$bin/dpager" --stats --log "$out/malloc.dpager.log" "$out/malloc_maps"
echo "\$ grep -v ' demand\\[' dpager.log; grep -c ' demand\\[' dpager.log"
grep -v ' demand\[' "$out/malloc.dpager.log"
grep -c ' demand\[' "$out/malloc.dpager.log"
