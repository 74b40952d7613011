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

# ------------------------------------------------------------------------------------------- Go programs
# Programs are built from the Go module proxy with Go in /usr/local/go (SCI_GO), caches under $SCI_CACHE/go, as
# static binaries. The checksum database is not reachable here: a wrapper module's go.sum is seeded from the built
# module's own, so every dependency the upstream project locked is still verified against its hash.
GO="${SCI_GO:-/usr/local/go/bin/go}"
export GOPATH="$SCI_CACHE/go" GOMODCACHE="$SCI_CACHE/go/pkg/mod" GOCACHE="$SCI_CACHE/go/cache"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOSUMDB=off CGO_ENABLED=0

# go_mod_dir MODULE@VERSION: the module's directory in the module cache (downloading it); fails if the proxy lacks it.
go_mod_dir() {
  "$GO" mod download -json "$1" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(1) if d.get("Error") else print(d["Dir"])'
}

# go_wrapper DIR MODULE VERSION [REPLACE...]: DIR, made anew, holds a module that requires MODULE@VERSION with the
# REPLACE lines ("OLD => NEW") and MODULE's go.sum. MODULE's packages build there, while `go install` refuses a
# module whose go.mod has replace lines.
go_wrapper() {
  local dir="$1" module="$2" version="$3" src go r
  shift 3
  src="$(go_mod_dir "$module@$version")" || { log "$module@$version is not on the Go module proxy" >&2; return 1; }
  go="$("$GO" mod edit -json "$src/go.mod" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Go") or "1.21")')"
  rm -rf "$dir"; mkdir -p "$dir"
  { printf 'module sci.local/build/%s\n\ngo %s\n\nrequire %s %s\n' "${dir##*/}" "$go" "$module" "$version"
    for r in "$@"; do echo "replace $r"; done; } > "$dir/go.mod"
  cp "$src/go.sum" "$dir/go.sum" 2>/dev/null || : > "$dir/go.sum"
  chmod u+w "$dir/go.sum"
}

# go_fresh OUT SPEC [STAMP]: OUT was built from SPEC with this Go (its stamp, OUT.stamp unless named, says so) and
# SCI_REBUILD is not set.
go_fresh() {
  : "${GO_VERSION:=$("$GO" env GOVERSION)}"
  [[ -z "${SCI_REBUILD:-}" && -x "$1" && "$(cat "${3:-$1.stamp}" 2>/dev/null)" == "$2 $GO_VERSION" ]]
}

# go_build OUT SPEC DIR PACKAGE [LDFLAGS [STAMP]]: builds PACKAGE of the module in DIR into OUT, stripped, unless
# go_fresh; the log is $SCI_CACHE/build/NAME.log. SCI_GO_BUILD_P: parallel compile jobs (2).
go_build() {
  local out="$1" spec="$2" dir="$3" pkg="$4" ldflags="${5:-}" stamp="${6:-$1.stamp}" name="${1##*/}" t=$SECONDS
  local logfile="$SCI_CACHE/build/$name.log"
  if go_fresh "$out" "$spec" "$stamp"; then log "go: $name up to date"; return 0; fi
  mkdir -p "$SCI_CACHE/build"
  log "go: building $name (log: $logfile)"
  if ! (cd "$dir" && "$GO" build -p "${SCI_GO_BUILD_P:-2}" -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg") \
       >"$logfile" 2>&1; then
    tail -20 "$logfile" >&2
    log "go: building $name failed (log: $logfile)" >&2
    return 1
  fi
  mv -f "$out.tmp" "$out"
  echo "$spec $GO_VERSION" > "$stamp"
  log "go: built $name in $((SECONDS - t)) s"
}

# go_program NAME OUT MODULE VERSION PACKAGE LDFLAGS [HOOK]: builds PACKAGE of MODULE@VERSION as published into OUT,
# through the wrapper module $SCI_CACHE/build/NAME that repeats MODULE's own replace lines: local paths inside the
# module are kept (made absolute), those outside it (e.g. ../sdk) dropped, so the version MODULE requires comes from
# the proxy instead. HOOK, if given, is a function run in the wrapper with a writable copy of the module in ./src
# (for modules that need `go generate` first).
GO_PROGRAM_REV=2  # bump when the wrapper logic changes, so that programs built before no longer match their stamps
go_program() {
  local name="$1" out="$2" module="$3" version="$4" pkg="$5" ldflags="$6" hook="${7:-}" w="$SCI_CACHE/build/$1"
  local spec="rev=$GO_PROGRAM_REV $3@$4 $5 ldflags=[$6] hook=${7:-}" dir src replaces
  if go_fresh "$out" "$spec"; then log "go: $name up to date ($module@$version)"; return 0; fi
  dir="$(go_mod_dir "$module@$version")" || { log "$module@$version is not on the Go module proxy" >&2; return 1; }
  src="$dir"; [[ -z "$hook" ]] || src="$w/src"
  mapfile -t replaces < <("$GO" mod edit -json "$dir/go.mod" | python3 -c '
import json, os, sys
moddir = sys.argv[1]
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + (" " + old["Version"] if old.get("Version") else "")
    npath, nver = new["Path"], new.get("Version")
    p = os.path.normpath(os.path.join(moddir, npath))
    if nver:
        print(f"{lhs} => {npath} {nver}")
    elif p == moddir or p.startswith(moddir + os.sep):
        print(f"{lhs} => {p}")' "$src")
  [[ -z "$hook" ]] || replaces+=("$module => ./src")
  go_wrapper "$w" "$module" "$version" "${replaces[@]}" || return 1
  if [[ -n "$hook" ]]; then
    cp -r "$dir" "$w/src"; chmod -R u+w "$w/src"
    if ! (cd "$w" && "$hook" "$w") >"$w/hook.log" 2>&1; then
      tail -20 "$w/hook.log" >&2; log "$name: $hook failed (log: $w/hook.log)" >&2; return 1
    fi
  fi
  go_build "$out" "$spec" "$w" "$pkg" "$ldflags"
}
