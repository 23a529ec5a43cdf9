#!/usr/bin/env bash
# Throughput of the resource server with token validation vs the same handler without it, in one
# run, over HTTPS keep-alive from a loopback load generator (oha, installed from crates.io into
# .playbook/tools on first use). Prints requests/s, p99 and the with-auth/no-auth ratio.
#
#   scripts/load-test.sh                 # 6 rounds of 5 s per endpoint, 32 connections
#   DURATION=30s CONNECTIONS=64 scripts/load-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-32}
PORT=${PORT:-8444}
ROUNDS=${ROUNDS:-6}

. scripts/oha.sh

work=$(mktemp -d)
trap 'kill "$target" 2>/dev/null || true; wait "$target" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo playbook --certs-dir "$work/certs" certs >/dev/null
cargo build --release --quiet -p playbook-resource-server --example load_target
# The server and the load generator each get a core of their own (when taskset exists), so they
# do not steal cycles from each other and the server's cost per request decides its throughput.
server_pin=(); client_pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_pin=(taskset -c 0); client_pin=(taskset -c 1)
fi
"${server_pin[@]}" target/release/examples/load_target --certs-dir "$work/certs" --port "$PORT" --token-file "$work/token" &
target=$!
for _ in $(seq 1 100); do [ -s "$work/token" ] && break; sleep 0.1; done
[ -s "$work/token" ] || { echo "the load target did not start" >&2; exit 1; }

# Every request trusts only the local CA and presents the client certificate.
run() { # $1 = path, $2.. = extra oha flags; prints "requests/s p99_ms"
  local path=$1; shift
  "${client_pin[@]}" "$OHA" --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" \
    --cacert "$work/certs/ca.pem" --cert "$work/certs/client.pem" --key "$work/certs/client-key.pem" \
    "$@" "https://localhost:$PORT$path" |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print("%.0f %.2f" % (s["summary"]["requestsPerSec"], s["latencyPercentiles"]["p99"] * 1000))'
}

printf '%-8s %-34s %12s %10s\n' round endpoint requests/s p99_ms
sum_auth=0; sum_noauth=0; ratios=""
for round in $(seq 1 "$ROUNDS"); do
  # Alternate the order so neither side always runs on a warmer machine.
  if [ $((round % 2)) -eq 1 ]; then order="noauth header auth"; else order="auth header noauth"; fi
  for which in $order; do
    if [ "$which" = auth ]; then
      read -r rps p99 < <(run /api/users -H "Authorization: Bearer $(cat "$work/token")")
      label="/api/users (token validated)"
      auth_rps=$rps
    elif [ "$which" = header ]; then
      # The same bytes on the wire as the authenticated call, the token ignored: separates the
      # cost of carrying a 1 KB header from the cost of validating it.
      read -r rps p99 < <(run /bench/users-noauth -H "Authorization: Bearer $(cat "$work/token")")
      label="/bench/users-noauth + same header"
      header_rps=$rps
    else
      read -r rps p99 < <(run /bench/users-noauth)
      label="/bench/users-noauth (no auth)"
      noauth_rps=$rps
    fi
    printf '%-8s %-34s %12s %10s\n' "$round" "$label" "$rps" "$p99"
  done
  sum_auth=$(python3 -c "print($sum_auth + $auth_rps)")
  sum_noauth=$(python3 -c "print($sum_noauth + $noauth_rps)")
  sum_header=$(python3 -c "print(${sum_header:-0} + $header_rps)")
  ratios="$ratios $(python3 -c "print($auth_rps / $noauth_rps)")"
  python3 -c "print('         round $round ratio with-auth / no-auth: %.3f, with-auth / same-header-no-auth: %.3f' % ($auth_rps / $noauth_rps, $auth_rps / $header_rps))"
done
python3 -c "print('over all %s rounds: with-auth / no-auth %.3f, with-auth / same-header-no-auth %.3f' % ($ROUNDS, $sum_auth / $sum_noauth, $sum_auth / $sum_header))"
# The median round resists the swings of a shared machine better than the sum does.
python3 -c "import statistics; print('median round ratio with-auth / no-auth: %.3f' % statistics.median([$(echo $ratios | tr ' ' ',')]))"
