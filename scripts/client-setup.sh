#!/usr/bin/env bash
# The seed's client/setup.sh: the client certificate (CN=mtls-client-dev.local) and the trust
# material Keycloak reads — here a whole local CA, in pure Rust (no openssl, no keytool).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo playbook certs "$@"
