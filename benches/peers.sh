#!/usr/bin/env bash
# exhaust against its peers in one run, on one snapshot: the PySpark port
# of Sunbird's job and the DuckDB SQL port (../shared/peers/), with the
# figures issue #27 asks for: what BENCHMARKS.md's "first run" section was
# measured with.
#
#   benches/peers.sh --exhaust BINARY [--before BINARY] [--size N] [--runs N] [--no-spark]
#
# --exhaust BINARY  the `exhaust` to measure (a release or dist build)
# --before BINARY   an earlier build to measure beside it, in the same
#                   rounds (its first and again runs, on copies of its own):
#                   a change's before and after under one load
# --size N          enrolments of the one batch (default 100000), over 5×N
#                   users, made once by the peers' generator
#                   (gen_snapshot.py, seed 42, as the issue's figures) under
#                   $EXHAUST_BENCH_DIR (default $HOME/.cache/exhaust-bench)
# --runs N          rounds (default 3); each round runs DuckDB and every
#                   exhaust variant once, one after the other, so they share
#                   the machine's load; Spark runs once (it takes minutes)
# --no-spark        leave the Spark port out
#
# The exhaust variants, each on a hard-linked copy of the snapshot of its
# own (see benches/snapshot.sh's bench_copy):
#   first        a snapshot never read (its .exhaust-index removed): the
#                first read indexes the tables only
#   second       the run after it, which finds the index and writes the
#                digests (untimed in the ratios: it is neither the first nor
#                a steady run; printed for the record)
#   again        every later run, reading the digests
#   digest-now   first run with --digest-now: the behaviour before issue
#                #27, when the first run wrote the digests
#   before-first, before-again   the --before build's first run and (after
#                its second, untimed in the ratios) its later run
# Every run's CSV (the file's bytes, not its name) must have one MD5 across
# exhaust and DuckDB (the Spark port differs on purpose: peers/README.md).
# Wall seconds and peak resident memory come from GNU time; the last lines
# are medians and the ratios of the issue's goals.
set -euo pipefail
cd "$(dirname "$0")/.."
size=100000
runs=3
spark=1
exhaust=
before=
while [ $# -gt 0 ]; do
  case "$1" in
    --exhaust) exhaust=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-spark) spark=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$exhaust" ] || { echo "--exhaust BINARY: give an exhaust executable" >&2; exit 2; }
exhaust=$(realpath "$exhaust")
if [ -n "$before" ]; then
  [ -x "$before" ] || { echo "--before BINARY: give an exhaust executable" >&2; exit 2; }
  before=$(realpath "$before")
fi
peers=$(realpath "${EXHAUST_PEERS:-../shared/peers}")
[ -f "$peers/duckdb_progress_exhaust.py" ] || { echo "no peers in $peers (set EXHAUST_PEERS)" >&2; exit 2; }
venv="${VENV:-/tmp/peers-venv}"
py="$venv/bin/python"
if [ ! -x "$py" ] || ! "$py" -c "import pyspark, orjson, psutil, duckdb" 2>/dev/null; then
  echo "setting up $venv (peers/README.md)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "pyspark==3.5.9" orjson psutil duckdb
fi
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null

bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
snap="$bench_dir/peers-n$size"
if [ ! -f "$snap/.complete" ]; then
  rm -rf "$snap"
  mkdir -p "$bench_dir"
  echo "generating $snap" >&2
  "$py" "$peers/gen_snapshot.py" --out "$snap" --batches 1 --enrolments-per-batch "$size" \
    --users $((size * 5)) --units 10 --leaves-per-unit 8 --assessments 6 --attempts 3 --seed 42 >/dev/null
  touch "$snap/.complete"
fi
batch=$(sed -n 1p "$snap/BATCHES.txt")
# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh

out=$(mktemp -d)
results=$(mktemp)
trap 'rm -rf "$out" "$results"' EXIT
memory=4g
[ "$size" -ge 1000000 ] && memory=8g

