# Sourced by the load scripts: sets OHA to the oha load generator, installed from crates.io into
# .playbook/tools on first use (the scripts run from the repository root).
OHA=$(command -v oha || true)
if [ -z "$OHA" ]; then
  OHA=.playbook/tools/bin/oha
  if [ ! -x "$OHA" ]; then
    echo "installing oha (once) ..." >&2
    cargo install oha --locked --quiet --root .playbook/tools
  fi
fi
