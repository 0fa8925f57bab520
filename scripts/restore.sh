#!/usr/bin/env bash
# Restores a backup made by scripts/backup.sh:
#   DATABASE_URL=postgres://... [REDIS_URL=redis://...] scripts/restore.sh [options] BACKUPDIR
#     --yes              confirm (or CREDO_RESTORE_CONFIRM=yes): the restore OVERWRITES the
#                        Credo tables of DATABASE_URL; without it nothing is changed
#     --verify-only      check the manifest and checksums, change nothing
#     --redis-dir DIR    also put redis.rdb in place as DIR/dump.rdb, for a Redis that is STOPPED
#                        (start it afterwards; it loads dump.rdb). With REDIS_URL set, a Redis
#                        that still answers there is refused.
#     --redis-rdb-name N the dbfilename of that Redis (default dump.rdb)
#     --redis-only       only the Redis part (needs --redis-dir; DATABASE_URL is not touched)
#     --ignore-connections  restore although other clients are connected to the database
# Steps, in this order, stopping at the first failure: verify every checksum in the manifest;
# require confirmation; check that no other client is connected (stop every credod node first)
# and that the database's schema is not newer than the backup's; check the Redis directory;
# pg_restore --clean --if-exists --no-owner --single-transaction (all or nothing); put the RDB in
# place, keeping the old file as dump.rdb.before-restore-TIMESTAMP. Runbooks:
# docs/runbooks/database-down-and-restore.md, docs/runbooks/redis-down.md. Passwords are never
# printed or put on a command line.
#   PG_BIN=DIR   where pg_restore/psql live (default: PATH, else /usr/lib/postgresql/15/bin)
set -euo pipefail

die() { echo "restore: $*" >&2; exit 1; }
usage() {
  echo "usage: DATABASE_URL=... $0 [--yes] [--verify-only] [--redis-dir DIR [--redis-rdb-name N] [--redis-only]] [--ignore-connections] BACKUPDIR" >&2
  exit 2
}

confirm="${CREDO_RESTORE_CONFIRM:-}"
verify_only=0
redis_only=0
ignore_connections=0
redis_dir=""
rdb_name="dump.rdb"
backup=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --yes) confirm=yes ;;
    --verify-only) verify_only=1 ;;
    --redis-only) redis_only=1 ;;
    --ignore-connections) ignore_connections=1 ;;
    --redis-dir) [[ $# -ge 2 ]] || usage; redis_dir="$2"; shift ;;
    --redis-rdb-name) [[ $# -ge 2 ]] || usage; rdb_name="$2"; shift ;;
    -h | --help) usage ;;
    -*) echo "restore: unknown option $1" >&2; usage ;;
    *) [[ -z "$backup" ]] || usage; backup="${1%/}" ;;
  esac
  shift
done
[[ -n "$backup" ]] || usage
if [[ "$redis_only" == 1 && -z "$redis_dir" ]]; then die "--redis-only needs --redis-dir DIR"; fi
[[ -f "$backup/manifest" ]] || die "$backup/manifest not found: not a backup made by scripts/backup.sh"

