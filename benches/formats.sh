#!/usr/bin/env bash
# The output formats side by side: one `exhaust report` per format on the
# same generated batch (the snapshots of benches/e2e.sh), wall time, peak
# resident memory and file size.
#
#   benches/formats.sh [SIZE]      (default: 100000 enrolments)
#
# EXHAUST_BENCH_PROFILE=debug measures a debug build instead of release (the
# ratios between formats, when a release build of arrow and parquet is too
# long to wait for).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
profile="${EXHAUST_BENCH_PROFILE:-release}"
bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/exhaust-target}"

if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
if [ "$profile" = release ]; then
  cargo build --release -q -p exhaust-cli --features typed
else
  cargo build -q -p exhaust-cli --features typed
fi
exhaust="$CARGO_TARGET_DIR/$profile/exhaust"

# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh
snap=$(bench_snapshot "$n")
batch=$(bench_batch "$snap")
cat "$snap"/*.jsonl >/dev/null

printf '| format (%s) | rows | wall (s) | peak memory (MB) | file (MB) |\n' "$profile"
printf '| --- | ---: | ---: | ---: | ---: |\n'
for format in csv parquet arrow xlsx; do
  out=$(mktemp -d)
  stats=$( { /usr/bin/time -f '%e %M' "$exhaust" report --snapshot "$snap" --batch-id "$batch" \
    --format "$format" --out "$out" >"$out/log"; } 2>&1 | tail -n 1)
  wall=${stats% *}
  peak_kb=${stats#* }
  rows=$(sed -nE 's/^batch [^:]+: ([0-9]+) rows.*/\1/p' "$out/log")
  bytes=$(stat -c %s "$out"/progress-exhaust/*."$format")
  printf '| %s | %s | %s | %s | %s |\n' "$format" "$rows" "$wall" \
    "$(awk -v k="$peak_kb" 'BEGIN { printf "%.0f", k / 1024 }')" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
  rm -rf "$out"
done
