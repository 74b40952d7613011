"""tests/e2e/deployment.update_of: a `pulumi up --json` event stream (the shape Pulumi 3.274 prints, abridged) made
into timed resource steps, as scripts/bench reports them."""

import math

from tests.e2e.deployment import update_of

STACK = "urn:pulumi:cluster::slurm-cloud-integration::"


def pre(op, type_, name):
    return {"resourcePreEvent": {"metadata": {"op": op, "urn": f"{STACK}{type_}::{name}", "type": type_}}}


def out(op, type_, name, kind="resOutputsEvent"):
    return {kind: {"metadata": {"op": op, "urn": f"{STACK}{type_}::{name}", "type": type_}}}


IMAGE, STS = "docker:index/image:Image", "kubernetes:apps/v1:StatefulSet"


def test_each_step_runs_from_its_pre_event_to_its_outputs_in_start_order():
    stamped = [
        (0.4, {"preludeEvent": {"config": {}}}),
        (0.9, {"diagnosticEvent": {"message": "debug: registering resource"}}),
        (3.0, pre("create", STS, "slurm")),  # arrives after the image's, starts later
        (2.0, pre("same", IMAGE, "slurm-single-node")),
        (2.5, out("same", IMAGE, "slurm-single-node")),
        (9.5, out("create", STS, "slurm")),
        (10.0, {"summaryEvent": {"durationSeconds": 10, "resourceChanges": {"create": 1, "same": 1}}}),
    ]
    update = update_of(stamped, 10.4)
    assert [(s.name, s.op, s.start, s.end) for s in update.steps] == [
        ("slurm-single-node", "same", 2.0, 2.5), ("slurm", "create", 3.0, 9.5)]
    assert update.steps[1].seconds == 6.5
    assert [s.name for s in update.of_type(":Image")] == ["slurm-single-node"]
    assert (update.summary, update.seconds, update.changes) == (10.0, 10.4, {"create": 1, "same": 1})


def test_a_replacement_pairs_each_op_and_a_failed_step_ends_at_its_failure():
    stamped = [
        (1.0, pre("create-replacement", STS, "slurm")),
        (1.1, pre("update", IMAGE, "slurm-jupyter")),
        (4.0, out("create-replacement", STS, "slurm")),
        (4.1, pre("delete-replaced", STS, "slurm")),
        (5.0, out("delete-replaced", STS, "slurm")),
        (6.0, out("update", IMAGE, "slurm-jupyter", kind="resOpFailedEvent")),
    ]
    update = update_of(stamped, 7.0)
    assert [(s.op, s.seconds) for s in update.steps] == [
        ("create-replacement", 3.0), ("update", 6.0 - 1.1), ("delete-replaced", 5.0 - 4.1)]
    assert math.isnan(update.summary) and update.changes == {}  # no summary: the update did not finish


def test_a_step_without_outputs_is_not_reported():
    update = update_of([(1.0, pre("create", STS, "slurm"))], 2.0)
    assert update.steps == []