# -- 1. the manifest and every checksum
manifest() { sed -n "s/^$1=//p" "$backup/manifest" | head -n 1; }
[[ "$(manifest format)" == credo-backup-1 ]] || die "$backup/manifest: unknown format"
verify_part() {
  local part="$1" file bytes sum
  file="$(manifest "$part.file")"
  bytes="$(manifest "$part.bytes")"
  sum="$(manifest "$part.sha256")"
  [[ -n "$file" && -n "$bytes" && -n "$sum" && "$file" != */* ]] \
    || die "$backup/manifest: incomplete entry for $part"
  [[ -f "$backup/$file" ]] || die "$backup/$file is missing"
  [[ "$(stat -c %s "$backup/$file")" == "$bytes" ]] \
    || die "$backup/$file: size differs from the manifest: the backup is damaged, refusing it"
  [[ "$(sha256sum "$backup/$file" | cut -d' ' -f1)" == "$sum" ]] \
    || die "$backup/$file: sha256 checksum differs from the manifest: the backup is damaged, refusing it"
}
verify_part postgres
has_redis=0
if [[ -n "$(manifest redis.file)" ]]; then verify_part redis; has_redis=1; fi
backup_schema="$(manifest schema_version)"
[[ "$backup_schema" =~ ^[0-9]+$ ]] || die "$backup/manifest: no schema_version"
echo "restore: $backup verified (taken $(manifest created_at), schema version $backup_schema$([[ $has_redis == 1 ]] && echo ", with redis.rdb"))" >&2
if [[ "$verify_only" == 1 ]]; then exit 0; fi

# -- 2. confirmation
targets=()
if [[ "$redis_only" != 1 ]]; then
  [[ -n "${DATABASE_URL:-}" ]] || die "DATABASE_URL is not set"
  targets+=("the Credo tables of the database in DATABASE_URL")
fi
if [[ -n "$redis_dir" ]]; then targets+=("$redis_dir/$rdb_name"); fi
if [[ "$confirm" != yes ]]; then
  first="Stop every credod node"
  if [[ "$redis_only" == 1 ]]; then first="Stop that Redis"; fi
  die "refusing: this overwrites $(printf '%s and ' "${targets[@]}" | sed 's/ and $//'). $first, then run again with --yes (or CREDO_RESTORE_CONFIRM=yes)"
fi
if [[ -n "$redis_dir" && "$has_redis" != 1 ]]; then die "--redis-dir given, but the backup has no redis.rdb"; fi

# shellcheck source=scripts/backup_lib.sh
source "$(dirname "$0")/backup_lib.sh"
sql() { "$psql" "$pg_url" -X -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# -- 3. preconditions, checked before anything is changed
if [[ "$redis_only" != 1 ]]; then
  pg_restore="$(pg_tool pg_restore)"
  psql="$(pg_tool psql)"
  [[ -x "$pg_restore" && -x "$psql" ]] || die "pg_restore/psql not found (set PG_BIN)"
  parse_database_url "$DATABASE_URL"
  export PGCONNECT_TIMEOUT="${PGCONNECT_TIMEOUT:-10}"
  sql "SELECT 1" >/dev/null || die "cannot connect to $pg_where"
  others="$(sql "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND pid <> pg_backend_pid() AND backend_type = 'client backend'")"
  if [[ "$others" != 0 && "$ignore_connections" != 1 ]]; then
    die "$others other client connection(s) to $pg_where: stop every credod node first (nodes keep keys, clients and sessions in memory), or pass --ignore-connections"
  fi
  live_schema=0
  if [[ "$(sql "SELECT to_regclass('schema_migrations') IS NOT NULL")" == t ]]; then
    live_schema="$(sql "SELECT coalesce(max(version), 0) FROM schema_migrations")"
  fi
  if (( live_schema > backup_schema )); then
    die "$pg_where has schema version $live_schema, newer than the backup's $backup_schema: pg_restore --clean drops only what the backup holds, so restore into an empty database (DROP DATABASE / CREATE DATABASE) instead"
  fi
fi

if [[ -n "$redis_dir" ]]; then
  [[ -d "$redis_dir" ]] || die "--redis-dir $redis_dir is not a directory"
  if [[ -e "$redis_dir/appendonlydir" || -e "$redis_dir/appendonly.aof" ]]; then
    die "$redis_dir holds an append-only file, which Redis loads instead of $rdb_name: move it away and start Redis with --appendonly no once (see the runbook)"
  fi
  if [[ -n "${REDIS_URL:-}" ]]; then
    parse_redis_url "$REDIS_URL"
    if [[ "$(timeout 5 redis-cli "${redis_args[@]}" ping 2>/dev/null)" =~ PONG|NOAUTH|WRONGPASS ]]; then
      die "Redis at $redis_where still answers: stop it before replacing its $rdb_name (a running Redis does not read the file, and may overwrite it when it stops)"
    fi
  else
    echo "restore: REDIS_URL is not set: cannot check that the Redis using $redis_dir is stopped" >&2
  fi
fi

# -- 4. PostgreSQL: all or nothing
if [[ "$redis_only" != 1 ]]; then
  echo "restore: restoring postgres.dump into $pg_where (one transaction)" >&2
  "$pg_restore" --clean --if-exists --no-owner --single-transaction --exit-on-error \
    --dbname="$pg_url" "$backup/$(manifest postgres.file)" \
    || die "pg_restore into $pg_where failed; the transaction was rolled back, the database is unchanged"
  # pg_restore leaves the planner statistics empty; autovacuum would fill them in later.
  sql "ANALYZE" || echo "restore: ANALYZE failed; autovacuum will gather the statistics" >&2
fi

# -- 5. Redis
if [[ -n "$redis_dir" ]]; then
  target="$redis_dir/$rdb_name"
  tmp="$(mktemp "$redis_dir/.$rdb_name.restore.XXXXXX")"
  cp "$backup/$(manifest redis.file)" "$tmp"
  chown --reference="$redis_dir" "$tmp" 2>/dev/null || true
  chmod 600 "$tmp"
  sync "$tmp" 2>/dev/null || true
  if [[ -e "$target" ]]; then
    mv "$target" "$target.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
  fi
  mv "$tmp" "$target"
  echo "restore: $target in place: start Redis now (with its usual dir and dbfilename)" >&2
fi

if [[ "$redis_only" != 1 ]]; then
  echo "restore: done. Start the nodes with the same CREDO_KEY_ENCRYPTION_KEY; they apply any newer migrations at start." >&2
fi
