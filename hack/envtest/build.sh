#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kubectl from their Go modules (through the
# Go module proxy) into a cache outside the repository, once. Prints the
# folder that holds the binaries (use it as KUBEBUILDER_ASSETS).
#
# Idempotent: a folder that already holds all binaries is reused; Go's own
# build and module caches make a rebuild after a version bump incremental.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/envtest/$KUBE_VERSION"
mkdir -p "$cache"

if [[ -x "$cache/etcd" && -x "$cache/kube-apiserver" && -x "$cache/kubectl" ]]; then
  echo "$cache"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "envtest: Go is needed to build kube-apiserver and etcd (or set KUBEBUILDER_ASSETS)" >&2
  exit 1
fi
# Two builds at once (make test's prefetch and a test harness, two
# terminals) would write the same files: take turns. The second one then
# finds everything built.
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
fi
export GOFLAGS="${GOFLAGS:-} -mod=mod -trimpath"
export CGO_ENABLED=0

build() { # name module-dir package
  local name=$1 dir=$2 pkg=$3
  if [[ -x "$cache/$name" ]]; then return 0; fi
  echo "envtest: building $name from $pkg (first time only)" >&2
  local t0=$SECONDS
  (cd "$here/$dir" && go build -ldflags "-s -w $ldflags" -o "$cache/$name.tmp" "$pkg")
  mv "$cache/$name.tmp" "$cache/$name"
  echo "envtest: built $name in $((SECONDS - t0))s" >&2
}

# Stamp the version the way Kubernetes' own build does, so /version, the
# harness log and kubectl's skew check see the real release.
v=k8s.io/component-base/version
ldflags="-X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=${KUBE_VERSION%%.*} -X $v.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION") -X $v.gitTreeState=clean"
build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl apiserver k8s.io/kubernetes/cmd/kubectl
echo "$cache"
