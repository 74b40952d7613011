/*
 * oom_score_adj.so: a SPANK plugin that makes every task of every job the kernel's first choice when the
 * single node's container runs out of memory, so a job that outgrows it is killed, never a Slurm daemon.
 *
 * slurmstepd sets each task's oom_score_adj to 0 just before it calls slurm_spank_task_init_privileged()
 * (Slurm src/slurmd/slurmstepd/mgr.c: "set_oom_adj(0); the tasks may be killed by OOM"), while the daemons
 * keep the container's value (Kubernetes gives a Burstable pod 2..999): the tasks would be the LAST choice.
 * Here, as root in the task before it execs, the value is raised to 1000 (or the plugstack.conf argument
 * value=N). Raising needs no capability; lowering the daemons instead would need CAP_SYS_RESOURCE.
 */
#include <stdio.h>
#include <slurm/spank.h>

SPANK_PLUGIN(oom_score_adj, 1);

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	int value = 1000;
	FILE *f;

	for (int i = 0; i < ac; i++)
		sscanf(av[i], "value=%d", &value);
	f = fopen("/proc/self/oom_score_adj", "w");
	if (!f || fprintf(f, "%d", value) < 0 || fclose(f) != 0) {
		/* The task still runs: Slurm's own memory enforcement (OverMemoryKill) does not depend on this. */
		slurm_error("oom_score_adj: could not set this task's oom_score_adj to %d: %m", value);
	}
	return ESPANK_SUCCESS;
}
