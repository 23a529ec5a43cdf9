#!/usr/bin/env bash
# Builds the optimized Keycloak image the container backend runs (oauth2-provider/Dockerfile),
# with no container registry if need be.
#
# With a registry, the image is built FROM the official Keycloak image. Without one (offline,
# or a machine that reaches only package registries), it is built FROM a local stand-in for it:
# Debian made with debootstrap and `docker import`, a JRE from apt, and the Keycloak
# distribution tarball that the native backend already fetches with Maven. Images that exist
# are reused. `playbook provider --keycloak-backend container` runs this script itself when
# its image is missing.
#
# Usage: scripts/build-keycloak-image.sh DISTRIBUTION.tar.gz
#   env KEYCLOAK_VERSION (required), KEYCLOAK_IMAGE (the tag to build), KEYCLOAK_BASE=official|offline
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
: "${KEYCLOAK_VERSION:?set KEYCLOAK_VERSION, e.g. 26.7.3}"
image=${KEYCLOAK_IMAGE:-oauth2-playbook/keycloak:$KEYCLOAK_VERSION}
official=quay.io/keycloak/keycloak:$KEYCLOAK_VERSION
offline=oauth2-playbook/keycloak-base:$KEYCLOAK_VERSION
debian=oauth2-playbook/debian:bookworm

say() { printf '[image] %s\n' "$*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Debian's own mirror, as apt on this machine is configured: debootstrap needs a URL.
debian_mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | sed -n 1p)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | sed -n 1p)
  [ -n "$uri" ] || { say "no Debian mirror in /etc/apt: cannot debootstrap"; exit 1; }
  printf '%s\n' "$uri"
}

build_debian() {
  command -v debootstrap >/dev/null || { say "debootstrap is missing: apt-get install debootstrap"; exit 1; }
  [ "$(id -u)" = 0 ] || { say "debootstrap needs root: run this script as root once"; exit 1; }
  local rootfs
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' RETURN
  say "debootstrap bookworm (once, ~1-2 min)"
  debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; exit 1; }
  rm -f "$rootfs.log"
  tar -C "$rootfs" -c . | docker import - "$debian" >/dev/null
}

build_offline_base() {
  local tarball=$1 context
  [ -f "$tarball" ] || { say "no Keycloak distribution at '$tarball'"; exit 1; }
  have_image "$debian" || build_debian
  context=$(mktemp -d)
  trap 'rm -rf "$context"' RETURN
  ln "$tarball" "$context/keycloak.tar.gz" 2>/dev/null || cp "$tarball" "$context/keycloak.tar.gz"
  say "building $offline: Debian + JRE + Keycloak $KEYCLOAK_VERSION (once)"
  docker build -q -t "$offline" --build-arg "DEBIAN=$debian" \
    -f "$here/oauth2-provider/offline-base.Dockerfile" "$context" >/dev/null
  docker image prune --force --filter label=oauth2-playbook.stage=unpack >/dev/null
}

if have_image "$image"; then
  say "$image exists"
  exit 0
fi
base=${KEYCLOAK_BASE:-}
if [ -z "$base" ]; then
  if have_image "$official" || docker pull -q "$official" >/dev/null 2>&1; then base=official; else base=offline; fi
fi
case $base in
  official) from=$official ;;
  offline) have_image "$offline" || build_offline_base "${1:?usage: $0 DISTRIBUTION.tar.gz}"; from=$offline ;;
  *) say "KEYCLOAK_BASE is official or offline, not '$base'"; exit 2 ;;
esac
say "building $image FROM $from (kc.sh build)"
docker build -q -t "$image" --build-arg "KEYCLOAK_BASE=$from" "$here/oauth2-provider" >/dev/null
say "built $image"
