#!/usr/bin/env bash
# Functions shared by scripts/bootstrap and the programs in toolchain/; sourcing it also sources scripts/env.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"

# log MESSAGE: "[SCRIPT SECONDS] MESSAGE". die MESSAGE: logs it as an error and exits 1.
log() { printf '[%s %4ds] %s\n' "${0##*/}" "$SECONDS" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }

# apt_install PACKAGE...: installs those of the Debian packages that are not installed.
apt_install() {
  local missing=() p
  for p in "$@"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_until SECONDS WHAT CMD...: runs CMD (output discarded) every half second until it succeeds; after SECONDS it
# fails, saying what it waited for.
wait_until() {
  local timeout="$1" what="$2" end=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || { log "timed out after ${timeout}s waiting for $what" >&2; return 1; }
    sleep 0.5
  done
}
