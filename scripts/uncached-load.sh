#!/usr/bin/env bash
# What a token the resource server has not seen costs, next to one it has and to no
# authentication, in one run with tokens a real Keycloak issued: server CPU µs per request (its
# own utime+stime), requests/s and p99 per path, the raw RS256 verify it is held against, and the
# server's memory. Starts its own Keycloak (as `cargo test` does: PLAYBOOK_KEYCLOAK_* apply).
#
#   scripts/uncached-load.sh                    # 3 rounds of 10 s per path, 32 connections
#   scripts/uncached-load.sh --rounds 5 --seconds 5 --paths noauth,same,distinct
#   scripts/uncached-load.sh --perf /tmp/profiles  # and a profiled round first: DIR/<path>.perf
#   scripts/uncached-load.sh --capacity 10000      # the target's --verified-cache-capacity
# To measure an older server with today's load, build its load_target (e.g. in a git worktree)
# and run target/release/examples/token_load --target THAT_BINARY.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p playbook-resource-server --example load_target
cargo build --release --quiet -p playbook-cli --example token_load
exec target/release/examples/token_load --target target/release/examples/load_target "$@"
