#!/usr/bin/env bash
# What introspection mode costs: throughput of the resource server in JWKS-only mode next to
# introspection mode (answers cached for the default 10 s) and introspection on every request
# (TTL 0), all against a real Keycloak, in one run, alternating the order each round.
#
#   scripts/introspection-load.sh                 # 4 rounds of 5 s per mode, 32 connections
#   DURATION=10s ROUNDS=6 scripts/introspection-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
ROUNDS=${ROUNDS:-4}
KC_PORT=${KC_PORT:-9643}

. scripts/oha.sh

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cargo build --release --quiet -p playbook-cli
# An array, not a function: `$!` of a backgrounded function is a subshell, which a kill would
# end while leaving the server it started running.
playbook=(target/release/playbook --certs-dir "$work/certs")
"${playbook[@]}" certs >/dev/null

"${playbook[@]}" provider --keycloak-backend native --keycloak-port "$KC_PORT" >"$work/provider.log" 2>&1 &
pids+=($!)
issuer="https://localhost:$KC_PORT/realms/oauth2-playbook"
for _ in $(seq 1 120); do
  curl -sf --cacert "$work/certs/ca.pem" "$issuer/.well-known/openid-configuration" >/dev/null && break
  sleep 1
done

# Three resource servers on the same realm: the modes compared.
start_server() { # $1 = port, $2.. = flags
  local port=$1; shift
  "${playbook[@]}" resource-server --issuer "$issuer" --listen "127.0.0.1:$port" "$@" >"$work/rs-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do curl -sf --cacert "$work/certs/ca.pem" "https://localhost:$port/readyz" >/dev/null && return; sleep 0.2; done
  echo "the resource server on $port did not start" >&2; cat "$work/rs-$port.log" >&2; exit 1
}
start_server 8461
start_server 8462 --introspection
start_server 8463 --introspection --introspection-ttl-secs 0

# The client's steps give the service account its role and print the token it used, which
# every request then carries (the client's own names and scope, not repeated here).
token=$("${playbook[@]}" client --keycloak-port "$KC_PORT" --api-url https://localhost:8461/ --json --show-token \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["outcome"]["access_token"])')

run() { # $1 = port; prints "requests/s p99_ms"
  "$OHA" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" \
    --cacert "$work/certs/ca.pem" --cert "$work/certs/client.pem" --key "$work/certs/client-key.pem" \
    -H "Authorization: Bearer $token" "https://localhost:$1/api/users" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print("%.0f %.2f %s" % (s["summary"]["requestsPerSec"], s["latencyPercentiles"]["p99"] * 1000, s.get("statusCodeDistribution", {})))'
}

declare -A label=([8461]="JWKS only" [8462]="introspection, TTL 10 s" [8463]="introspection, every request")
declare -A sum=([8461]=0 [8462]=0 [8463]=0)
printf '%-6s %-30s %12s %10s  %s\n' round mode requests/s p99_ms statuses
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="8461 8462 8463"; else order="8463 8462 8461"; fi
  for port in $order; do
    read -r rps p99 statuses < <(run "$port")
    printf '%-6s %-30s %12s %10s  %s\n' "$round" "${label[$port]}" "$rps" "$p99" "$statuses"
    sum[$port]=$(python3 -c "print(${sum[$port]} + $rps)")
  done
done
python3 -c "
j, c, e = ${sum[8461]}, ${sum[8462]}, ${sum[8463]}
print('over all $ROUNDS rounds: introspection TTL 10 s / JWKS only %.3f, introspection every request / JWKS only %.3f' % (c / j, e / j))"
