#!/usr/bin/env bash
# Prints the path of a TrueType font for `make bench`'s plot (DejaVu Sans).
# The system's when it has one; else Debian's fonts-dejavu-core, fetched
# once into a cache outside the repository (hack/tools/debian-fetch.sh).
# BENCH_FONT overrides everything.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${BENCH_FONT:-}" && -f "${BENCH_FONT}" ]]; then
  echo "$BENCH_FONT"
  exit 0
fi
font=usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [[ -f "/$font" ]]; then
  echo "/$font"
  exit 0
fi
# shellcheck source=debian-fetch.sh
source "$here/debian-fetch.sh"
debian_fetch fonts-dejavu-core "$font" font.sh || {
  echo "font.sh: no DejaVu Sans (set BENCH_FONT=/path/to/font.ttf)" >&2
  exit 1
}
