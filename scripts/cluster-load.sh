#!/usr/bin/env bash
# What the cluster topology costs and buys, in one run on this machine: token issuance through
# the load balancer with two Keycloak nodes and with one (the other taken out of rotation on
# HAProxy's statistics socket), API calls with two resource-server replicas and with one, the
# CPU each request costs the tier that served it (utime+stime of its processes ÷ requests, so
# a 2-core machine's saturation does not hide it), and the memory of every part.
#
#   scripts/cluster-load.sh                       # 3 rounds of 5 s per measure, 16 connections
#   DURATION=10s CONNECTIONS=32 ROUNDS=5 WARMUP=30s scripts/cluster-load.sh
#
# Needs what `--topology cluster` needs (HAProxy, PostgreSQL, Java) and oha (installed from
# crates.io into .playbook/tools on first use).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-16}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-20s}

. scripts/oha.sh

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --quiet -p playbook-cli
playbook=target/release/playbook
certs=$work/certs
$playbook --certs-dir "$certs" certs >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
keycloak_port=$(free_port)
api_port=$(free_port)

# Waits until $1 (a log file) says $2; fails after 300 s.
wait_for() {
  for _ in $(seq 1 3000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "not ready: $1" >&2; tail -20 "$1" >&2; exit 1
}

$playbook --certs-dir "$certs" provider --topology cluster --keycloak-backend native \
  --keycloak-port "$keycloak_port" >"$work/provider.log" 2>&1 &
pids+=($!)
wait_for "$work/provider.log" "Press Ctrl-C to stop."
issuer=https://localhost:$keycloak_port/realms/oauth2-playbook
$playbook --certs-dir "$certs" resource-server --topology cluster --issuer "$issuer" \
  --listen "127.0.0.1:$api_port" >"$work/api.log" 2>&1 &
pids+=($!)
api_pid=$!
wait_for "$work/api.log" "Press Ctrl-C to stop."

# The balancers' statistics sockets, beside the configurations the commands printed.
socket_of() { dirname "$(grep -o 'configuration: [^)]*' "$1" | head -1 | cut -d' ' -f2)"; }
keycloak_socket=$(socket_of "$work/provider.log")/stats.sock
api_socket=$(socket_of "$work/api.log")/stats.sock
haproxy_cmd() { python3 - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n")
while s.recv(65536): pass
EOF
}

# The role, and a token for the API load, through the balancers.
token=$($playbook --certs-dir "$certs" client --json --show-token \
  --keycloak-url "https://localhost:$keycloak_port/" --api-url "https://localhost:$api_port/" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["outcome"]["access_token"])')

# The cluster nodes' JVMs (not the shell wrappers around them, whose command lines name the
# database too).
keycloak_pids() { pgrep -f 'QuarkusEntryPoint.*jdbc:postgresql' | tr '\n' ' '; }
cpu_ticks() { # the summed utime+stime of the pids given
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

# $1 = label, $2 = the pids whose CPU counts, then oha's arguments. Prints one row.
measure() {
  local label=$1 who=$2; shift 2
  local before after
  before=$(cpu_ticks $who)
  read -r rps requests p99 < <("$OHA" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" \
    --cacert "$certs/ca.pem" --cert "$certs/client.pem" --key "$certs/client-key.pem" "$@" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); r=s["statusCodeDistribution"]; ok=int(r.get("200",0)); print("%.0f %d %.1f" % (s["summary"]["requestsPerSec"], ok, s["latencyPercentiles"]["p99"]*1000))')
  after=$(cpu_ticks $who)
  local cpu_us=$(( (after - before) * 1000000 / hz / (requests > 0 ? requests : 1) ))
  printf '%-44s %10s %10s %12s %9s\n' "$label" "$rps" "$requests" "$cpu_us" "$p99"
}

token_load=(-m POST -H 'Content-Type: application/x-www-form-urlencoded'
  -d 'grant_type=client_credentials&client_id=oauth2-playbook-client-credentials-mtls&scope=users:read'
  "https://localhost:$keycloak_port/realms/oauth2-playbook/protocol/openid-connect/token")
api_load=(-H "Authorization: Bearer $token" "https://localhost:$api_port/api/users")

two_nodes() { measure "tokens, 2 Keycloak nodes" "$(keycloak_pids)" "${token_load[@]}"; }
one_node() {
  haproxy_cmd "$keycloak_socket" "disable server keycloak/keycloak2"
  measure "tokens, 1 Keycloak node (node 2 out)" "$(keycloak_pids)" "${token_load[@]}"
  haproxy_cmd "$keycloak_socket" "enable server keycloak/keycloak2"
}
two_replicas() { measure "API calls, 2 replicas" "$api_pid" "${api_load[@]}"; }
one_replica() {
  haproxy_cmd "$api_socket" "disable server api/api2"
  measure "API calls, 1 replica (replica 2 out)" "$api_pid" "${api_load[@]}"
  haproxy_cmd "$api_socket" "enable server api/api2"
}

printf '%-44s %10s %10s %12s %9s\n' measure requests/s ok cpu_us/req p99_ms
# Both JVMs compile the token path as they serve it: warm both up first, or the first measure
# pays for the JIT, and each node only for the requests it got.
echo "warm-up (not counted)"
DURATION=$WARMUP two_nodes >/dev/null
DURATION=$WARMUP two_replicas >/dev/null
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  # Alternate the order so neither side always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then
    two_nodes; one_node; two_replicas; one_replica
  else
    one_node; two_nodes; one_replica; two_replicas
  fi
done

echo
echo "memory (proportional set size: shared pages split between the processes sharing them, MiB)"
pss() { # the summed PSS of the pids given, in MiB
  local kib=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/smaps_rollup" ] || continue
    kib=$((kib + $(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup")))
  done
  echo $((kib / 1024))
}
for pid in $(keycloak_pids); do echo "  Keycloak node (pid $pid): $(pss "$pid")"; done
postmaster=$(pgrep -f '^/usr/lib/postgresql/[0-9]+/bin/postgres -D .*oauth2-playbook-postgres-' | head -1)
echo "  PostgreSQL (postmaster and its $(pgrep -P "$postmaster" | wc -l) processes): $(pss "$postmaster" $(pgrep -P "$postmaster"))"
for pid in $(pgrep -x haproxy || true); do echo "  HAProxy (pid $pid): $(pss "$pid")"; done
echo "  resource server, both replicas in one process (pid $api_pid): $(pss "$api_pid")"
