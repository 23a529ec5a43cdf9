#!/usr/bin/env bash
# The seed's client/start.sh: admin token, role assignment (paused, like `read -p`), mTLS token,
# API call. Needs oauth2-provider/start.sh and scripts/setup-resource-server.sh running.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo playbook client --step "$@"
