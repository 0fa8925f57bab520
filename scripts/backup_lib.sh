# Shared by scripts/backup.sh and scripts/restore.sh (sourced; each defines die() first).

# PG_BIN, else PATH, else Debian's PostgreSQL 15 directory.
pg_tool() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN/$1"
  elif command -v "$1" >/dev/null; then command -v "$1"
  else echo "/usr/lib/postgresql/15/bin/$1"; fi
}

percent_decode() { local s="${1//\\/\\\\}"; printf '%b' "${s//%/\\x}"; }

# DATABASE_URL (postgres[ql]://[user[:password]@]host[:port][/db][?params]) → pg_url without the
# password, PGPASSWORD with it, pg_where (host:port/db) for messages.
parse_database_url() {
  local url="$1" scheme rest authority tail userinfo="" hostport
  case "$url" in
    postgres://* | postgresql://*) ;;
    *) die "DATABASE_URL must be postgres://user:password@host:port/dbname" ;;
  esac
  scheme="${url%%://*}"
  rest="${url#*://}"
  authority="${rest%%/*}"
  tail="${rest:${#authority}}"
  hostport="$authority"
  if [[ "$authority" == *@* ]]; then
    userinfo="${authority%@*}"
    hostport="${authority##*@}"
  fi
  if [[ "$userinfo" == *:* ]]; then
    PGPASSWORD="$(percent_decode "${userinfo#*:}")"
    export PGPASSWORD
    userinfo="${userinfo%%:*}"
  fi
  pg_url="$scheme://${userinfo:+$userinfo@}$hostport$tail"
  pg_where="$hostport${tail%%\?*}"
}

# REDIS_URL (redis://[[user]:password@]host:port[/db], as credod accepts it) → redis_args for
# redis-cli, REDISCLI_AUTH with the password, redis_where for messages.
parse_redis_url() {
  local url="$1" rest userinfo="" hostport host port
  [[ "$url" == redis://* ]] || die "REDIS_URL must be redis://[[user]:password@]host:port[/db]"
  rest="${url#redis://}"
  rest="${rest%/}"
  hostport="${rest%%/*}"
  redis_db=0
  if [[ "$rest" == */* ]]; then redis_db="${rest#*/}"; fi
  if [[ "$hostport" == *@* ]]; then
    userinfo="${hostport%@*}"
    hostport="${hostport##*@}"
  fi
  port="${hostport##*:}"
  host="${hostport%:*}"
  host="${host#[}"
  host="${host%]}"
  [[ -n "$host" && "$port" =~ ^[0-9]+$ ]] || die "REDIS_URL must be redis://[[user]:password@]host:port[/db]"
  redis_args=(-h "$host" -p "$port")
  if [[ "$userinfo" == *:* ]]; then
    if [[ -n "${userinfo%%:*}" ]]; then redis_args+=(--user "${userinfo%%:*}"); fi
    REDISCLI_AUTH="${userinfo#*:}"
    export REDISCLI_AUTH
  fi
  redis_where="$hostport"
}
