#!/bin/bash
# Part of slurm-single-node's entrypoint: the site's LDAP directory (config `ldap`, through nslcd) followed without
# a deploy: a user added there gets a home and an association, one removed loses the association.
# sync_directory CLUSTER: the homes (make_homes) and accounting (sync_users) of the image's users, the static
#   directory's and every user nslcd lists. When it lists none (the directory unreachable, or empty: getent cannot
#   tell them apart) nothing is taken away: homes and associations are only added, for the users resolved without it.
#   Returns 1 then, and 0 once in step with the directory.
# directory_sync_loop CLUSTER: sync_directory every $DIRECTORY_SYNC_S seconds (default 15), doing the work only when
#   the directory's list differs from the last one in step (a sync of a few thousand users costs one enumeration).
#   The entrypoint supervises it (it is started again if it dies).

directory_passwd() {  # the directory's users, passwd(5) lines; fails when it lists none
  local out
  out="$(timeout "${DIRECTORY_LIST_TIMEOUT:-30}" getent -s ldap passwd)" && [[ -n "$out" ]] || return 1
  printf '%s\n' "$out"
}

sync_directory() {
  local cluster="$1" listed local_users status=0
  local_users="$(getent -s files passwd; getent -s extrausers passwd || true)"
  if listed="$(directory_passwd)"; then
    # A directory entry with the name of a user resolved before it (the image's, the static directory's) is never
    # that user: NSS answers the name with the other, so neither a home nor an association is made for it here.
    listed="$(awk -F: 'NR == FNR {local[$1] = 1; next} !($1 in local)' <(printf '%s\n' "$local_users") - <<<"$listed")"
    [[ "$listed" != "${DIRECTORY_IN_STEP:-}" ]] || return 0
    make_homes <(printf '%s\n' "$listed")
    sync_users "$cluster" <(printf '%s\n%s\n' "$local_users" "$listed")
    DIRECTORY_IN_STEP="$listed"
  else
    log "WARNING: the directory lists no user (unreachable?): nothing is taken away until it answers"
    sync_users "$cluster" <(printf '%s\n' "$local_users") keep
    DIRECTORY_IN_STEP=""
    status=1
  fi
  return "$status"
}

directory_sync_loop() {
  local cluster="$1"
  while :; do
    sync_directory "$cluster" || true
    sleep "${DIRECTORY_SYNC_S:-15}"
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: directory.sh CLUSTER (nslcd and slurmdbd answering)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  # shellcheck source-path=SCRIPTDIR source=homes.sh
  source "${BASH_SOURCE[0]%/*}/homes.sh"
  # shellcheck source-path=SCRIPTDIR source=accounting.sh
  source "${BASH_SOURCE[0]%/*}/accounting.sh"
  sync_directory "$1"
fi
