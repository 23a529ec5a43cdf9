#!/usr/bin/env bash
# The feedback loop's speed, measured side by side with an older commit in one run: this machine
# varies too much from one hour to the next for figures taken on different days to compare.
#
#   scripts/bench-feedback.sh BASE_COMMIT            # 3 rounds
#   ROUNDS=5 scripts/bench-feedback.sh 8f70eb8
#
# BASE is checked out in a git worktree, the working tree (committed or not) is copied beside
# it; each gets its own target directory and its own Keycloak cache (one cache shared by both
# would let one side's class archive serve the other). After one untimed warm-up each, the two
# alternate, round after round, and every round measures:
#   suite        warm `cargo test --workspace`, wall time
#   e2e          the end-to-end binary's own "finished in" time
#   same tests   the working tree only: the suite again with the end-to-end tests BASE does not
#                have skipped (by exact name), so that it compares the same scenarios; every
#                other test binary runs whole (it only grew). A test renamed or removed since
#                BASE runs on neither side's count: the tree then runs fewer of BASE's tests
#   ready        `playbook provider` spawned until it prints "Keycloak ready at"
#   first token  the first client-credentials token over mTLS once the realm is in (curl's total)
# and prints the median, min and max of each and the ratio of medians (tree / base).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${1:?usage: scripts/bench-feedback.sh BASE_COMMIT}
ROUNDS=${ROUNDS:-3}
repo=$PWD
work=$repo/target/bench-feedback
mkdir -p "$work"

# Both keep their target directories between runs of this script: only changed code rebuilds.
if [ "$(git -C "$work/base" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$BASE^{commit}")" ]; then
  git worktree remove --force "$work/base" 2>/dev/null || true
  git worktree add --detach --force "$work/base" "$BASE" >/dev/null
fi
mkdir -p "$work/tree"
find "$work/tree" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
  tar --null -T - -cf - | tar -xf - -C "$work/tree"

# One Keycloak distribution for both, already fetched by earlier runs (or fetched here, once).
dist=$(ls "${PLAYBOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/oauth2-playbook}"/keycloak/*/keycloak-*.tar.gz 2>/dev/null | head -1 || true)

# CRIU, where it can run (root): a side that knows Keycloak snapshots uses it; one that does not,
# ignores the variable. The per-side caches would otherwise hide the one built into the cache.
criu=""
[ "$(id -u)" = 0 ] && criu=$(scripts/install-criu.sh || true)

in_side() { # $1 = base|tree, then a command run in that side's checkout with its own caches
  local side=$1; shift
  (cd "$work/$side" &&
    env CARGO_TARGET_DIR="$work/$side/target" PLAYBOOK_CACHE_DIR="$work/$side-cache" \
      PLAYBOOK_KEYCLOAK_BACKEND=native ${dist:+PLAYBOOK_KEYCLOAK_DIST="$dist"} \
      ${criu:+PLAYBOOK_CRIU="$criu"} "$@")
}

# Figures taken beside a forgotten Keycloak are worth nothing: none may run before or between.
no_keycloak_running() {
  if pgrep -f io.quarkus.bootstrap.runner >/dev/null; then
    echo "a Keycloak is running ($1): stop it (pgrep -af io.quarkus.bootstrap.runner)" >&2
    exit 1
  fi
}
no_keycloak_running "before the benchmark"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

suite() { # suite SIDE [LIBTEST_ARG...]: prints "suite_s e2e_s"; with arguments, a log of its own
  # Two statements: bash expands a whole `local` line before it assigns any of it.
  local side=$1
  local start log=$work/$side-suite${2:+-same}.log try
  shift
  # A test that fails (an older BASE has flaky ones) runs the round again, once; its log is kept.
  for try in 1 2; do
    start=$(now)
    in_side "$side" cargo test --workspace ${1:+-- "$@"} >"$log" 2>&1 && break
    [ "$try" = 2 ] && { echo "cargo test failed twice in $side: $log" >&2; exit 1; }
    mv "$log" "$log.failed"
    echo "cargo test failed in $side (kept in $log.failed): the round runs again" >&2
  done
  local total e2e
  total=$(since "$start")
  # One reader: a pipeline whose last stage stops early fails the first with SIGPIPE (pipefail).
  e2e=$(awk '/Running tests\/e2e\/main.rs/ { e2e = 1 } e2e && /^test result/ { print; exit }' "$log" |
    sed -E 's/.*finished in ([0-9.]+)s.*/\1/')
  echo "$total $e2e"
}

