"""slurm-exporter's figures (dockerfiles/slurm-single-node/slurm-exporter, loaded as a module) from canned Slurm
answers: the Slurm commands are stand-ins that return JSON as each version prints it, so each counting rule is
checked without Slurm (the same exporter against real Slurm: tests/images/test_slurm_exporter.py)."""

from __future__ import annotations

import importlib.util
import json
from importlib.machinery import SourceFileLoader

import pytest

from tests.project_env import ROOT

_LOADER = SourceFileLoader("slurm_exporter", str(ROOT / "dockerfiles" / "slurm-single-node" / "slurm-exporter"))
exporter = importlib.util.module_from_spec(importlib.util.spec_from_loader(_LOADER.name, _LOADER))
_LOADER.exec_module(exporter)

NOW = 1_700_000_000


def job(state, partition="debug", **more) -> dict:
    return {"job_state": state, "partition": partition, "user_name": "alice", "account": "physics",
            "state_reason": "None", "submit_time": NOW - 60, "cpus": 2, "tres_alloc_str": "cpu=2,mem=1G,node=1",
            **more}


def node(name, state, partitions=("debug",), **more) -> dict:
    return {"name": name, "state": state, "partitions": list(partitions), "cpus": 4, "alloc_cpus": 0,
            "real_memory": 2560, **more}


class Slurm:
    """Stand-ins for the exporter's command() and http_get(): canned answers by command, and the calls made."""

    def __init__(self, jobs=(), nodes=(), version="24.11.5", down=(), endpoints=None):
        self.answers = {"sinfo --version": f"slurm {version}\n", "scontrol ping": "Slurmctld(primary) at sn is UP\n",
                        "sacctmgr": "sci\n", "squeue": json.dumps({"jobs": list(jobs)}),
                        "scontrol show nodes --json": json.dumps({"nodes": list(nodes)}),
                        "sinfo --json": json.dumps({"nodes": list(nodes)}),
                        "sdiag --json": json.dumps({"statistics": {"schedule_cycle_last": 5}})}
        self.down = set(down)
        self.endpoints = endpoints or {}
        self.calls: list[tuple[str, ...]] = []

    def command(self, *args: str) -> str:
        self.calls.append(args)
        line = " ".join(args)
        for key, answer in self.answers.items():
            if line == key or (line.startswith(key + " ") and key in ("squeue", "sacctmgr")):
                if key in self.down:
                    raise exporter.Failed(f"{line}: no answer within 4 s")
                return answer
        raise AssertionError(f"unexpected command {line}")

    def http_get(self, path: str) -> str:
        return self.endpoints.get(path, "# HELP slurm_nodes Total\n# TYPE slurm_nodes gauge\nslurm_nodes 2\n")


def scrape(monkeypatch, slurm: Slurm) -> dict[str, list]:
    """One scrape: {family name: [(labels, value)]}."""
    monkeypatch.setattr(exporter, "command", slurm.command)
    monkeypatch.setattr(exporter, "http_get", slurm.http_get)
    monkeypatch.setattr(exporter.time, "time", lambda: NOW)
    collector = exporter.SlurmCollector()
    return {f.name: [(s.labels, s.value) for s in f.samples] for f in collector.collect()}


def value(figures: dict, name: str, **labels) -> float:
    found = [v for lab, v in figures.get(name, []) if labels.items() <= lab.items()]
    assert len(found) == 1, f"{name}{labels}: {figures.get(name)}"
    return found[0]


def source_up(figures: dict) -> dict[str, float]:
    return {lab["source"]: v for lab, v in figures["slurm_exporter_source_up"]}


