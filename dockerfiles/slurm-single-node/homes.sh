#!/bin/bash
# Part of slurm-single-node's entrypoint: the homes of the user directory's users, made safely.
# make_homes [PASSWD [HOME_ROOT]] (default the directory's passwd, /var/lib/extrausers/passwd, and /home; PASSWD may
# be a pipe, e.g. the LDAP directory's users from directory.sh): the home root (the shared home volume) becomes
# root's and 0755, so no user can rename, replace or add a home; each directory user's home ROOT/NAME is made once,
# theirs, 0700 (or taken over, when it is an empty directory of root's: a pod's subPath mount made before it). A
# home that is not ROOT/NAME (elsewhere, another user's, . or ..) is not touched, with a WARNING: the hub mounts
# ROOT/NAME, and the LDAP directory's homes are ROOT/NAME whatever its entries say (components/ldap.py maps
# homeDirectory). What is in the home root belongs to users: it is never followed or changed as root, and nothing
# found there stops the start (what is skipped is logged as a WARNING).

make_homes() {
  local passwd="${1:-$FACT_EXTRAUSERS_DIR/passwd}" root="${2:-$FACT_HOME_ROOT}" name uid gid home
  { chown root:root "$root" && chmod 0755 "$root"; } || log "WARNING: could not make $root root's and 0755"
  [[ -r "$passwd" ]] || return 0
  while IFS=: read -r name _ uid gid _ home _; do
    [[ "$name" != \#* && "$uid" =~ ^[0-9]+$ && "$gid" =~ ^[0-9]+$ ]] || continue
    if [[ "$home" != "$root/$name" || "$name" == */* || "$name" == . || "$name" == .. ]]; then
      log "WARNING: the home of $name is $home, not $root/$name: none made (a home elsewhere is the site's)"
      continue
    fi
    if [[ -L "$home" ]]; then
      log "WARNING: $home is a symbolic link, left as it is: $name has no home until it is a directory"
    elif [[ ! -e "$home" ]]; then
      if mkdir -m 0700 "$home" 2>/dev/null; then
        chown -h "$uid:$gid" "$home" || log "WARNING: could not make $home theirs for $name"
      elif [[ -L "$home" || ! -d "$home" ]]; then  # a directory there: another node pod made it just now
        log "WARNING: could not make $home for $name"
      fi
    elif [[ ! -d "$home" ]]; then
      log "WARNING: $home is not a directory, left as it is: $name has no home until it is one"
    elif [[ "$(stat -c %u "$home")" == 0 && "$uid" != 0 && -z "$(ls -A "$home")" ]]; then
      # An empty directory of root's, which only root can put in the home root: the kubelet makes a missing subPath
      # as root, i.e. the home of a JupyterHub user who started a server before this listing made it.
      { chown -h "$uid:$gid" "$home" && chmod 0700 "$home"; } || log "WARNING: could not make $home theirs for $name"
    elif [[ "$(stat -c %u "$home")" != "$uid" ]]; then
      log "WARNING: $home belongs to uid $(stat -c %u "$home"), not to $name ($uid): left as it is"
    fi
  done < "$passwd"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: homes.sh [PASSWD [HOME_ROOT]] (as root)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  make_homes "$@"
fi