provider() { # prints "ready_s first_token_s"
  local side=$1
  local certs=$work/$side-certs out=$work/$side-provider.log start pid
  in_side "$side" "$work/$side/target/debug/playbook" certs --certs-dir "$certs" >/dev/null
  rm -f "$work/provider.pid"
  start=$(now)
  # In a session of its own, its pid written first: SIGTERM to it is Ctrl-C to the provider,
  # which then stops its Keycloak (Keycloak runs in a process group of its own).
  in_side "$side" setsid sh -c 'echo $$ >"$0"; exec "$@"' "$work/provider.pid" \
    "$work/$side/target/debug/playbook" provider --certs-dir "$certs" --keycloak-port 0 >"$out" 2>&1 &
  for _ in $(seq 1 100); do [ -s "$work/provider.pid" ] && break; sleep 0.01; done
  pid=$(cat "$work/provider.pid")
  rm -f "$work/provider.pid"
  local ready=""
  for _ in $(seq 1 1200); do
    if [ -z "$ready" ] && grep -q 'Keycloak ready at' "$out"; then ready=$(since "$start"); fi
    grep -q 'Press Ctrl-C to stop.' "$out" && break
    kill -0 "$pid" 2>/dev/null || { echo "provider failed in $side: $out" >&2; cat "$out" >&2; exit 1; }
    sleep 0.05
  done
  local issuer token_time
  issuer=$(grep -m1 -oE 'https://localhost:[0-9]+/realms/[a-z0-9-]+' "$out")
  token_time=$(curl -s -o "$work/token.json" -w '%{time_total}' --cacert "$certs/ca.pem" \
    --cert "$certs/client.pem" --key "$certs/client-key.pem" \
    -d grant_type=client_credentials -d client_id=oauth2-playbook-client-credentials-mtls \
    "$issuer/protocol/openid-connect/token")
  grep -q '"access_token"' "$work/token.json" || { echo "no token in $side: $(cat "$work/token.json")" >&2; exit 1; }
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  no_keycloak_running "left by $side's provider"
  echo "$ready $token_time"
}

e2e_tests() { # the end-to-end tests of a side, one name a line, from the binary its suite ran
  local binary
  binary=$(sed -nE 's|.*Running tests/e2e/main.rs \((.*)\)$|\1|p' "$work/$1-suite.log")
  [ -n "$binary" ] || { echo "no end-to-end binary named in $work/$1-suite.log" >&2; exit 1; }
  in_side "$1" "$binary" --list | sed -n 's/: test$//p' | sort
}

for side in base tree; do
  echo "building and warming up $side ($([ $side = base ] && git rev-parse --short "$BASE" || echo 'working tree'))"
  in_side "$side" cargo build --quiet -p playbook-cli
  suite "$side" >/dev/null
  # Twice: a side with Keycloak snapshots makes one on a configuration's second start (the
  # rounds then measure the restores a user gets from the third on).
  provider "$side" >/dev/null
  provider "$side" >/dev/null
done

# The working tree's end-to-end tests that BASE lacks, skipped by exact name in "same tests".
# Listed first, outside any process substitution, so that a failure stops the script.
base_tests=$(e2e_tests base)
tree_tests=$(e2e_tests tree)
[ -n "$base_tests" ] && [ -n "$tree_tests" ] || { echo "an end-to-end binary listed no test" >&2; exit 1; }
same=(--exact)
while IFS= read -r name; do same+=(--skip "$name"); done < <(comm -13 <(echo "$base_tests") <(echo "$tree_tests"))
echo "same tests: the working tree's suite with $(((${#same[@]} - 1) / 2)) end-to-end tests BASE lacks skipped"
suite tree "${same[@]}" >/dev/null

results=$work/results
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  for side in base tree; do
    read -r total e2e < <(suite "$side")
    read -r ready token < <(provider "$side")
    # BASE runs its own tests; the tree its suite restricted to them.
    if [ "$side" = tree ]; then read -r same_total same_e2e < <(suite tree "${same[@]}"); else
      same_total=$total same_e2e=$e2e; fi
    [ -n "${e2e:-}" ] && [ -n "${token:-}" ] && [ -n "${same_e2e:-}" ] ||
      { echo "round $round failed in $side: see $work/$side-suite*.log and $work/$side-provider.log" >&2; exit 1; }
    echo "$side $total $e2e $ready $token $same_total $same_e2e" >>"$results"
    printf 'round %d %-4s  suite %6.1f s  e2e %6.1f s  ready %5.2f s  first token %5.3f s  same tests: suite %6.1f s  e2e %6.1f s\n' \
      "$round" "$side" "$total" "$e2e" "$ready" "$token" "$same_total" "$same_e2e"
  done
done

python3 - "$results" "$(git rev-parse --short "$BASE")" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
names = ["warm cargo test --workspace (s)", "e2e binary (s)", "Keycloak ready (s)", "first token after ready (s)",
         "same tests: warm suite (s)", "same tests: e2e binary (s)"]
print(f"\n| measure | base {sys.argv[2]}: median (min–max) | working tree: median (min–max) | ratio |")
print("|---|---|---|---|")
for i, name in enumerate(names, start=1):
    base = [float(r[i]) for r in rows if r[0] == "base"]
    tree = [float(r[i]) for r in rows if r[0] == "tree"]
    mb, mt = statistics.median(base), statistics.median(tree)
    print(f"| {name} | {mb:.2f} ({min(base):.2f}–{max(base):.2f}) | {mt:.2f} ({min(tree):.2f}–{max(tree):.2f}) | {mt / mb:.2f} |")
EOF
