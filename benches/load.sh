#!/usr/bin/env bash
# Load benchmark of exhaust-server's Data Exhaust API, on loopback, with wrk:
# submit, read and list on each store (SQLite, the embedded default, and
# PostgreSQL), with one tag seeded to each size in turn, so the figures show
# whether read and list stay flat as the table grows.
#
#   benches/load.sh [--debug] [--sizes "10000 100000"] [--stores "sqlite postgres"]
#                   [--duration SECONDS] [--connections N] [--drop-indexes]
#
# For each store: a fresh store (an SQLite file in a temporary folder; a
# PostgreSQL schema of its own, dropped at the end), the server started on a
# free loopback port with the bundled sample snapshot and a local storage
# folder. Then, for each size: the tag `load_tag` (channel `load-channel`)
# is seeded up to that many rows with one bulk INSERT (finished requests
# with a stored file, as a busy deployment holds; PostgreSQL's statistics
# are then updated, as autovacuum would), and wrk runs read (a random seeded request each call), list (limit=10)
# and submit (each call a new request, on another tag) for the duration
# each. Results go to a table on stdout and to $HOME/.cache/exhaust-load/.
#
# Needs wrk (apt-get install wrk), sqlite3, psql and a PostgreSQL at
# $EXHAUST_BENCH_PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# The release build is reused from $CARGO_TARGET_DIR when set (a cold one
# takes about 15 minutes on 2 cores); --debug measures a debug build, for a
# quick check of the script only. --drop-indexes drops the store's indexes
# once the server has created them, to show what they buy.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

profile=release
sizes="10000 100000"
stores="sqlite postgres"
duration=10
connections=32
drop_indexes=no
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug; shift ;;
    --sizes) sizes=$2; shift 2 ;;
    --stores) stores=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --drop-indexes) drop_indexes=yes; shift ;;
    *)
      echo "usage: benches/load.sh [--debug] [--sizes \"N ...\"] [--stores \"sqlite postgres\"] [--duration S] [--connections N] [--drop-indexes]" >&2
      exit 2
      ;;
  esac
done
pg_url=${EXHAUST_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}

log() { printf '== %s\n' "$*" >&2; }
for tool in wrk sqlite3 psql curl python3; do
  command -v "$tool" >/dev/null || { echo "benches/load.sh needs $tool" >&2; exit 1; }
done

log "building exhaust-server ($profile)"
if [ "$profile" = release ]; then
  cargo build --quiet --locked --release -p exhaust-server
else
  cargo build --quiet --locked -p exhaust-server
fi
target=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')}
server="$target/$profile/exhaust-server"

out_dir="$HOME/.cache/exhaust-load"
mkdir -p "$out_dir"
results="$out_dir/load-$(date -u +%Y%m%dT%H%M%SZ).tsv"
: >"$results"
# The machine may be shared: its load before and after says how much the
# figures were disturbed.
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

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

TAG=load_tag
CHANNEL=load-channel
STORED_TAG="$TAG:$CHANNEL"

# Starts the server on store URL $1 (and table $2), waits for /health.
start_server() {
  local store_url=$1 table=$2
  port=$(free_port)
  base="http://127.0.0.1:$port"
  mkdir -p "$work/files"
  (
    cd "$work"
    exec env -u EXHAUST_CONFIG -u EXHAUST_BEARER_TOKEN -u EXHAUST_SERVER_WORKER \
      EXHAUST_STORE_URL="$store_url" EXHAUST_STORE_TABLE="$table" \
      EXHAUST_STORAGE_URL="$work/files" EXHAUST_SNAPSHOT="$root/examples/sample-snapshot" \
      "$server" --bind "127.0.0.1:$port" >"$work/server.log" 2>&1
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

# Seeds rows $2..$3 of the tag on store $1 in one statement: SUCCESS
# requests submitted a second apart, each with a stored file (so read and
# list sign a link per request, as they do in a deployment).
seed() {
  local store=$1 from=$2 to=$3
  [ "$from" -le "$to" ] || return 0
  case "$store" in
    sqlite)
      sqlite3 "$work/exhaust.db" <<SQL
.timeout 30000
WITH RECURSIVE s(i) AS (SELECT $from UNION ALL SELECT i + 1 FROM s WHERE i < $to)
INSERT INTO job_request (tag, request_id, job_id, status, request_data, requested_by,
    requested_channel, dt_job_submitted, download_urls, dt_job_completed, execution_time,
    err_message, iteration, processed_batches)
SELECT '$STORED_TAG', printf('LOAD%08d', i), 'progress-exhaust', 'SUCCESS',
    '{"batchId":"0135742803756164562"}', 'load-seed-' || i, '$CHANNEL',
    1700000000000 + i * 1000,
    '["progress-exhaust/LOAD' || printf('%08d', i) || '/0135742803756164562_progress_20231114.zip"]',
    1700000000000 + i * 1000 + 40000, 40000, NULL, 0, '[]'
FROM s;
SQL
      ;;
    postgres)
      psql -q -v ON_ERROR_STOP=1 "$pg_url" <<SQL >/dev/null
INSERT INTO $schema.job_request (tag, request_id, job_id, status, request_data, requested_by,
    requested_channel, dt_job_submitted, download_urls, dt_job_completed, execution_time,
    err_message, iteration, processed_batches)
SELECT '$STORED_TAG', 'LOAD' || lpad(i::text, 8, '0'), 'progress-exhaust', 'SUCCESS',
    '{"batchId":"0135742803756164562"}'::json, 'load-seed-' || i, '$CHANNEL',
    timestamp '2023-11-14 22:13:20' + i * interval '1 second',
    ARRAY['progress-exhaust/LOAD' || lpad(i::text, 8, '0') || '/0135742803756164562_progress_20231114.zip'],
    timestamp '2023-11-14 22:14:00' + i * interval '1 second', 40000, NULL, 0, '[]'
FROM generate_series($from, $to) AS i;
ANALYZE $schema.job_request;
SQL
      ;;
  esac
}

