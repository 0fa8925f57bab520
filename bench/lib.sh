# Shared by the bench scripts (sourced; they set $work, where logs and pid files go).

# start NAME ARGS... -> prints "http-host:port cluster-host:port" (the pid goes to NAME.pid:
# start runs in a subshell; cleanup finds the process by its pid file)
start() {
  local n="$1"
  shift
  build/release/app/credod --http 127.0.0.1:0 --issuer http://credo.bench "$@" > "$work/$n.log" 2>&1 &
  echo $! > "$work/$n.pid"
  for _ in $(seq 200); do
    grep -q '"listening"' "$work/$n.log" 2>/dev/null && break
    sleep 0.05
  done
  python3 - "$work/$n.log" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("msg") == "listening":
        print(r["url"].removeprefix("http://"), r.get("cluster") or "-")
        sys.exit()
sys.exit("credod did not start:\n" + open(sys.argv[1]).read())
EOF
}
