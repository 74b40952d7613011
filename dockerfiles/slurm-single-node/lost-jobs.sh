#!/bin/bash
# Part of slurm-single-node's entrypoint, once slurmctld answers and before any slurmd registers.
# end_lost_jobs NODE...: jobs that slurmctld recovered as running died with the previous container (its slurmd and
# their slurmstepd went with it), but slurmctld would wait for them forever: a restarted container is not a
# rebooted host. Their nodes go DOWN before any slurmd registers, which ends those jobs NODE_FAIL (JobRequeue=0: not
# run again into what may have killed the container); each node returns at registration (ReturnToService=2).

end_lost_jobs() {
  local lost
  mapfile -t lost < <(timeout 10 squeue -h -t RUNNING,COMPLETING,CONFIGURING,SUSPENDED -o '%i %N')
  ((${#lost[@]})) || return 0
  timeout 10 scontrol update NodeName="$(IFS=,; echo "$*")" State=DOWN \
    Reason="slurm-single-node restarted while jobs ran" || die "could not end the jobs of the previous start"
  log "ended ${#lost[@]} job(s) that ran when the previous container stopped (NODE_FAIL): ${lost[*]}"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: lost-jobs.sh NODE... (slurmctld answering, no slurmd yet)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  end_lost_jobs "$@"
fi
