#!/usr/bin/env bash
# Sourced by hack/tools/promtool.sh and hack/tools/font.sh: fetches one file
# out of a Debian package into a cache outside the repository, once.
# `apt-get download` (nothing installed, no root needed) and `dpkg-deb -x`.
#
#   debian_fetch PACKAGE PATH-IN-PACKAGE NAME
#
# prints the cached file's path. NAME prefixes the progress lines on stderr.
# A fresh machine may have empty or stale package lists (a version the
# mirror no longer serves): as root, `apt-get update` runs once and the
# look-up or the download is tried again. Serialised with flock, so two
# callers at once download once.

# awk reads to the end: leaving early would kill apt-cache with SIGPIPE,
# which pipefail turns into a failure of the whole look-up (it failed a CI
# run that way).
debian_version() {
  apt-cache show --no-all-versions "$1" 2>/dev/null | awk '/^Version:/ && !v { v = $2 } END { print v }'
}

debian_update() { # name
  if [[ $EUID -ne 0 ]]; then
    echo "$1: run apt-get update as root (the package lists are empty or stale)" >&2
    return 1
  fi
  echo "$1: running apt-get update (package lists empty or stale)" >&2
  apt-get update -q -o DPkg::Lock::Timeout=120 >&2
}

# Downloads PACKAGE=VERSION into DIR; as root apt would drop privileges to
# _apt, which cannot write under root's home: say so up front.
debian_download() { # dir package version
  local sandbox=()
  if [[ $EUID -eq 0 ]]; then sandbox=(-o APT::Sandbox::User=root); fi
  (cd "$1" && apt-get download -q "${sandbox[@]}" "$2=$3" >&2)
}

debian_fetch() { # package path-in-package name
  local package=$1 path=$2 name=$3
  for tool in apt-cache apt-get dpkg-deb; do
    if ! command -v "$tool" >/dev/null; then
      echo "$name: $tool is needed to fetch Debian's $package package" >&2
      return 1
    fi
  done
  local version
  version="$(debian_version "$package")"
  if [[ -z "$version" ]]; then
    debian_update "$name" || return 1
    version="$(debian_version "$package")"
    [[ -n "$version" ]] || { echo "$name: apt knows no $package package" >&2; return 1; }
  fi
  # Epochs (1:) and such are no folder names.
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/sales-order-operator/$package-${version//[^A-Za-z0-9.+-]/_}"
  mkdir -p "$cache"
  if [[ -f "$cache/$path" ]]; then echo "$cache/$path"; return 0; fi
  if command -v flock >/dev/null; then
    exec 9>"$cache/.lock"
    flock 9
    if [[ -f "$cache/$path" ]]; then echo "$cache/$path"; return 0; fi
  fi
  echo "$name: fetching Debian's $package $version (first time only)" >&2
  local t0=$SECONDS tmp
  tmp="$(mktemp -d "$cache/.download.XXXXXX")"
  if ! debian_download "$tmp" "$package" "$version"; then
    # The lists named a version the mirror has replaced: refresh, retry.
    debian_update "$name" || { rm -rf "$tmp"; return 1; }
    version="$(debian_version "$package")"
    debian_download "$tmp" "$package" "$version" || { rm -rf "$tmp"; return 1; }
  fi
  local debs=("$tmp"/"${package}"_*.deb)
  dpkg-deb -x "${debs[0]}" "$tmp/root"
  mkdir -p "$(dirname "$cache/$path")"
  mv "$tmp/root/$path" "$cache/$path"
  rm -rf "$tmp"
  echo "$name: $path from $package $version in $((SECONDS - t0))s" >&2
  echo "$cache/$path"
}
