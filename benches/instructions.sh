#!/usr/bin/env bash
# Instructions of one later run (one that finds the index and digests),
# counted by valgrind's callgrind: a measure of the work a change saves that
# does not move with the machine's load or clock, for changes too small
# for wall-clock rounds to tell apart (a few percent). Wall time is still
# what the goals are stated in: benches/peers.sh measures that.
#
#   benches/instructions.sh --exhaust BINARY [--before BINARY] [--size N]
#
# --exhaust BINARY  the `exhaust` to count (a release build)
# --before BINARY   an earlier build, counted the same way on a copy of its
#                   own, and the ratio of the two
# --size N          enrolments of the peers' snapshot (default 100000), the
#                   one benches/peers.sh makes (run it once first)
#
# Each build runs twice on its copy first (the index, then the digests), so
# the counted run reads them; the CSVs' MD5 must match. Callgrind runs the
# program's threads one at a time, so a run takes about a minute at 100,000.
set -euo pipefail
cd "$(dirname "$0")/.."
size=100000
exhaust=
before=
while [ $# -gt 0 ]; do
  case "$1" in
    --exhaust) exhaust=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$exhaust" ] || { echo "--exhaust BINARY: give an exhaust executable" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
snap="$bench_dir/peers-n$size"
[ -f "$snap/.complete" ] || { echo "no $snap: run benches/peers.sh --size $size once" >&2; exit 2; }
batch=$(sed -n 1p "$snap/BATCHES.txt")
# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# count LABEL BINARY: the instructions of BINARY's later run on its copy.
count() {
  local label=$1 bin copy n md5
  bin=$(realpath "$2")
  copy=$(bench_copy "$snap" "instr-$label")
  for _ in 1 2; do
    "$bin" report --snapshot "$copy" --batch-id "$batch" --layout lern --out "$out/$label" >/dev/null 2>&1
  done
  rm -rf "$out/$label"
  valgrind --tool=callgrind --callgrind-out-file="$out/$label.cg" \
    "$bin" report --snapshot "$copy" --batch-id "$batch" --layout lern --out "$out/$label" \
    >"$out/$label.log" 2>&1 || { tail -20 "$out/$label.log" >&2; exit 1; }
  n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/$label.log")
  md5=$(find "$out/$label" -name '*.csv' -exec cat {} + | md5sum | cut -c1-8)
  echo "$label instructions=$n md5=$md5" >&2
  echo "$n $md5"
}

read -r after after_md5 < <(count after "$exhaust")
if [ -n "$before" ]; then
  read -r earlier earlier_md5 < <(count before "$before")
  [ "$after_md5" = "$earlier_md5" ] || { echo "the CSVs differ: $earlier_md5 before, $after_md5 after" >&2; exit 1; }
  awk -v a="$after" -v b="$earlier" 'BEGIN { printf "before %.3f G, after %.3f G instructions: %.3fx fewer\n", b / 1e9, a / 1e9, b / a }'
else
  awk -v a="$after" 'BEGIN { printf "%.3f G instructions\n", a / 1e9 }'
fi
