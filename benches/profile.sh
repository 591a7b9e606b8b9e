#!/usr/bin/env bash
# Where one report's CPU time goes: `perf record` of `exhaust report` on
# the generated snapshot of N enrolments (default 100000; made as
# benches/e2e.sh makes it), samples grouped by what they were doing.
#
#   benches/profile.sh [--size N] BINARY [ARG...]
#
# ARGs go to `exhaust report` (e.g. --no-digest). The snapshot's persisted
# index and digests are made by an untimed run first, and every file is
# read into the page cache, so the profile is of a later run. Needs `perf`
# (Debian: linux-perf); the VM's software clock is sampled (-e cpu-clock).
set -euo pipefail
cd "$(dirname "$0")/.."
size=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "give an exhaust binary" >&2; exit 2; }
exhaust=$1
shift
bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
mkdir -p "$bench_dir"
# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh
snap=$(bench_snapshot "$size")
batch=$(bench_batch "$snap")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$exhaust" report --snapshot "$snap" --batch-id "$batch" --out "$out/warm" "$@" >/dev/null
cat "$snap"/*.jsonl "$snap"/.exhaust-index/* >/dev/null 2>&1 || true
perf record -q -F 999 -e cpu-clock -g -o "$out/perf.data" \
  "$exhaust" report --snapshot "$snap" --batch-id "$batch" --out "$out/r" "$@" >/dev/null 2>&1
perf report -i "$out/perf.data" --no-children --sort dso,symbol -g none --percent-limit 0 2>/dev/null |
  grep -v '^#' | grep '%' | awk '
  { pct = $1; sub("%", "", pct); dso = $2; sym = ""; for (i = 4; i <= NF; i++) sym = sym " " $i
    c = "other"
    if (dso ~ /kernel/) c = "kernel (reads: pread copies, page cache lookups; scheduling)"
    else if (sym ~ /mi_|_mi_|mimalloc/) c = "allocator (mimalloc)"
    else if (dso ~ /libc/ && sym ~ /memmove|memcpy|memcmp|memset|memchr/) c = "libc memmove/memcmp"
    else if (sym ~ /serde_json|serde_core|from_utf8|simdutf8/) c = "JSON parsing, UTF-8 checks"
    else if (sym ~ /digest::|codec::/) c = "digest decoding"
    else if (sym ~ /exhaust_sources::/) c = "snapshot reader (index lookups, runs, rows)"
    else if (sym ~ /exhaust_core::|csv|fmt::|flt2dec|chrono|hashbrown|itoa|ryu/) c = "report rules and CSV"
    share[c] += pct; all += pct }
  END {
    for (c in share) printf "%5.1f%%  %s\n", share[c] * 100 / all, c
  }' | sort -rn
