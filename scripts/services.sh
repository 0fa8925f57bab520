#!/usr/bin/env bash
# Throwaway backends for the integration tests, on free loopback ports:
#   scripts/services.sh start DIR   start PostgreSQL 15, Redis and a Kafka broker (librdkafka mock
#                                   cluster, 3 brokers); write DIR/env with DATABASE_URL, REDIS_URL,
#                                   KAFKA_BROKERS and KAFKA_PID (as CREDO_TEST_* exports)
#   scripts/services.sh stop DIR    stop whatever was started under DIR and delete DIR
# DIR must be a fresh directory (mktemp -d). Needs root (PostgreSQL runs as user postgres) and
# the kafka_mock_broker binary (KAFKA_MOCK_BROKER, default build/release/tests/infra/...).
# A Kafka outage for a test: `kill -USR1 $CREDO_TEST_KAFKA_PID` takes every broker down (same
# addresses, connections refused), `kill -USR2 $CREDO_TEST_KAFKA_PID` brings them all up again.
set -euo pipefail
cmd="${1:?usage: services.sh start|stop DIR}"
dir="${2:?usage: services.sh start|stop DIR}"
pgbin=/usr/lib/postgresql/15/bin
broker="${KAFKA_MOCK_BROKER:-build/release/tests/infra/kafka_mock_broker}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Polls `$@` until it succeeds, at most ~10 s (each try is an event check, not a fixed sleep).
await() {
  for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "services: timed out waiting for: $*" >&2
  return 1
}

start() {
  mkdir -p "$dir"
  chmod 755 "$dir"
  # -- PostgreSQL
  local pg_port; pg_port="$(free_port)"
  mkdir -p "$dir/pg"
  chown postgres:postgres "$dir/pg"
  runuser -u postgres -- "$pgbin/initdb" -D "$dir/pg/data" -A trust -U postgres -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$dir/pg/initdb.log" 2>&1
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w \
    -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  echo started > "$dir/pg/started"
  runuser -u postgres -- psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAt \
    -c "CREATE ROLE credo LOGIN PASSWORD 'credo'" -c "CREATE DATABASE credo OWNER credo" >/dev/null
  # -- Redis
  local redis_port redis_pass; redis_port="$(free_port)"
  redis_pass="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  mkdir -p "$dir/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --requirepass "$redis_pass" --pidfile "$dir/redis/pid" --logfile "$dir/redis/log" \
    --dir "$dir/redis" >/dev/null
  REDISCLI_AUTH="$redis_pass" await redis-cli -p "$redis_port" ping
  # -- Kafka (mock cluster)
  "$broker" "$dir/kafka.bootstrap" 3 >"$dir/kafka.log" 2>&1 &
  echo $! > "$dir/kafka.pid"
  await test -s "$dir/kafka.bootstrap"
  local bootstrap; bootstrap="$(cat "$dir/kafka.bootstrap")"
  cat > "$dir/env" <<ENV
export CREDO_TEST_DATABASE_URL=postgres://credo:credo@127.0.0.1:$pg_port/credo
export CREDO_TEST_REDIS_URL=redis://:$redis_pass@127.0.0.1:$redis_port/0
export CREDO_TEST_KAFKA_BROKERS=$bootstrap
export CREDO_TEST_KAFKA_PID=$(cat "$dir/kafka.pid")
ENV
  echo "services: postgres 127.0.0.1:$pg_port, redis 127.0.0.1:$redis_port, kafka $bootstrap"
}

stop() {
  [[ -d "$dir" ]] || return 0
  if [[ -f "$dir/kafka.pid" ]]; then
    local pid; pid="$(cat "$dir/kafka.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [[ -f "$dir/redis/pid" ]]; then
    kill "$(cat "$dir/redis/pid")" 2>/dev/null || true
  fi
  if [[ -f "$dir/pg/started" ]]; then
    runuser -u postgres -- "$pgbin/pg_ctl" -D "$dir/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: services.sh start|stop DIR" >&2; exit 2 ;;
esac
