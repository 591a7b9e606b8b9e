#!/usr/bin/env bash
# End-to-end benchmark of `exhaust report` on generated snapshots.
#
#   benches/e2e.sh [SIZES...]      (default: 10000 100000 1000000)
#
# For each size N it generates (once, cached under $EXHAUST_BENCH_DIR,
# default $HOME/.cache/exhaust-bench) one batch of N enrolments over a user
# cache of 5×N users (2,000,000 for N = 1,000,000), 10 units × 8 leaves,
# 6 assessments, up to 3 attempts; then times one report in release mode and
# prints wall time, rows per second and peak resident memory.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)
bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/exhaust-target}"

if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
cargo build --release -q -p exhaust-cli
exhaust="$CARGO_TARGET_DIR/release/exhaust"
# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh

printf '| enrolments | cached users | rows | wall (s) | rows/s | peak memory (MB) |\n'
printf '| ---: | ---: | ---: | ---: | ---: | ---: |\n'
for n in "${sizes[@]}"; do
  users=$((n * 5))
  [ "$n" -ge 1000000 ] && users=2000000
  snap=$(bench_snapshot "$n")
  batch=$(bench_batch "$snap")
  out=$(mktemp -d)
  # Warm the page cache once, so runs measure our code, not the disk.
  cat "$snap"/*.jsonl >/dev/null
  stats=$( { /usr/bin/time -f '%e %M' "$exhaust" report --snapshot "$snap" --batch-id "$batch" --out "$out" >"$out/log"; } 2>&1 | tail -n 1)
  wall=${stats% *}
  peak_kb=${stats#* }
  rows=$(sed -nE 's/^batch [^:]+: ([0-9]+) rows.*/\1/p' "$out/log")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$n" "$users" "$rows" "$wall" \
    "$(awk -v r="$rows" -v w="$wall" 'BEGIN { printf "%.0f", r / w }')" \
    "$(awk -v k="$peak_kb" 'BEGIN { printf "%.0f", k / 1024 }')"
  rm -rf "$out"
done
