#!/usr/bin/env bash
# cargo-deny (license, ban and source checks of the dependency graph;
# `make lint`), pinned, installed once into the tools cache; prints the
# binary's path. Its first build takes a long while on 2 cores.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/cargo-tool.sh" cargo-deny "${DENY_VERSION:-0.20.2}"
