#!/usr/bin/env bash
# cargo-machete (unused-dependency finder; `make lint`), pinned, installed
# once into the tools cache; prints the binary's path.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/cargo-tool.sh" cargo-machete "${MACHETE_VERSION:-0.9.2}"
