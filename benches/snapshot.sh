# Sourced by the benchmark scripts: the generated snapshot of one batch of
# N enrolments, made once and cached under $bench_dir (the caller sets it
# and $exhaust). A user cache of 5×N users,
# 10 units × 8 leaves, 6 assessments, up to 3 attempts, seed 1.
#
#   snap=$(bench_snapshot N)     # the folder
#   batch=$(bench_batch "$snap") # its batch id

bench_snapshot() {
  local n=$1 users snap
  users=$((n * 5))
  snap="$bench_dir/n$n-u$users"
  if [ ! -f "$snap/.complete" ]; then
    rm -rf "$snap"
    "$exhaust" gen-snapshot --out "$snap" --batches 1 --enrolments-per-batch "$n" --users "$users" \
      --units 10 --leaves-per-unit 8 --assessments 6 --attempts 3 --seed 1 >/dev/null
    touch "$snap/.complete"
  fi
  echo "$snap"
}

bench_batch() {
  head -n 1 "$1/course_batch.jsonl" | sed -E 's/.*"batchid":"([^"]+)".*/\1/'
}

# bench_copy SNAP NAME: SNAP's tables hard-linked (no bytes copied) into a
# folder of their own, SNAP.NAME, so that a build run there keeps its own
# persisted index and digests. Two builds whose formats differ, run on one
# folder, would each find the other's files invalid and rewrite them on
# every run, timing the writing run instead of the reading one.
bench_copy() {
  local snap=$1 copy="$1.$2" f
  mkdir -p "$copy"
  for f in "$snap"/*.jsonl "$snap"/*.jsonl.gz; do
    # Linked again each time: a regenerated snapshot replaces the links.
    [ -e "$f" ] && ln -f "$f" "$copy/"
  done
  echo "$copy"
}
