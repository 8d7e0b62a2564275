#!/usr/bin/env bash
# Builds or fetches, once, every tool `make test` needs besides cargo:
# the control plane (hack/envtest/build.sh), helm, the kstatus evaluator and
# promtool. Each one's progress goes to a log of its own; a tool that fails
# is tried once more (a module download or a mirror can fail once), and if
# it fails again this names it and prints the end of its log, so a CI log
# says which tool broke and why instead of only that something did.
# Prints nothing on stdout; on stderr one line per tool it had to build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run() { # name script
  local name=$1 script=$2 try
  for try in 1 2; do
    if "$root/$script" >/dev/null 2>"$logs/$name.log"; then
      grep -E '(built|from .* in [0-9]+s)' "$logs/$name.log" >&2 || true
      return 0
    fi
    echo "tools: $name ($script) failed on try $try; the end of its log:" >&2
    tail -n 40 "$logs/$name.log" | sed "s/^/  $name| /" >&2
  done
  return 1
}

run envtest hack/envtest/build.sh
run helm hack/tools/helm.sh
run kstatus hack/tools/kstatus.sh
run promtool hack/tools/promtool.sh
