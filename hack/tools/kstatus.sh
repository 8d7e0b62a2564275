#!/usr/bin/env bash
# Builds the kstatus evaluator (hack/kstatus: sigs.k8s.io/cli-utils'
# status.Compute, what Flux's health checks run, behind a stdin/stdout
# filter) into a cache outside the repository, once, and prints the path of
# the binary. Mirrors hack/tools/helm.sh: idempotent, serialised with flock,
# timings on stderr. The cache key is a hash of the module's files, so an
# edit or a version bump builds anew.
#
# KSTATUS overrides everything (an already built evaluator).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../kstatus" && pwd)"

if [[ -n "${KSTATUS:-}" && -x "${KSTATUS}" ]]; then
  echo "$KSTATUS"
  exit 0
fi

key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/tools/kstatus-$key"
mkdir -p "$cache"
if [[ -x "$cache/kstatus" ]]; then
  echo "$cache/kstatus"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "kstatus.sh: Go is needed to build the kstatus evaluator (or set KSTATUS=/path/to/kstatus)" >&2
  exit 1
fi
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
  if [[ -x "$cache/kstatus" ]]; then
    echo "$cache/kstatus"
    exit 0
  fi
fi

echo "kstatus.sh: building the kstatus evaluator from hack/kstatus (first time only)" >&2
t0=$SECONDS
(cd "$here" && GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath" CGO_ENABLED=0 \
  go build -ldflags "-s -w" -o "$cache/kstatus.tmp" .)
mv "$cache/kstatus.tmp" "$cache/kstatus"
echo "kstatus.sh: built in $((SECONDS - t0))s" >&2
echo "$cache/kstatus"
