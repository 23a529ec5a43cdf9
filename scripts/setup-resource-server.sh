#!/usr/bin/env bash
# The seed's setup-resource-server.sh: the protected API on https://localhost:8443.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo playbook resource-server "$@"
