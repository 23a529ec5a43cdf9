#!/usr/bin/env bash
# The seed's oauth2-provider/start.sh: Keycloak with the oauth2-playbook realm on
# https://localhost:9443, stopped by Ctrl-C.
#
# Like the seed, it runs docker-compose.yaml when a Docker engine and Compose (the `docker
# compose` plugin, or Debian's `docker-compose` package) are there, building the image first if
# it is missing. Otherwise, or when given arguments (e.g. --keycloak-backend native), it runs
# `cargo playbook provider`, which starts Keycloak natively or as a container by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

compose=()
if [ $# -eq 0 ] && docker info >/dev/null 2>&1; then
  if docker compose version >/dev/null 2>&1; then compose=(docker compose)
  elif command -v docker-compose >/dev/null; then compose=(docker-compose)
  fi
fi
if [ ${#compose[@]} -eq 0 ]; then
  exec cargo playbook provider "$@"
fi

cargo playbook certs
cargo playbook provider --keycloak-backend container --prepare
# `playbook client` reads the admin password from here, as after `playbook provider`.
password_file=certs/keycloak-admin-password
if [ ! -s "$password_file" ]; then
  # od reads exactly what it needs: no pipe closed early under pipefail.
  (umask 077 && od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"$password_file")
fi
export KEYCLOAK_ADMIN_PASSWORD PLAYBOOK_UID
KEYCLOAK_ADMIN_PASSWORD=$(cat "$password_file")
PLAYBOOK_UID=$(id -u)
file=(-f oauth2-provider/docker-compose.yaml)
trap '"${compose[@]}" "${file[@]}" down --volumes >/dev/null 2>&1' EXIT
echo "Keycloak via ${compose[*]}: https://localhost:9443 (admin password in $password_file); Ctrl-C stops it"
"${compose[@]}" "${file[@]}" up --no-build --abort-on-container-exit
