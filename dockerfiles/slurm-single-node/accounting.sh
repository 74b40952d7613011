#!/bin/bash
# Part of slurm-single-node's entrypoint: what slurmdbd's accounting must hold before slurmctld starts.
# slurmdbd_clusters: CLUSTERS, the clusters slurmdbd knows (fails while slurmdbd does not answer: a wait's probe).
# register_cluster NAME: adds the cluster unless slurmdbd knows it.
# sync_users CLUSTER [PASSWD [keep]]: accounting then holds exactly the users this container resolves (getent passwd;
#   or those of the passwd(5) file PASSWD) with a uid from 1000 up to the directory's limit (the directory's and the
#   image's jovyan), each in the account 'users'; others are removed (root never; with `keep` none; a user with jobs
#   still queued stays until a later sync). slurm.conf's AccountingStorageEnforce=
#   associations then refuses any other user's job at submit, by every path.

slurmdbd_clusters() { CLUSTERS="$(timeout 5 sacctmgr -n -P show cluster format=cluster)"; }

register_cluster() {
  [[ -n "${CLUSTERS+set}" ]] || slurmdbd_clusters || die "sacctmgr show cluster failed"
  if ! grep -qx "$1" <<<"$CLUSTERS"; then
    timeout 10 sacctmgr -i add cluster "$1" >/dev/null || die "sacctmgr add cluster $1 failed"
  fi
}

sync_users() {
  local cluster="$1" passwd="${2:-}" keep="${3:-}" assocs want have add del
  mapfile -t want < <(if [[ -n "$passwd" ]]; then cat "$passwd"; else getent passwd; fi \
    | awk -F: -v min="$FACT_ACCOUNTING_UID_MIN" -v end="$FACT_ACCOUNTING_UID_END" '$3 >= min && $3 < end {print $1}' \
    | sort -u)
  assocs="$(timeout 10 sacctmgr -n -P show assoc cluster="$cluster" format=account,user)" \
    || die "sacctmgr show assoc failed"
  mapfile -t have < <(cut -d'|' -f2 <<<"$assocs" | grep -vx -e '' -e root | sort -u)
  mapfile -t add < <(comm -23 <(printf '%s\n' "${want[@]}") <(grep '^users|.' <<<"$assocs" | cut -d'|' -f2 | sort -u) | grep .)
  mapfile -t del < <([[ -n "$keep" ]] || comm -13 <(printf '%s\n' "${want[@]}") <(printf '%s\n' "${have[@]}") | grep .)
  if ((${#add[@]})); then
    grep -qx 'users|' <<<"$assocs" || timeout 10 sacctmgr -i add account users cluster="$cluster" \
      description="users of the directory" organization=none >/dev/null || die "sacctmgr add account users failed"
    timeout 10 sacctmgr -i add user name="$(IFS=,; echo "${add[*]}")" account=users cluster="$cluster" \
      >/dev/null || die "sacctmgr add user ${add[*]} failed"
  fi
  if ((${#del[@]})); then  # refused while one of them has jobs: they stay until a later start
    timeout 10 sacctmgr -i delete user name="$(IFS=,; echo "${del[*]}")" >/dev/null \
      || log "WARNING: could not remove ${del[*]} from accounting (jobs still active?)"
  fi
  log "accounting users: ${#want[@]} (added ${#add[@]}, removed ${#del[@]})"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: accounting.sh CLUSTER (slurmdbd answering)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  register_cluster "$1"
  sync_users "$1"
fi