# --- one source's surprise fails that source alone -----------------------------------------------------------------
def test_a_value_the_exporter_does_not_expect_fails_only_its_own_sources_figures(monkeypatch):
    nodes = [node("c1", ["IDLE"]), node("c2", ["IDLE"])]
    broken = scrape(monkeypatch, Slurm(jobs=[job(["RUNNING"], tres_alloc_str="cpu=2,mem=N/A")], nodes=nodes))
    assert source_up(broken) == {"ping": 1, "sacctmgr": 1, "squeue": 0, "nodes": 1, "sdiag": 1}
    assert "slurm_jobs" not in broken and "slurm_jobs_running" not in broken, "no half-counted job figures"
    assert "slurm_partition_jobs" not in broken, "no partition job figures without the jobs"
    assert value(broken, "slurm_nodes") == 2 and value(broken, "slurm_partition_nodes", partition="debug") == 2
    assert value(broken, "slurm_slurmctld_up") == 1 and value(broken, "slurm_schedule_cycle_last") == 5
    # Control: the same job with a memory figure counts.
    good = scrape(monkeypatch, Slurm(jobs=[job(["RUNNING"])], nodes=nodes))
    assert source_up(good)["squeue"] == 1
    assert value(good, "slurm_jobs_running") == 1 and value(good, "slurm_jobs_memory_alloc") == 1024
    assert value(good, "slurm_partition_jobs_running", partition="debug") == 1


def test_a_node_answer_the_exporter_does_not_expect_leaves_the_job_figures(monkeypatch):
    figures = scrape(monkeypatch, Slurm(jobs=[job(["RUNNING"])], nodes=[{"name": "c1", "cpus": "many"}, 3]))
    assert source_up(figures)["nodes"] == 0 and "slurm_nodes" not in figures
    assert value(figures, "slurm_jobs_running") == 1


# --- slurmctld's availability is its ping, not the job list ----------------------------------------------------------
def test_slurmctld_is_up_when_it_answers_a_ping_even_when_the_job_list_times_out(monkeypatch):
    slow = scrape(monkeypatch, Slurm(jobs=[job(["RUNNING"])], down={"squeue"}))
    assert value(slow, "slurm_slurmctld_up") == 1 and source_up(slow)["squeue"] == 0
    assert "slurm_jobs" not in slow
    # Control: no answer to the ping is slurmctld down.
    gone = scrape(monkeypatch, Slurm(down={"scontrol ping", "squeue"}))
    assert value(gone, "slurm_slurmctld_up") == 0 and source_up(gone)["ping"] == 0


def test_with_slurmctlds_own_endpoints_only_pending_jobs_are_fetched(monkeypatch):
    slurm = Slurm(version="26.05.3", jobs=[job(["PENDING"], state_reason="Resources", eligible_time=NOW - 90)])
    figures = scrape(monkeypatch, slurm)
    squeues = [c for c in slurm.calls if c[0] == "squeue"]
    assert squeues == [("squeue", "--json", "--states=PENDING")], squeues
    assert value(figures, "slurm_jobs_pending_reason", reason="Resources") == 1
    assert value(figures, "slurm_jobs_pending_longest_seconds", reason="Resources") == 90
    assert value(figures, "slurm_nodes") == 2 and value(figures, "slurm_slurmctld_up") == 1
    # Control: computing the figures (24.11) needs every job.
    older = Slurm(jobs=[])
    scrape(monkeypatch, older)
    assert [c for c in older.calls if c[0] == "squeue"] == [("squeue", "--json", "--states=all")]


def test_slurm_commands_print_whole_array_task_lists():
    """SLURM_BITSTR_LEN=0 in the commands' environment: Slurm would cut the list to 64 characters ending "..."."""
    assert exporter.command("sh", "-c", "echo $SLURM_BITSTR_LEN").strip() == "0"


def test_an_irregular_arrays_pending_tasks_are_all_counted(monkeypatch):
    tasks = [t for t in range(1, 1001) if t % 7]  # 1000 tasks, every 7th cancelled: no step pattern
    whole = ",".join(f"{a}-{a + 5}" for a in range(1, 995, 7)) + ",995-1000"
    assert exporter.task_count({"array_task_string": whole}) == len(tasks) == 858
    cut = whole[:60] + "..."  # what Slurm prints without SLURM_BITSTR_LEN=0
    assert exporter.task_count({"array_task_string": cut}) <= 60, "control: the cut list undercounts"
    figures = scrape(monkeypatch, Slurm(jobs=[job(["PENDING"], array_task_string=whole + "%10",
                                                  state_reason="JobArrayTaskLimit")]))
    assert value(figures, "slurm_jobs_pending") == 858
    assert value(figures, "slurm_jobs_pending_reason", reason="JobArrayTaskLimit") == 858
    assert exporter.task_count({"array_task_string": "1-996:5"}) == 200


