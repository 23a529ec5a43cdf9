#!/usr/bin/env bash
# The seed's oauth2-provider/start.sh: Keycloak with the oauth2-playbook realm on https://localhost:9443.
# `playbook provider` picks a container when Docker answers and the native distribution otherwise;
# pass --keycloak-backend container|native to choose. Stops on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo playbook provider "$@"
