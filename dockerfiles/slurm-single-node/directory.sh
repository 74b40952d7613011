#!/bin/bash
# Part of the slurm-single-node image's entrypoints: the site's LDAP directory (config `ldap`, through nslcd)
# followed without a deploy: a user added there gets a home and an association, one removed loses the association.
# The single node does both parts in its one pod; the distributed deployment (distributed.sh) each where it is done
# for the static list: the homes in the node pods (which mount the shared home), the associations in the accounting
# pod (slurmdbd's).
# start_nslcd: with the stack's nslcd.conf (ldap_configured, lib.sh), nslcd started (supervised as `nslcd`) and
#   listening; without it nothing.
# sync_directory PARTS [CLUSTER]: PARTS `all` (homes and accounting), `homes` or `accounting` (of CLUSTER). The homes
#   (make_homes) and accounting (sync_users) of the image's users, the static directory's and every user nslcd lists.
#   When it lists none (the directory unreachable, or empty: getent cannot tell them apart) nothing is taken away:
#   homes and associations are only added, for the users resolved without it. Returns 1 then, and 0 once in step with
#   the directory.
# directory_sync_loop PARTS [CLUSTER]: sync_directory every $DIRECTORY_SYNC_S seconds (default 15), doing the work only
#   when the directory's list differs from the last one in step (a sync of a few thousand users costs one
#   enumeration).
# follow_directory PARTS [CLUSTER]: sync_directory once now, then directory_sync_loop supervised as `directory-sync`
#   (the entrypoints start it again if it dies).

start_nslcd() {
  ldap_configured || return 0
  nslcd_install
  sup_start nslcd "$LOGS/nslcd.out" "" "${NSLCD[@]}"
  sup_wait "nslcd to listen on /run/nslcd/socket" nslcd_ok
  log "nslcd ready"
}

directory_passwd() {  # the directory's users, passwd(5) lines; fails when it lists none
  local out
  out="$(timeout "${DIRECTORY_LIST_TIMEOUT:-30}" getent -s ldap passwd)" && [[ -n "$out" ]] || return 1
  printf '%s\n' "$out"
}

sync_directory() {
  local parts="$1" cluster="${2:-}" listed local_users status=0
  case "$parts" in all|homes|accounting) ;; *) die "sync_directory: '$parts' is not all, homes or accounting" ;; esac
  [[ "$parts" == homes || -n "$cluster" ]] || die "sync_directory $parts: no cluster named"
  local_users="$(getent -s files passwd; getent -s extrausers passwd || true)"
  if listed="$(directory_passwd)"; then
    # A directory entry with the name of a user resolved before it (the image's, the static directory's) is never
    # that user: NSS answers the name with the other, so neither a home nor an association is made for it here.
    listed="$(awk -F: 'NR == FNR {local[$1] = 1; next} !($1 in local)' <(printf '%s\n' "$local_users") - <<<"$listed")"
    [[ "$listed" != "${DIRECTORY_IN_STEP:-}" ]] || return 0
    if [[ "$parts" != accounting ]]; then make_homes <(printf '%s\n' "$listed"); fi
    if [[ "$parts" != homes ]]; then sync_users "$cluster" <(printf '%s\n%s\n' "$local_users" "$listed"); fi
    DIRECTORY_IN_STEP="$listed"
  else
    log "WARNING: the directory lists no user (unreachable?): nothing is taken away until it answers"
    if [[ "$parts" != homes ]]; then sync_users "$cluster" <(printf '%s\n' "$local_users") keep; fi
    DIRECTORY_IN_STEP=""
    status=1
  fi
  return "$status"
}

directory_sync_loop() {
  while :; do
    sync_directory "$@" || true
    sleep "${DIRECTORY_SYNC_S:-15}"
  done
}

follow_directory() {
  sync_directory "$@" || true
  sup_start directory-sync "$LOGS/directory-sync.out" "" directory_sync_loop "$@"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: directory.sh PARTS [CLUSTER] (nslcd, slurmdbd answering)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  # shellcheck source-path=SCRIPTDIR source=homes.sh
  source "${BASH_SOURCE[0]%/*}/homes.sh"
  # shellcheck source-path=SCRIPTDIR source=accounting.sh
  source "${BASH_SOURCE[0]%/*}/accounting.sh"
  sync_directory "$@"
fi
