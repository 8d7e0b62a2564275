#!/usr/bin/env bash
# Installs a cargo subcommand CRATE at VERSION from crates.io into a cache
# outside the repository, once, and prints the path of its binary (named
# like the crate). Idempotent and serialised with flock, like helm.sh; the
# first build of a large tool takes minutes on 2 cores.
# Usage: cargo-tool.sh CRATE VERSION
set -euo pipefail
crate="$1"
version="$2"

root="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/tools/$crate-$version"
bin="$root/bin/$crate"
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
  echo "cargo-tool.sh: installing $crate $version (first time only)" >&2
  cargo install --quiet --locked --root "$root" "$crate" --version "$version" >&2
fi
echo "$bin"
