/*
 * unset_jwt.so: a SPANK plugin that drops SLURM_JWT from the environment of every task of every job.
 *
 * A JupyterHub user's job inherits SLURM_JWT, their short-lived token, from the environment sbatch ran in (sbatch
 * exports it all). On the nodes Slurm's commands authenticate with munge; once the token expires, srun or squeue
 * in the job would fail with "Protocol authentication error" while it is set. So it goes, in the task before it
 * execs (slurm_spank_task_init runs as the job's user, after the task's environment is made and before any
 * TaskProlog). A TaskProlog script printing "unset SLURM_JWT" did the same at the cost of a shell per task
 * (README "Job throughput").
 */
#include <slurm/spank.h>

SPANK_PLUGIN(unset_jwt, 1);

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	spank_err_t rc = spank_unsetenv(sp, "SLURM_JWT");

	if (rc != ESPANK_SUCCESS) {
		/* The task does not run with a token it should not hold (a required plugin's error ends it). */
		slurm_error("unset_jwt: could not drop SLURM_JWT from the task's environment: %s", spank_strerror(rc));
		return -1;
	}
	return ESPANK_SUCCESS;
}
