#!/usr/bin/env bash
# Installs cargo-deny (license, ban and source checks of the dependency
# graph; `make lint`) from crates.io into a cache outside the repository,
# once, and prints the path of the binary. Same shape as cargo-machete.sh:
# idempotent, serialised with flock, pinned version. The first build takes
# a few minutes on 2 cores.
set -euo pipefail
DENY_VERSION="${DENY_VERSION:-0.20.2}"

root="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/tools/cargo-deny-$DENY_VERSION"
bin="$root/bin/cargo-deny"
mkdir -p "$root"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
if command -v flock >/dev/null; then
  exec 9>"$root/.lock"
  flock 9
fi
if [[ ! -x "$bin" ]]; then
  echo "cargo-deny.sh: installing cargo-deny $DENY_VERSION (first time only)" >&2
  cargo install --quiet --locked --root "$root" cargo-deny --version "$DENY_VERSION" >&2
fi
echo "$bin"
