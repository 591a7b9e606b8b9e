#!/usr/bin/env bash
# How fast the console's pages are served with 10,000 requests in the
# store (issue #26: each page under 50 ms).
#
#   benches/console.sh [--debug] [--rows N] [--calls N] [--stores "sqlite postgres"]
#
# For each store: a fresh store (an SQLite file in a temporary folder; a
# PostgreSQL schema of its own, dropped at the end), exhaust-server started
# on a free loopback port with its worker, the bundled sample snapshot and a
# local storage folder. One request of the sample's channel is submitted
# and built (so there is a batch page with its summary), then the channel
# is seeded up to N rows (default 10,000: finished requests, each with a
# stored file, one bulk INSERT). Then each page is fetched --calls times
# (default 200) one after the other with curl, with the console's session
# cookie: the requests list (first page, a deep page, filtered by status and
# tag), its rows (the refresh), the new-request form, the batch page and a
# picture's CSV. Times are curl's time_total (request sent to last byte,
# loopback); the table gives p50, p95 and max in ms per page.
#
# Needs sqlite3, psql, curl, python3 and a PostgreSQL at
# $EXHAUST_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# The release build is reused from $CARGO_TARGET_DIR when set; --debug
# measures a debug build (a quick check of the script only).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

profile=release
rows=10000
calls=200
stores="sqlite postgres"
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug; shift ;;
    --rows) rows=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --stores) stores=$2; shift 2 ;;
    *)
      echo "usage: benches/console.sh [--debug] [--rows N] [--calls N] [--stores \"sqlite postgres\"]" >&2
      exit 2
      ;;
  esac
done
pg_url=${EXHAUST_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for tool in sqlite3 psql curl python3; do
  command -v "$tool" >/dev/null || { echo "benches/console.sh needs $tool" >&2; exit 1; }
done
log() { printf '== %s\n' "$*" >&2; }

log "building exhaust-server ($profile)"
if [ "$profile" = release ]; then
  cargo build --quiet --locked --release -p exhaust-server
else
  cargo build --quiet --locked -p exhaust-server
fi
target=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}
server="$target/$profile/exhaust-server"

CHANNEL=0166646273726135492
BATCH=0135742803756164562
work=$(mktemp -d)
pid=
schema=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ -n "$schema" ]; then
    psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_server() { # store_url table
  port=$(free_port)
  base="http://127.0.0.1:$port"
  mkdir -p "$work/files"
  (
    cd "$work"
    exec env -u EXHAUST_CONFIG -u EXHAUST_BEARER_TOKEN -u EXHAUST_AUTH \
      EXHAUST_STORE_URL="$1" EXHAUST_STORE_TABLE="$2" EXHAUST_LOG=warn \
      EXHAUST_STORAGE_URL="$work/files" EXHAUST_SNAPSHOT="$root/examples/sample-snapshot" \
      "$server" --bind "127.0.0.1:$port" --worker --poll-seconds 1 >"$work/server.log" 2>&1
  ) &
  pid=$!
  for _ in $(seq 1 200); do
    curl -fsS "$base/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "exhaust-server did not start:" >&2
  cat "$work/server.log" >&2
  exit 1
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}

# One request built by the worker: the batch page's summary.
build_one() {
  local body rid status
  body='{"request":{"tag":"bench","requestedBy":"bench","dataset":"progress-exhaust","datasetConfig":{"batchId":"'$BATCH'"}}}'
  rid=$(curl -fsS -X POST "$base/dataset/v1/request/submit" -H 'Content-Type: application/json' \
    -H "X-Channel-ID: $CHANNEL" -d "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["requestId"])')
  for _ in $(seq 1 100); do
    status=$(curl -fsS "$base/dataset/v1/request/read/bench?requestId=$rid" -H "X-Channel-ID: $CHANNEL" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["status"])')
    [ "$status" = SUCCESS ] && { echo "$rid"; return 0; }
    sleep 0.2
  done
  echo "the request did not build: $status" >&2
  exit 1
}

# Rows 1..N of the channel on other tags, one bulk INSERT (as benches/load.sh).
seed() { # store count
  local n=$2
  case "$1" in
    sqlite)
      sqlite3 "$work/exhaust.db" <<SQL
.timeout 30000
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $n)
INSERT INTO job_request (tag, request_id, job_id, status, request_data, requested_by,
    requested_channel, dt_job_submitted, download_urls, dt_job_completed, execution_time,
    err_message, iteration, processed_batches)
