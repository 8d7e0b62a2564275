#!/usr/bin/env bash
# Builds helm from its Go module (through the Go module proxy) into a cache
# outside the repository, once, and prints the path of the binary. Mirrors
# hack/envtest/build.sh: idempotent, serialised with flock, timings on stderr.
#
# HELM overrides everything (an installed helm of a compatible major
# version); otherwise the pinned HELM_VERSION is built. helm's go.mod has no
# replace directives, so `go install module/cmd/helm@version` builds it
# straight from the proxy; no wrapper module is needed.
set -euo pipefail
HELM_VERSION="${HELM_VERSION:-v4.3.1}"

if [[ -n "${HELM:-}" && -x "${HELM}" ]]; then
  echo "$HELM"
  exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/tools/helm-$HELM_VERSION"
mkdir -p "$cache"
if [[ -x "$cache/helm" ]]; then
  echo "$cache/helm"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "helm.sh: Go is needed to build helm $HELM_VERSION (or set HELM=/path/to/helm)" >&2
  exit 1
fi
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
  if [[ -x "$cache/helm" ]]; then
    echo "$cache/helm"
    exit 0
  fi
fi

major="${HELM_VERSION%%.*}"             # v4
module="helm.sh/helm/$major"
echo "helm.sh: building helm $HELM_VERSION from $module/cmd/helm (first time only)" >&2
t0=$SECONDS
tmp="$cache/.gobin"
rm -rf "$tmp"
# Stamp the version the way helm's own Makefile does, so `helm version`
# reports the release instead of a dev string.
GOFLAGS="${GOFLAGS:-} -trimpath" CGO_ENABLED=0 GOBIN="$tmp" \
  go install -ldflags "-s -w -X $module/internal/version.version=$HELM_VERSION" \
  "$module/cmd/helm@$HELM_VERSION"
mv "$tmp/helm" "$cache/helm"
rm -rf "$tmp"
echo "helm.sh: built helm $HELM_VERSION in $((SECONDS - t0))s" >&2
echo "$cache/helm"
