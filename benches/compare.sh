#!/usr/bin/env bash
# Several builds of `exhaust` side by side on one generated snapshot, in
# alternating rounds, with the report's MD5 so any difference in output
# shows: what BENCHMARKS.md's step-by-step tables were measured with.
#
#   benches/compare.sh [--runs N] [--size N] [--drop-caches] [--first] BINARY[:ARG,...]...
#
# BINARY:ARG,...   runs BINARY with these extra `exhaust report` arguments,
#                  e.g. `this/exhaust:--no-digest` for the JSON lines form
#                  of the snapshot beside `this/exhaust` (its digests)
# --first          every run starts without persisted indexes or digests
#                  (the snapshot's .exhaust-index removed): what the first
#                  run of a snapshot costs
#
# --size N         enrolments of the snapshot (default 100000; generated
#                  once, as benches/e2e.sh does, under $EXHAUST_BENCH_DIR,
#                  default $HOME/.cache/exhaust-bench)
# --runs N         rounds (default 5); each round runs every binary once,
#                  in the order given
# --drop-caches    empty the page cache first (needs root), then read the
#                  snapshot back into it, so no other snapshot's pages
#                  compete with it
#
# Each run is `exhaust report` of the snapshot's batch with its persisted
# index and digests (each label's form is persisted by an untimed run
# first, in a hard-linked copy of the snapshot of its own, so builds with
# different formats do not rewrite each other's files), unless --first.
# Prints one line per run, then medians per binary. Build a commit's binary with
# `git worktree add /tmp/w REV && (cd /tmp/w && cargo build --release -p exhaust-cli)`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
size=100000
drop=0
first=0
bins=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --drop-caches) drop=1; shift ;;
    --first) first=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) bins+=("$1"); shift ;;
  esac
done
[ ${#bins[@]} -gt 0 ] || { echo "give one or more exhaust binaries" >&2; exit 2; }
# command_of K OUT: sets `cmd` to the `exhaust report` that the K-th
# label (BINARY[:ARG,...]) names, writing to OUT, and `snap_k` to its copy
# of the snapshot.
command_of() {
  local label=${bins[$1]} extra=()
  local bin=${label%%:*}
  [ "$bin" != "$label" ] && IFS=, read -r -a extra <<<"${label#*:}"
  snap_k=${copies[$1]}
  cmd=("$bin" report --snapshot "$snap_k" --batch-id "$batch" --out "$2" "${extra[@]}")
}
for b in "${bins[@]}"; do
  [ -x "${b%%:*}" ] || { echo "${b%%:*} is not an executable" >&2; exit 2; }
done
if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
mkdir -p "$bench_dir"
exhaust=${bins[0]}
# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh
snap=$(bench_snapshot "$size")
batch=$(bench_batch "$snap")
if [ "$drop" = 1 ]; then
  sync
  echo 1 >/proc/sys/vm/drop_caches
fi
out=$(mktemp -d)
results=$(mktemp)
trap 'rm -rf "$out" "$results"' EXIT
# Each label runs on its own hard-linked copy of the snapshot (see
# bench_copy), with its own persisted index and digests.
copies=()
for k in "${!bins[@]}"; do
  copies[k]=$(bench_copy "$snap" "compare-$k")
  rm -rf "$out/warm"
  command_of "$k" "$out/warm"
  "${cmd[@]}" >/dev/null
done
echo "load: $(uptime | sed 's/.*load average/load average/')"
for _ in $(seq "$runs"); do
  for k in "${!bins[@]}"; do
    b=${bins[$k]}
    rm -rf "$out/r"
    command_of "$k" "$out/r"
    [ "$first" = 1 ] && rm -rf "$snap_k/.exhaust-index"
    # Every file back in the page cache (the kernel may trim pages a run
    # has not touched for a while), so no run pays for the one before.
    cat "$snap_k"/*.jsonl "$snap_k"/.exhaust-index/* >/dev/null 2>&1 || true
    /usr/bin/time -f '%e %U %S %M' -o "$out/t" "${cmd[@]}" >/dev/null
    read -r wall user sys kb <"$out/t"
    md5=$(cat "$out"/r/progress-exhaust/* | md5sum | cut -c1-8)
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    mb=$(awk -v k="$kb" 'BEGIN { printf "%.0f", k / 1024 }')
    echo "$b wall=$wall cpu=$cpu mem=${mb}MB md5=$md5"
    echo "$b $wall $cpu $mb $md5" >>"$results"
  done
done
echo
awk '
  function median(arr, c,   i, j, t, v) {
    for (i = 1; i <= c; i++) v[i] = arr[i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  { b = $1; if (!(b in n)) order[++nb] = b; n[b]++
    w[b, n[b]] = $2; c[b, n[b]] = $3; m[b, n[b]] = $4
    if (!((b, $5) in seen)) { seen[b, $5] = 1; sums[b] = sums[b] " " $5 } }
  END {
    for (k = 1; k <= nb; k++) {
      b = order[k]
      for (i = 1; i <= n[b]; i++) { ww[i] = w[b, i]; cc[i] = c[b, i]; mm[i] = m[b, i] }
      printf "%s: median %.2f s wall, %.2f s CPU, %.0f MB over %d runs; MD5%s\n", b, median(ww, n[b]), median(cc, n[b]), median(mm, n[b]), n[b], sums[b]
    }
  }' "$results"
