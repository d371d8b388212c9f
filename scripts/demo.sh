#!/usr/bin/env bash
# The README's main job: start the embedded default (`shoal up`: control plane + one local agent,
# SQLite), apply examples/, run the smoke workflow on the agent and follow it, show the result and
# where the dashboard is, then stop. State goes to $SHOAL_HOME (default: ./.shoal-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
export SHOAL_HOME="${SHOAL_HOME:-$PWD/.shoal-demo}"
mkdir -p "$SHOAL_HOME"
shoal=.venv/bin/shoal
port="${SHOAL_DEMO_PORT:-0}"

log="$SHOAL_HOME/up.log"
: > "$log"
"$shoal" up --port "$port" > "$log" 2>&1 &
up_pid=$!
trap 'kill "$up_pid" 2>/dev/null; wait "$up_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
  grep -q "server:" "$log" && break
  kill -0 "$up_pid" 2>/dev/null || { cat "$log"; echo "demo: shoal up exited" >&2; exit 1; }
  sleep 0.1
done
cat "$log"
url=$(sed -n 's/^ *server: *//p' "$log" | head -1)
token=$(cat "$SHOAL_HOME/admin-token")
export SHOAL_SERVER="$url" SHOAL_TOKEN="$token"

echo "== shoal apply -f examples/"
"$shoal" apply -f examples/
echo "== shoal get agents"
"$shoal" get agents
echo "== shoal run tw smoke -f"
status=0
"$shoal" run tw smoke -f || status=$?
echo "== shoal get twe -w smoke"
"$shoal" get twe -w smoke
if grep -q "dashboard:" "$log"; then
  echo "The dashboard: $(sed -n 's/^ *dashboard: *//p' "$log" | head -1)"
else
  echo "The dashboard will be at $url/ (sign in with the token above)."
fi
exit "$status"
