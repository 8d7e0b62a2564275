#!/usr/bin/env bash
# Installs cargo-machete (unused-dependency finder) from crates.io into a
# cache outside the repository, once, and prints the path of the binary.
# Same shape as helm.sh: idempotent, serialised with flock, pinned version.
set -euo pipefail
MACHETE_VERSION="${MACHETE_VERSION:-0.9.2}"

root="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/tools/cargo-machete-$MACHETE_VERSION"
bin="$root/bin/cargo-machete"
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
  echo "cargo-machete.sh: installing cargo-machete $MACHETE_VERSION (first time only)" >&2
  cargo install --quiet --locked --root "$root" cargo-machete --version "$MACHETE_VERSION" >&2
fi
echo "$bin"
