#!/usr/bin/env bash
# Fetches promtool (the alert rules' checker and unit-test runner) from
# Debian's `prometheus` package into a cache outside the repository, once,
# and prints the path of the binary. Like hack/tools/helm.sh: idempotent,
# serialised with flock, progress on stderr.
#
# PROMTOOL overrides everything (an installed promtool). Otherwise the
# package apt would install is downloaded with `apt-get download` (no root
# needed, nothing installed) and unpacked with `dpkg-deb -x`; only
# usr/bin/promtool is used. Needs apt-get and dpkg-deb (any Debian or Ubuntu
# machine, CI's included) and package lists that know `prometheus`
# (as root it runs `apt-get update` once if `apt-cache show prometheus`
# finds nothing; otherwise run it yourself).
set -euo pipefail

if [[ -n "${PROMTOOL:-}" && -x "${PROMTOOL}" ]]; then
  echo "$PROMTOOL"
  exit 0
fi
for tool in apt-cache apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "promtool.sh: $tool is needed to fetch Debian's prometheus package (or set PROMTOOL=/path/to/promtool)" >&2
    exit 1
  fi
done

known() { apt-cache show --no-all-versions prometheus 2>/dev/null | awk '/^Version:/ { print $2; exit }'; }
version="$(known)"
# A fresh machine (a CI image) may have empty package lists: as root, fill
# them once (`apt-get update` installs nothing).
if [[ -z "$version" && $EUID -eq 0 ]]; then
  echo "promtool.sh: apt knows no prometheus package; running apt-get update" >&2
  apt-get update -q >&2 || true
  version="$(known)"
fi
if [[ -z "$version" ]]; then
  echo "promtool.sh: apt knows no prometheus package; run apt-get update (or set PROMTOOL)" >&2
  exit 1
fi
# Epochs (1:) and such are no folder names.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/promtool-${version//[^A-Za-z0-9.+-]/_}"
bin="$cache/usr/bin/promtool"
mkdir -p "$cache"
if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
  if [[ -x "$bin" ]]; then
    echo "$bin"
    exit 0
  fi
fi

echo "promtool.sh: fetching Debian's prometheus $version for promtool (first time only)" >&2
t0=$SECONDS
tmp="$(mktemp -d "$cache/.download.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# apt-get download writes into the current directory. As root it would
# drop privileges to _apt, which cannot reach a folder under root's home
# (it warns and downloads unsandboxed anyway): say so up front.
sandbox=()
if [[ $EUID -eq 0 ]]; then
  sandbox=(-o APT::Sandbox::User=root)
fi
(cd "$tmp" && apt-get download -q "${sandbox[@]}" "prometheus=$version" >&2)
deb=("$tmp"/prometheus_*.deb)
dpkg-deb -x "${deb[0]}" "$tmp/root"
"$tmp/root/usr/bin/promtool" --version >/dev/null
mkdir -p "$cache/usr/bin"
mv "$tmp/root/usr/bin/promtool" "$bin"
echo "promtool.sh: promtool from prometheus $version in $((SECONDS - t0))s" >&2
echo "$bin"
