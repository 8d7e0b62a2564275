#!/usr/bin/env bash
# Fetches promtool (the alert rules' checker and unit-test runner) from
# Debian's `prometheus` package into a cache outside the repository, once,
# and prints the path of the binary (hack/tools/debian-fetch.sh does the
# fetching: no root needed, nothing installed; as root it refreshes empty or
# stale package lists). PROMTOOL overrides everything (an installed
# promtool).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -n "${PROMTOOL:-}" && -x "${PROMTOOL}" ]]; then
  echo "$PROMTOOL"
  exit 0
fi
# shellcheck source=debian-fetch.sh
source "$here/debian-fetch.sh"
bin="$(debian_fetch prometheus usr/bin/promtool promtool.sh)" || {
  echo "promtool.sh: could not fetch promtool (or set PROMTOOL=/path/to/promtool)" >&2
  exit 1
}
"$bin" --version >/dev/null
echo "$bin"