# timed LABEL DIR CMD...: runs CMD writing its CSV under DIR, records the
# wall seconds, peak MB and the CSV's MD5.
timed() {
  local label=$1 dir=$2 wall kb md5 mb
  shift 2
  rm -rf "$dir"
  /usr/bin/time -f '%e %M' -o "$out/t" "$@" >"$out/log" 2>&1 ||
    { echo "$label failed:" >&2; tail -20 "$out/log" >&2; exit 1; }
  read -r wall kb <"$out/t"
  md5=$(find "$dir" -name '*.csv' -exec cat {} + | md5sum | cut -c1-8)
  mb=$(awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }')
  echo "$label wall=${wall}s mem=${mb}MB md5=$md5"
  echo "$label $wall $mb $md5" >>"$results"
}
ours() {
  local label=$1 copy=$2
  shift 2
  timed "$label" "$out/$label" "$exhaust" report --snapshot "$copy" --batch-id "$batch" \
    --layout lern --out "$out/$label" "$@"
}
# The --before build: its own copy, since two builds' index formats may
# differ (see bench_copy).
theirs() {
  local label=$1 copy=$2
  timed "$label" "$out/$label" "$before" report --snapshot "$copy" --batch-id "$batch" \
    --layout lern --out "$out/$label"
}

fresh=$(bench_copy "$snap" peers-first)
digested=$(bench_copy "$snap" peers-digest-now)
[ -n "$before" ] && earlier=$(bench_copy "$snap" peers-before)
# Every table in the page cache: no run pays for reading the disk.
cat "$snap"/*.jsonl >/dev/null
echo "snapshot $snap ($(du -sh "$snap" | cut -f1)), batch $batch; load: $(uptime | sed 's/.*load average/load average/')"
if [ "$spark" = 1 ]; then
  timed spark "$out/spark" "$py" "$peers/spark_progress_exhaust.py" --snapshot "$snap" --batch-id "$batch" \
    --out "$out/spark" --user-parallelism 8 --shuffle-partitions 8 --driver-memory "$memory"
fi
for _ in $(seq "$runs"); do
  timed duckdb "$out/duckdb" "$py" "$peers/duckdb_progress_exhaust.py" --snapshot "$snap" \
    --batch-id "$batch" --out "$out/duckdb"
  rm -rf "$fresh/.exhaust-index" "$digested/.exhaust-index"
  ours first "$fresh"
  ours second "$fresh"
  ours again "$fresh"
  ours digest-now "$digested" --digest-now
  if [ -n "$before" ]; then
    rm -rf "$earlier/.exhaust-index"
    theirs before-first "$earlier"
    theirs before-second "$earlier"
    theirs before-again "$earlier"
  fi
done
echo
awk -v spark="$spark" '
  function median(l, c,   i, j, t, v) {
    for (i = 1; i <= c; i++) v[i] = W[l, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  { l = $1; if (!(l in n)) order[++nl] = l; n[l]++; W[l, n[l]] = $2
    if ($3 > M[l]) M[l] = $3
    if ($1 != "spark") md5[$4] = 1 }
  END {
    for (k = 1; k <= nl; k++) {
      l = order[k]; med[l] = median(l, n[l])
      printf "%-11s median %6.2f s, peak %5d MB over %d runs\n", l, med[l], M[l], n[l]
    }
    c = 0; for (h in md5) { c++; sums = sums " " h }
    printf "MD5 of exhaust and DuckDB:%s (%s)\n", sums, c == 1 ? "the same" : "DIFFERENT"
    split("first again digest-now before-first before-again", ls, " ")
    for (i = 1; i <= 5; i++) {
      l = ls[i]
      if (!(l in med)) continue
      printf "%-11s ", l
      if (spark) printf "%5.1fx faster than Spark, %5.1fx less memory; ", med["spark"] / med[l], M["spark"] / M[l]
      printf "%4.1fx faster than DuckDB, %4.1fx less memory\n", med["duckdb"] / med[l], M["duckdb"] / M[l]
    }
    printf "first run: %.2fx the later runs (digest-now: %.2fx)\n", med["first"] / med["again"], med["digest-now"] / med["again"]
    if ("before-first" in med)
      printf "against --before: first run %.2fx, later runs %.2fx as fast\n", med["before-first"] / med["first"], med["before-again"] / med["again"]
    if (c != 1) exit 1
  }' "$results"
