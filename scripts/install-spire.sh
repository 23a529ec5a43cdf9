#!/usr/bin/env bash
# Builds SPIRE's server and agent (the SPIFFE issuer the workload-identity lesson runs against)
# with Go's own tooling, once, into the playbook's cache; later runs find them there.
#
#   scripts/install-spire.sh           # prints the directory holding spire-server and spire-agent
#
# SPIRE is an optional extra: without it the SPIFFE tests print one `skipped:` line. Building it
# takes several minutes of CPU the first time (about 9 minutes for the server on 2 cores).
set -euo pipefail

VERSION=v1.13.3
cache="${PLAYBOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oauth2-playbook}/spire/$VERSION"
bin="$cache/bin"
if [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "error: SPIRE is built with Go: install Go 1.26 (e.g. apt-get install golang-go), then run this again" >&2; exit 1; }
module="$cache/module"
mkdir -p "$module" "$bin"
cd "$module"
[ -f go.mod ] || go mod init oauth2-playbook/spire >/dev/null 2>&1
echo "building SPIRE $VERSION (server and agent) with $(go version | cut -d' ' -f3); the first time takes several minutes" >&2
go get -tool "github.com/spiffe/spire/cmd/spire-server@$VERSION" "github.com/spiffe/spire/cmd/spire-agent@$VERSION" >&2
GOBIN="$bin" go install github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent >&2
echo "$bin"