def test_a_cancelled_arrays_record_counts_its_tasks_in_the_jobs_total(monkeypatch):
    """slurmctld's slurm_jobs counts an array record's tasks (array_recs->task_cnt) whatever its state; the state
    figures count a finished one once."""
    figures = scrape(monkeypatch, Slurm(jobs=[job(["CANCELLED"], array_task_string="1-3,6-8"), job(["RUNNING"])]))
    assert value(figures, "slurm_jobs") == 7
    assert value(figures, "slurm_jobs_cancelled") == 1 and value(figures, "slurm_jobs_running") == 1


# --- Slurm 22.05's job state strings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("state, counted, not_counted", [
    ("COMPLETING", {"completing": 1, "finished": 1, "started": 1}, ("running", "pending", "completed")),
    ("CONFIGURING", {"configuring": 1, "running": 1, "started": 1, "cpus_alloc": 2}, ("pending", "finished")),
    ("RESIZING", {"resizing": 1, "running": 1, "started": 1}, ("pending", "finished")),
    ("REQUEUED", {"requeued": 1, "pending": 1}, ("running", "started", "finished")),
    ("REQUEUE_HOLD", {"pending": 1}, ("running", "started", "finished")),
    ("RUNNING", {"running": 1, "started": 1}, ("completing", "pending")),  # control: a plain base state
])
def test_a_2205_job_state_that_is_a_flag_counts_as_its_base_state_and_the_flag(monkeypatch, state, counted,
                                                                               not_counted):
    figures = scrape(monkeypatch, Slurm(version="22.05.9", jobs=[job(state)], nodes=[node("c1", "idle")]))
    for key, count in counted.items():
        assert value(figures, f"slurm_jobs_{key}") == count, key
    for key in not_counted:
        assert value(figures, f"slurm_jobs_{key}") == 0, key
    assert value(figures, "slurm_partition_jobs", partition="debug") == 1, "not finished, or still completing"


def test_a_2205_finished_job_leaves_the_partitions_job_count(monkeypatch):
    figures = scrape(monkeypatch, Slurm(version="22.05.9", jobs=[job("COMPLETED")]))
    assert value(figures, "slurm_jobs_completed") == 1 and value(figures, "slurm_jobs_finished") == 1
    assert value(figures, "slurm_partition_jobs", partition="debug") == 0


# --- partitions and nodes ---------------------------------------------------------------------------------------------
def test_a_job_pending_in_several_partitions_counts_in_the_first(monkeypatch):
    figures = scrape(monkeypatch, Slurm(jobs=[job(["PENDING"], partition="debug,long")],
                                        nodes=[node("c1", ["IDLE"], ("debug", "long"))]))
    parts = {lab["partition"]: v for lab, v in figures["slurm_partition_jobs_pending"]}
    assert parts == {"debug": 1, "long": 0}, parts
    assert value(figures, "slurm_partitions") == 2


@pytest.mark.parametrize("state, drain, drained, draining", [
    (["IDLE", "DRAIN", "COMPLETING"], 1, 1, 0),  # its last job's epilog still running: drained, as Slurm counts it
    (["IDLE", "DRAIN"], 1, 1, 0),
    (["MIXED", "DRAIN"], 0, 0, 1),
    (["ALLOCATED", "DRAIN", "COMPLETING"], 0, 0, 1),
    (["IDLE", "COMPLETING"], 0, 0, 0),  # control: completing without DRAIN
])
def test_only_a_drain_node_with_jobs_allocated_is_draining(monkeypatch, state, drain, drained, draining):
    figures = scrape(monkeypatch, Slurm(nodes=[node("c1", state)]))
    assert (value(figures, "slurm_nodes_drain"), value(figures, "slurm_nodes_drained"),
            value(figures, "slurm_nodes_draining")) == (drain, drained, draining)
    assert value(figures, "slurm_partition_nodes_draining", partition="debug") == draining