table_rows() {
  case "$1" in
    sqlite) sqlite3 "$work/exhaust.db" "SELECT count(*) FROM job_request" ;;
    postgres) psql -tAq "$pg_url" -c "SELECT count(*) FROM $schema.job_request" ;;
  esac
}

# wrk over one route: $1 store, $2 rows on the tag, $3 route name.
measure() {
  local store=$1 rows=$2 route=$3 total
  total=$(table_rows "$store")
  LOAD_OUT="$results" LOAD_LABEL="$store	$rows	$total	$route" LOAD_LUA_DIR="$root/benches/load" \
    LOAD_TAG="$TAG" LOAD_CHANNEL="$CHANNEL" LOAD_ROWS="$rows" LOAD_RUN="$store-$rows" \
    LOAD_SUBMIT_TAG="load_submit" \
    wrk -t2 -c"$connections" -d"${duration}s" --timeout 5s \
      -s "$root/benches/load/$route.lua" "$base" >"$work/wrk-$store-$rows-$route.txt"
  # The server must still answer after each run.
  curl -fsS "$base/health" >/dev/null
}

for store in $stores; do
  rm -rf "$work/exhaust.db"* "$work/files"
  case "$store" in
    sqlite)
      start_server "$work/exhaust.db" job_request
      ;;
    postgres)
      schema="exhaust_load_$$"
      psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
      start_server "$pg_url" "$schema.job_request"
      ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  if [ "$drop_indexes" = yes ]; then
    log "$store: dropping the store's indexes"
    case "$store" in
      sqlite)
        sqlite3 "$work/exhaust.db" ".timeout 30000" \
          "DROP INDEX job_request_tag_submitted_idx; DROP INDEX job_request_pending_idx;"
        ;;
      postgres)
        psql -q -v ON_ERROR_STOP=1 "$pg_url" \
          -c "DROP INDEX $schema.job_request_tag_submitted_idx; DROP INDEX $schema.job_request_pending_idx" >/dev/null
        ;;
    esac
  fi
  seeded=0
  for size in $sizes; do
    log "$store: seeding $TAG to $size rows"
    seed "$store" $((seeded + 1)) "$size"
    seeded=$size
    for route in read list submit; do
      log "$store, $size rows on the tag: $route for ${duration}s, $connections connections"
      measure "$store" "$size" "$route"
    done
  done
  stop_server
  if [ "$store" = postgres ]; then
    psql -q "$pg_url" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null
    schema=
  fi
done

log "results: $results"
indexes=$([ "$drop_indexes" = yes ] && echo "indexes dropped" || echo "with the indexes")
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
printf '\n%s build, %s, %s connections, %ss per run, %s, %s cores, load average %s before and %s after\n\n' \
  "$profile" "$indexes" "$connections" "$duration" "$(date -u +'%Y-%m-%d %H:%M UTC')" "$(nproc)" \
  "$load_before" "$load_after"
echo "| store | rows on the tag | rows in the table | call | calls/s | p50 ms | p90 ms | p99 ms | max ms | non-2xx | errors | timeouts |"
echo "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
while IFS=$'\t' read -r st rows total route n secs rps p50 p90 p99 max status errs timeouts; do
  echo "| $st | $rows | $total | $route | $rps | $p50 | $p90 | $p99 | $max | $status | $errs | $timeouts |"
done <"$results"
