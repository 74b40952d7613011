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
#   A listing can be short and still succeed (a server's size limit, a connection dropped mid-enumeration: getent
#   exits 0 with what it got), so one listing removes no one: a user's association goes only when two consecutive
#   successful listings lack them (one missing from this listing but in the previous one is kept until the next; the
#   first listing after a start removes no one). When it lists none (the directory unreachable, or empty: getent
#   cannot tell them apart) nothing is taken away either: homes and associations are only added, for the users
#   resolved without it. Returns 1 then, and 0 once in step with the directory.
# directory_sync_loop PARTS [CLUSTER]: sync_directory every $DIRECTORY_SYNC_S seconds (default 15), doing the work only
#   when the users to have differ from those of the last sync in step (a sync of a few thousand users costs one
#   enumeration), or when $DIRECTORY_RESYNC_S seconds (default 300) passed since it: what a sync could not do (a
#   removal refused while the user has jobs, a home it could not make) is tried again though the list is unchanged.
# follow_directory PARTS [CLUSTER]: sync_directory once now, then directory_sync_loop supervised as `directory-sync`
#   (the entrypoints start it again if it dies).
# State between syncs (in the shell that runs them): DIRECTORY_LISTED, the previous successful listing;
# DIRECTORY_IN_STEP, the users of the last sync in step (unset: none yet, or the directory failed since; empty: in
# step with a directory of no users beyond the local ones), DIRECTORY_IN_STEP_AT its time (epoch seconds).

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
  local parts="$1" cluster="${2:-}" listed local_users want keep="" now status=0
  case "$parts" in all|homes|accounting) ;; *) die "sync_directory: '$parts' is not all, homes or accounting" ;; esac
  [[ "$parts" == homes || -n "$cluster" ]] || die "sync_directory $parts: no cluster named"
  local_users="$(getent -s files passwd; getent -s extrausers passwd || true)"
  if listed="$(directory_passwd)"; then
    # A directory entry with the name of a user resolved before it (the image's, the static directory's) is never
    # that user: NSS answers the name with the other, so neither a home nor an association is made for it here.
    listed="$(awk -F: 'NR == FNR {local[$1] = 1; next} !($1 in local)' <(printf '%s\n' "$local_users") - <<<"$listed")"
    if [[ -v DIRECTORY_LISTED ]]; then
      # This listing's users and those of the previous one it lacks: removed only when the next lacks them too.
      want="$(awk -F: 'NR == FNR {print; seen[$1] = 1; next} $1 != "" && !($1 in seen)' \
        <(printf '%s\n' "$listed") <(printf '%s\n' "$DIRECTORY_LISTED"))"
    else
      want="$listed" keep=keep  # the first listing: nothing to compare it with, so it removes no one
    fi
    DIRECTORY_LISTED="$listed"
    printf -v now '%(%s)T' -1
    if [[ -v DIRECTORY_IN_STEP && "$want" == "$DIRECTORY_IN_STEP" ]] \
        && ((now - DIRECTORY_IN_STEP_AT < ${DIRECTORY_RESYNC_S:-300})); then
      return 0
    fi
    if [[ "$parts" != accounting ]]; then make_homes <(printf '%s\n' "$want"); fi
    if [[ "$parts" != homes ]]; then sync_users "$cluster" <(printf '%s\n%s\n' "$local_users" "$want") ${keep:+"$keep"}; fi
    if [[ -n "$keep" ]]; then
      unset DIRECTORY_IN_STEP  # the next listing syncs again, and removes who neither lists
    else
      DIRECTORY_IN_STEP="$want" DIRECTORY_IN_STEP_AT="$now"
    fi
  else
    log "WARNING: the directory lists no user (unreachable?): nothing is taken away until it answers"
    if [[ "$parts" != homes ]]; then sync_users "$cluster" <(printf '%s\n' "$local_users") keep; fi
    unset DIRECTORY_IN_STEP  # synced again once it answers, though it lists the same users
    status=1
  fi
  return "$status"
}

directory_sync_loop() {
  # A loop started again (sup_watch, after it died) inherits the entrypoint's state of its first sync, however old:
  # it starts over, its first listing removing no one.
  unset DIRECTORY_LISTED DIRECTORY_IN_STEP DIRECTORY_IN_STEP_AT
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
