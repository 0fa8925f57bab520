#!/usr/bin/env bash
# Online backup of a Credo deployment's durable state:
#   DATABASE_URL=postgres://... [REDIS_URL=redis://...] scripts/backup.sh OUTDIR
# OUTDIR must not exist yet. It receives
#   postgres.dump  pg_dump --format=custom of DATABASE_URL (one consistent snapshot)
#   redis.rdb      `redis-cli --rdb` snapshot of REDIS_URL (only when REDIS_URL is set)
#   manifest       key=value lines: times, sizes, sha256 sums, the dump's schema version.
#                  PostgreSQL's state is that of postgres.started_at (pg_dump's snapshot);
#                  Redis's that of a moment between redis.started_at and redis.finished_at.
# Everything is written to a temporary directory beside OUTDIR and renamed to OUTDIR at the end,
# so OUTDIR either is a complete backup or does not exist. Exits non-zero on any failure.
# Passwords go to pg_dump through PGPASSWORD and to redis-cli through REDISCLI_AUTH, never
# on a command line, and are never printed. The two snapshots are taken one after the other, not
# at one instant (docs/operations/disaster-recovery.md). The signing keys in the dump are
# encrypted with CREDO_KEY_ENCRYPTION_KEY, which is NOT in the backup: keep it elsewhere.
#   PG_BIN=DIR   where pg_dump/pg_restore live (default: PATH, else /usr/lib/postgresql/15/bin);
#                pg_dump must be at least the server's major version.
set -euo pipefail
umask 077  # a backup holds password hashes, client secret hashes, sessions and sealed keys

die() { echo "backup: $*" >&2; exit 1; }
[[ $# -eq 1 && -n "$1" ]] || { echo "usage: DATABASE_URL=... [REDIS_URL=...] $0 OUTDIR" >&2; exit 2; }
out="${1%/}"
[[ -n "${DATABASE_URL:-}" ]] || die "DATABASE_URL is not set"
[[ ! -e "$out" ]] || die "$out already exists: choose a new directory"
parent="$(dirname "$out")"
[[ -d "$parent" ]] || die "$parent does not exist"

# shellcheck source=scripts/backup_lib.sh
source "$(dirname "$0")/backup_lib.sh"
pg_dump="$(pg_tool pg_dump)"
pg_restore="$(pg_tool pg_restore)"
[[ -x "$pg_dump" && -x "$pg_restore" ]] || die "pg_dump/pg_restore not found (set PG_BIN)"

now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

parse_database_url "$DATABASE_URL"
redis_where=""
if [[ -n "${REDIS_URL:-}" ]]; then parse_redis_url "$REDIS_URL"; fi
export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"

tmp="$(mktemp -d "$parent/.$(basename "$out").partial.XXXXXX")"
done_ok=0
cleanup() { [[ "$done_ok" == 1 ]] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

started="$(now)"
echo "backup: postgres $pg_where → postgres.dump" >&2
"$pg_dump" --format=custom --file="$tmp/postgres.dump" "$pg_url" \
  || die "pg_dump of $pg_where failed"
pg_finished="$(now)"
# The schema version of the dump itself (not of the live database a moment later).
schema_versions="$("$pg_restore" --data-only --table=schema_migrations --file=- "$tmp/postgres.dump" \
  | awk '/^COPY .*schema_migrations /{copy=1; next} copy && /^\\\.$/{copy=0} copy{print $1}' \
  | sort -n | paste -sd, -)" || die "cannot read schema_migrations from the dump"
[[ -n "$schema_versions" ]] \
  || die "the dump has no schema_migrations rows: is $pg_where a Credo database that a node has started on?"
schema_version="${schema_versions##*,}"

if [[ -n "$redis_where" ]]; then
  echo "backup: redis $redis_where → redis.rdb (Redis waits repl-diskless-sync-delay, 5 s by default)" >&2
  redis_started="$(now)"
  redis-cli "${redis_args[@]}" --rdb "$tmp/redis.rdb" >"$tmp/redis-cli.log" 2>&1 || {
    sed 's/^/backup:   /' "$tmp/redis-cli.log" >&2
    die "redis-cli --rdb from $redis_where failed (managed Redis services may refuse SYNC: use their own snapshots)"
  }
  rm -f "$tmp/redis-cli.log"
  [[ "$(head -c 5 "$tmp/redis.rdb")" == REDIS ]] || die "redis.rdb is not an RDB file"
  redis_finished="$(now)"
fi

{
  echo "format=credo-backup-1"
  echo "created_at=$started"
  echo "host=$(hostname)"
  echo "schema_version=$schema_version"
  echo "schema_migrations=$schema_versions"
  echo "key_encryption_key=not included"
  echo "postgres.source=$pg_where"
  echo "postgres.pg_dump=$("$pg_dump" --version)"
  echo "postgres.started_at=$started"
  echo "postgres.finished_at=$pg_finished"
  echo "postgres.file=postgres.dump"
  echo "postgres.bytes=$(size "$tmp/postgres.dump")"
  echo "postgres.sha256=$(sha256 "$tmp/postgres.dump")"
  if [[ -n "$redis_where" ]]; then
    echo "redis.source=$redis_where (db $redis_db; the RDB holds every db)"
    echo "redis.started_at=$redis_started"
    echo "redis.finished_at=$redis_finished"
    echo "redis.file=redis.rdb"
    echo "redis.bytes=$(size "$tmp/redis.rdb")"
    echo "redis.sha256=$(sha256 "$tmp/redis.rdb")"
  fi
} >"$tmp/manifest"

sync "$tmp"/* 2>/dev/null || sync
chmod 700 "$tmp"
mv -T "$tmp" "$out"
done_ok=1
sync "$parent" 2>/dev/null || true
echo "backup: complete, schema version $schema_version" >&2
sed 's/^/backup:   /' "$out/manifest" >&2
echo "$out"
