#!/usr/bin/env bash
# Prints the path of a TrueType font for `make bench`'s plot (DejaVu Sans).
# The system's when it has one; else Debian's fonts-dejavu-core, fetched
# once with `apt-get download` and unpacked (`dpkg-deb -x`) into a cache
# outside the repository. BENCH_FONT overrides everything.
set -euo pipefail

if [[ -n "${BENCH_FONT:-}" && -f "${BENCH_FONT}" ]]; then
  echo "$BENCH_FONT"
  exit 0
fi
system=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [[ -f "$system" ]]; then
  echo "$system"
  exit 0
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/fonts-dejavu-core"
font="$cache/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
if [[ -f "$font" ]]; then
  echo "$font"
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "font.sh: no DejaVu Sans and no apt-get/dpkg-deb to fetch it (set BENCH_FONT=/path/to/font.ttf)" >&2
  exit 1
fi
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download writes into the current folder; no root needed.
(cd "$work" && apt-get download fonts-dejavu-core >&2)
dpkg-deb -x "$work"/fonts-dejavu-core_*.deb "$cache"
echo "$font"
