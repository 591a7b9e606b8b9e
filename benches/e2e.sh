#!/usr/bin/env bash
# End-to-end benchmark of `exhaust report` on generated snapshots.
#
#   benches/e2e.sh [--base REV|BINARY] [--runs N] [SIZES...]
#   benches/e2e.sh --one-of-many [--base REV|BINARY] [--runs N]
#
# For each size N (default: 10000 100000 1000000) it generates once, cached
# under $EXHAUST_BENCH_DIR (default $HOME/.cache/exhaust-bench), one batch of
# N enrolments over a user cache of 5×N users, 10 units × 8 leaves,
# 6 assessments, up to 3 attempts (benches/snapshot.sh); warms the page
# cache; then times `exhaust report` in a release build (GNU time: wall
# clock, CPU seconds (user + system, which other work on the machine
# disturbs less than the wall clock), peak resident memory), three times
# per run:
#   - "first": without a persisted index (the snapshot's .exhaust-index
#     folder removed), so the run reads every table to index it (since
#     issue #27 a first run writes no digests: the second does);
#   - "again": with the digests the (untimed) second run wrote, as every
#     later run of that snapshot (or a server's next batch) finds them;
#   - "lines": the other snapshot form, the JSON lines read through their
#     persisted offset indexes (`--no-digest`, after an untimed run that
#     persists them), as builds before the digest read every run.
#
# --base REV|BINARY  runs another build side by side: a commit of this
#                    repository (exported with git archive and built once,
#                    with the same target folder, into the bench folder) or
#                    a path to an `exhaust` binary. Each run times base,
#                    first and again one after the other, so the ratios
#                    printed at the end (medians over the runs) compare
#                    builds under the same load. The base runs on a
#                    hard-linked copy of the snapshot (SNAPSHOT.base), with
#                    persisted files of its own.
# --runs N           timed runs per size (default 1; 3 with --base).
# --one-of-many      instead of sizes: one 4,000-enrolment batch of a
#                    24-batch snapshot, against the same batch exported
#                    alone (`exhaust snapshot`): what a batch costs in a big
#                    snapshot once its index is persisted.
#
# The release build uses $CARGO_TARGET_DIR (default
# $HOME/.cache/exhaust-bench-target, apart from the debug builds' folder).
set -euo pipefail
cd "$(dirname "$0")/.."
base=""
runs=""
one_of_many=0
sizes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --one-of-many) one_of_many=1; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
    *) sizes+=("$1"); shift ;;
  esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)
[ -n "$runs" ] || { [ -n "$base" ] && runs=3 || runs=1; }
bench_dir="${EXHAUST_BENCH_DIR:-$HOME/.cache/exhaust-bench}"
mkdir -p "$bench_dir"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/exhaust-bench-target}"

if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
cargo build --release -q --locked -p exhaust-cli
exhaust="$bench_dir/exhaust-this"
cp "$CARGO_TARGET_DIR/release/exhaust" "$exhaust"

# The base build: a binary as given, or a commit built once.
base_bin=""
if [ -n "$base" ]; then
  if [ -x "$base" ] && [ -f "$base" ]; then
    base_bin=$base
  else
    rev=$(git rev-parse --short=12 "$base^{commit}")
    base_bin="$bench_dir/exhaust-$rev"
    if [ ! -x "$base_bin" ]; then
      src="$bench_dir/src-$rev"
      rm -rf "$src" && mkdir -p "$src"
      git archive "$rev" | tar -x -C "$src"
      (cd "$src" && cargo build --release -q --locked -p exhaust-cli)
      cp "$CARGO_TARGET_DIR/release/exhaust" "$base_bin"
      rm -rf "$src"
      # The target folder's binary is the base's now: put ours back.
      cargo build --release -q --locked -p exhaust-cli
    fi
  fi
  echo "base: $base_bin ($base); this: $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- . || echo ' + changes')"
fi
# shellcheck source=benches/snapshot.sh
. benches/snapshot.sh
echo "load: $(uptime | sed 's/.*load average/load average/')"

# time_report BINARY SNAPSHOT BATCH [ARG...]: prints "wall peak_mb rows cpu".
time_report() {
  local bin=$1 snap=$2 batch=$3 out stats wall peak_kb rows
  shift 3
  out=$(mktemp -d)
  stats=$( { /usr/bin/time -f '%e %M %U %S' "$bin" report --snapshot "$snap" --batch-id "$batch" --out "$out" "$@" >"$out/log"; } 2>&1 | tail -n 1)
  read -r wall peak_kb user sys <<<"$stats"
  rows=$(sed -nE 's/^batch [^:]+: ([0-9]+) rows.*/\1/p' "$out/log")
  rm -rf "$out"
  echo "$wall $(awk -v k="$peak_kb" 'BEGIN { printf "%.0f", k / 1024 }') $rows $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')"
}

