#!/usr/bin/env bash
# Builds CRIU (Checkpoint/Restore In Userspace) once into the playbook's cache. With it, and run
# as root, the native backend restores a ready Keycloak from a snapshot instead of starting it
# (docs/testing.md, "Keycloak snapshots"); without it every start is a plain start.
#
#   scripts/install-criu.sh           # prints the path of the criu binary
#
# Why a build: Debian 12's criu 3.17 cannot run on the 6.x kernels of the machines this project
# targets (`criu check`: "vdso: Unexpected rt vDSO area bounds"). CRIU 4.1.1 can, with one patch
# (criu-4.1.1-sockets.patch beside this script): since Linux 6.16 a TCP socket answers
# EOPNOTSUPP when asked for SO_PASSCRED, which 4.1.1 takes for a failed dump. The source is
# Debian 13's source package, fetched by apt from the archive this machine already uses.
set -euo pipefail

VERSION=4.1.1
here=$(cd "$(dirname "$0")" && pwd)
# Where the playbook looks for it (crates/provider/src/snapshot.rs, `INSTALLED`).
bin="${PLAYBOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oauth2-playbook}/criu/bin/criu"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "Version: $VERSION"; then
  echo "$bin"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "error: building CRIU installs its build dependencies with apt: run this as root" >&2; exit 1; }

deps=(build-essential pkg-config libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev
  libnl-3-dev libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev
  python3-protobuf xz-utils)
missing=()
for dep in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "ok installed" || missing+=("$dep")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing CRIU's build dependencies: ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

work=$(mktemp -d)
chmod 755 "$work" # apt downloads as its own user
trap 'rm -rf "$work"' EXIT
# An apt of our own (its own lists and cache) that knows Debian 13's sources, from the archive
# the system's apt already names; the system's configuration is left as it is.
archive=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1)
[ -n "$archive" ] || archive=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$archive" ] || { echo "error: apt names no Debian archive (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list): add Debian's, or build CRIU $VERSION yourself and set PLAYBOOK_CRIU" >&2; exit 1; }
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb-src $archive trixie main" >"$work/sources.list"
apt_own=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
echo "fetching CRIU $VERSION's source (Debian 13's package)" >&2
apt-get "${apt_own[@]}" update -qq >&2
# Only the upstream tarball is needed; apt checks it against the signed index. The patch below
# is for this version: another one in Debian 13 one day is a reason to look again, not to guess.
read -r uri file _ sum < <(apt-get "${apt_own[@]}" source --print-uris criu | grep "orig.tar" || true)
[ "${file:-}" = "criu_$VERSION.orig.tar.xz" ] || { echo "error: Debian 13 ($archive) offers ${file:-no criu source}, not criu_$VERSION.orig.tar.xz: update VERSION and the patch in $0, or set PLAYBOOK_CRIU to a CRIU 4 you built" >&2; exit 1; }
/usr/lib/apt/apt-helper download-file "${uri//\'/}" "$work/$file" "$sum" >&2
tar -xf "$work/$file" -C "$work"
cd "$work/criu-$VERSION"
patch -p1 <"$here/criu-4.1.1-sockets.patch" >&2
echo "building CRIU $VERSION (about half a minute on 2 cores)" >&2
make -j"$(nproc)" criu >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; exit 1; }
mkdir -p "$(dirname "$bin")"
install -m 0755 criu/criu "$bin"
echo "$bin"