SELECT 'load_' || (i % 50) || ':$CHANNEL', printf('LOAD%08d', i), 'progress-exhaust',
    CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
    '{"batchId":"$BATCH"}', 'load-seed-' || i, '$CHANNEL', 1700000000000 + i * 1000,
    '["progress-exhaust/LOAD' || printf('%08d', i) || '/${BATCH}_progress_20231114.zip"]',
    1700000000000 + i * 1000 + 40000, 40000, NULL, 0, '[]'
FROM s;
SQL
      ;;
    postgres)
      psql -q -v ON_ERROR_STOP=1 "$pg_url" <<SQL >/dev/null
INSERT INTO $schema.job_request (tag, request_id, job_id, status, request_data, requested_by,
    requested_channel, dt_job_submitted, download_urls, dt_job_completed, execution_time,
    err_message, iteration, processed_batches)
SELECT 'load_' || (i % 50) || ':$CHANNEL', 'LOAD' || lpad(i::text, 8, '0'), 'progress-exhaust',
    CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'SUCCESS' END,
    '{"batchId":"$BATCH"}'::json, 'load-seed-' || i, '$CHANNEL',
    timestamp '2023-11-14 22:13:20' + i * interval '1 second',
    ARRAY['progress-exhaust/LOAD' || lpad(i::text, 8, '0') || '/${BATCH}_progress_20231114.zip'],
    timestamp '2023-11-14 22:14:00' + i * interval '1 second', 40000, NULL, 0, '[]'
FROM generate_series(1, $n) AS i;
ANALYZE $schema.job_request;
SQL
      ;;
  esac
}

results="$work/results.tsv"
: >"$results"
# Fetches $3 --calls times with the session; a line: store, page, p50, p95, max.
measure() { # store label path
  local times="$work/times" code
  : >"$times"
  code=$(curl -s -o /dev/null -w '%{http_code}' -b "$work/jar" "$base$3")
  [ "$code" = 200 ] || { echo "$2 ($3) answered $code" >&2; exit 1; }
  for _ in $(seq 1 "$calls"); do
    curl -s -o /dev/null -w '%{time_total}\n' -b "$work/jar" "$base$3" >>"$times"
  done
  python3 - "$1" "$2" "$times" >>"$results" <<'PY'
import sys
store, label, path = sys.argv[1:]
t = sorted(float(x) * 1000 for x in open(path) if x.strip())
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print(f"{store}\t{label}\t{q(0.5):.1f}\t{q(0.95):.1f}\t{t[-1]:.1f}")
PY
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
for store in $stores; do
  rm -rf "$work/exhaust.db"* "$work/files" "$work/jar"
  case "$store" in
    sqlite) start_server "$work/exhaust.db" job_request ;;
    postgres)
      schema="exhaust_console_$$"
      psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
      start_server "$pg_url" "$schema.job_request"
      ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  log "$store: building one request, seeding $rows rows"
  rid=$(build_one)
  seed "$store" "$rows"
  curl -s -o /dev/null -c "$work/jar" "$base/console?channel=$CHANNEL"
  glance="/console/requests/$rid/batches/$BATCH?tag=bench"
  deep=$(( rows / 25 / 2 ))
  for page in \
    "requests|/console" \
    "requests, page $deep|/console?page=$deep" \
    "requests by status and tag|/console?status=FAILED&tag=load_7" \
    "rows (the refresh)|/console/rows" \
    "new request|/console/new" \
    "batch page|$glance" \
    "a picture's CSV|/console/requests/$rid/batches/$BATCH/units.csv?tag=bench"; do
    log "$store: ${page%%|*} x $calls"
    measure "$store" "${page%%|*}" "${page#*|}"
  done
  stop_server
  if [ "$store" = postgres ]; then
    psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
    schema=
  fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
printf '\n%s build, %s requests in the channel (+1 built), %s calls per page, %s, %s cores, load average %s before and %s after\n\n' \
  "$profile" "$rows" "$calls" "$(date -u +'%Y-%m-%d %H:%M UTC')" "$(nproc)" "$load_before" "$load_after"
echo "| store | page | p50 ms | p95 ms | max ms |"
echo "| --- | --- | ---: | ---: | ---: |"
while IFS=$'\t' read -r st page p50 p95 max; do
  echo "| $st | $page | $p50 | $p95 | $max |"
done <"$results"