# row LABEL SNAP BATCH BUILD RUN: times one report and prints a table row;
# appends "BUILD RUN wall peak" to $results.
row() {
  local label=$1 snap=$2 batch=$3 build=$4 run=$5 bin=$exhaust r args=()
  [ "$build" = base ] && bin=$base_bin
  [ "$run" = first ] && rm -rf "$snap/.exhaust-index"
  [ "$run" = lines ] && args=(--no-digest)
  # Every file back in the page cache (the kernel may trim pages a run
  # has not touched for a while), so no run pays for the one before.
  cat "$snap"/*.jsonl "$snap"/.exhaust-index/* >/dev/null 2>&1 || true
  r=$(time_report "$bin" "$snap" "$batch" "${args[@]}")
  set -- $r
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$build" "$run" "$3" "$1" "$4" "$2"
  echo "$label $build $run $1 $2 $4" >>"$results"
}

# round LABEL SNAP BATCH: one timed run of each kind. The line indexes
# are persisted (untimed) before the "lines" run, and the files written are
# flushed. The base runs on a hard-linked copy of the snapshot (bench_copy)
# with its own persisted files, made by an untimed run of its own: a build
# with another digest format would otherwise rewrite ours, and we its.
round() {
  local copy
  row "$1" "$2" "$3" this first
  # The second run, which writes the digests (untimed).
  time_report "$exhaust" "$2" "$3" >/dev/null
  time_report "$exhaust" "$2" "$3" --no-digest >/dev/null
  if [ -n "$base_bin" ]; then
    copy=$(bench_copy "$2" base)
    [ -d "$copy/.exhaust-index" ] || time_report "$base_bin" "$copy" "$3" >/dev/null
  fi
  # What the first run wrote goes to disk now, not during the next runs.
  sync
  [ -n "$base_bin" ] && row "$1" "$copy" "$3" base -
  row "$1" "$2" "$3" this again
  row "$1" "$2" "$3" this lines
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT

if [ "$one_of_many" = 1 ]; then
  big="$bench_dir/b24-n4000"
  if [ ! -f "$big/.complete" ]; then
    rm -rf "$big"
    "$exhaust" gen-snapshot --out "$big" --batches 24 --enrolments-per-batch 4000 --users 100000 \
      --units 10 --leaves-per-unit 8 --assessments 6 --attempts 3 --seed 1 >/dev/null
    touch "$big/.complete"
  fi
  batch=$(bench_batch "$big")
  alone="$bench_dir/b24-n4000-alone"
  if [ ! -f "$alone/.complete" ]; then
    rm -rf "$alone"
    EXHAUST_SNAPSHOT="$big" "$exhaust" snapshot --batch-id "$batch" --out "$alone" >/dev/null
    touch "$alone/.complete"
  fi
  cat "$big"/*.jsonl "$alone"/*.jsonl >/dev/null
  printf '| snapshot | build | run | rows | wall (s) | CPU (s) | peak memory (MB) |\n'
  printf '| --- | --- | --- | ---: | ---: | ---: | ---: |\n'
  for _ in $(seq "$runs"); do
    for snap in "$alone" "$big"; do
      label="$([ "$snap" = "$alone" ] && echo alone || echo in-24)-$(du -sm --exclude=.exhaust-index "$snap" | cut -f1)MB"
      round "$label" "$snap" "$batch"
    done
  done
else
  printf '| enrolments | build | run | rows | wall (s) | CPU (s) | peak memory (MB) |\n'
  printf '| ---: | --- | --- | ---: | ---: | ---: | ---: |\n'
  for n in "${sizes[@]}"; do
    snap=$(bench_snapshot "$n")
    batch=$(bench_batch "$snap")
    # Warm the page cache once, so runs measure our code, not the disk.
    cat "$snap"/*.jsonl >/dev/null
    for _ in $(seq "$runs"); do
      round "$n" "$snap" "$batch"
    done
  done
fi

# Medians per label and build/run; ratios against the base (or "first").
echo
awk '
  { key = $1 " " $2 " " $3; n[key]++; w[key, n[key]] = $4; m[key, n[key]] = $5; c[key, n[key]] = $6
    if (!(($1) in seen)) { seen[$1] = 1; labels[++nl] = $1 } }
  function median(key, arr,   c, i, j, t, v) {
    c = n[key]; for (i = 1; i <= c; i++) v[i] = arr[key, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
  }
  END {
    for (l = 1; l <= nl; l++) {
      lab = labels[l]; ref = lab " base -"; if (!(ref in n)) ref = lab " this first"
      rw = median(ref, w); rm = median(ref, m); rc = median(ref, c)
      split("this first|this again|this lines", ks, "|")
      for (k = 1; k <= 3; k++) {
        key = lab " " ks[k]; if (!(key in n) || key == ref) continue
        printf "%s %s: median %.2f s wall, %.2f s CPU, %.0f MB over %d runs; %s/this: %.1fx wall, %.1fx CPU, %.1fx memory\n", \
          lab, ks[k], median(key, w), median(key, c), median(key, m), n[key], (ref ~ /base/ ? "base" : "first"), \
          rw / median(key, w), rc / median(key, c), rm / median(key, m)
      }
    }
    # --one-of-many: the batch in the big snapshot against the batch alone.
    if (nl == 2 && labels[1] ~ /^alone/) {
      a = median(labels[1] " this again", w); b = median(labels[2] " this again", w)
      ac = median(labels[1] " this again", c); bc = median(labels[2] " this again", c)
      printf "one batch, digests persisted: %.2f s (%.2f s CPU) in the 24-batch snapshot, %.2f s (%.2f s CPU) alone: %.1fx wall, %.1fx CPU\n", b, bc, a, ac, b / a, bc / ac
      a = median(labels[1] " this lines", w); b = median(labels[2] " this lines", w)
      printf "one batch, line indexes persisted: %.2f s in the 24-batch snapshot, %.2f s alone: %.1fx wall\n", b, a, b / a
    }
  }' "$results"
