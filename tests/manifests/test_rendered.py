"""Every Kubernetes object the `local` stack renders: schema-valid for Kubernetes 1.32-1.35 (strict), checkov
clean but for the findings accepted in accepted-findings.yaml, and following the project's rules.

Input: the directory Pulumi's render_yaml_to_directory writes (see conftest.py). Needs the real Pulumi CLI,
kubernetes-validate and checkov (scripts/bootstrap installs all three).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.manifests.rendered import DEFAULT_CACHE, load_objects
from tests.workload_rules import check_workload

pytestmark = pytest.mark.pulumi
HERE = Path(__file__).resolve().parent
ACCEPTED = HERE / "accepted-findings.yaml"
KUBERNETES_VERSIONS = ("1.32.0", "1.33.0", "1.34.0", "1.35.0")  # the versions the README claims
# What the local stack (single node, slurmrestd, JupyterLab; no JupyterHub) renders.
# Slurm files and the user directory (ConfigMaps); slurmrestd, JupyterLab and the token service (Deployments,
# Services, NetworkPolicies, with the single node's); the shared home's claim.
# The metrics (on by default) add a Secret (the hub's scraper token) and a ConfigMap (the alert rules).
EXPECTED_KINDS = {"Namespace": 1, "ConfigMap": 3, "Secret": 5, "StatefulSet": 1, "Deployment": 3, "Service": 4,
                  "NetworkPolicy": 4, "PersistentVolumeClaim": 1}


def tool(name: str, env: str) -> str:
    """A command: $ENV, else on PATH, else beside this Python, else in $SCI_CACHE/bin."""
    candidates = [os.environ.get(env), shutil.which(name), str(Path(sys.executable).parent / name),
                  str(Path(os.environ.get("SCI_CACHE", DEFAULT_CACHE)) / "bin" / name)]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail(f"{name} not found (set {env}=PATH, or run scripts/bootstrap)", pytrace=False)


def kubernetes_validate(files: list[Path], version: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool("kubernetes-validate", "KUBERNETES_VALIDATE"), "--strict", "-k", version, "--quiet",
                           *map(str, files)], capture_output=True, text=True, timeout=600)


def checkov_failures(directory: Path) -> list[dict]:
    proc = subprocess.run([tool("checkov", "CHECKOV"), "-d", str(directory), "--framework", "kubernetes",
                           "-o", "json", "--skip-download"], capture_output=True, text=True, timeout=900)
    try:
        reports = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}",
                    pytrace=False)
    reports = reports if isinstance(reports, list) else [reports]
    assert all(r.get("summary", {}).get("parsing_errors", 0) == 0 for r in reports), "checkov could not parse a file"
    assert sum(r.get("summary", {}).get("resource_count", 0) for r in reports) > 0, "checkov saw no resources"
    return [f for r in reports for f in r["results"]["failed_checks"]]


def accepted_findings() -> list[dict]:
    entries = yaml.safe_load(ACCEPTED.read_text())
    for e in entries:
        assert set(e) == {"check", "resources", "reason"}, f"{ACCEPTED.name}: entry {e} needs check, resources, reason"
        assert len(e["reason"].split()) >= 15, f"{ACCEPTED.name}: {e['check']} needs a real justification"
    return entries


def unaccepted(failures: list[dict], accepted: list[dict]) -> tuple[list[str], list[str]]:
    """(findings no entry accepts, entries that accept no finding)."""
    used, unmatched = set(), []
    for f in failures:
        hits = [(i, p) for i, e in enumerate(accepted) if e["check"] == f["check_id"]
                for p in e["resources"] if fnmatch.fnmatchcase(f["resource"], p)]
        used.update(hits)
        if not hits:
            unmatched.append(f"{f['check_id']} ({f['check_name']}) on {f['resource']} in {f['file_path']}")
    stale = [f"{e['check']} {p}" for i, e in enumerate(accepted) for p in e["resources"] if (i, p) not in used]
    return unmatched, stale


def yaml_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.yaml"))


def test_the_local_stack_is_rendered(objects):
    kinds = Counter(doc["kind"] for _, doc in objects)
    assert dict(kinds) == EXPECTED_KINDS, f"rendered {dict(kinds)}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_are_valid_kubernetes_strict(rendered_dir, version):
    proc = kubernetes_validate(yaml_files(rendered_dir), version)
    assert proc.returncode == 0, f"kubernetes-validate --strict -k {version}:\n{proc.stdout}\n{proc.stderr}"


def test_checkov_findings_are_all_accepted(rendered_dir):
    unmatched, stale = unaccepted(checkov_failures(rendered_dir), accepted_findings())
    assert not unmatched, ("checkov findings not accepted in tests/manifests/accepted-findings.yaml (fix them, or "
                           "accept them there with a reason):\n" + "\n".join(unmatched))
    assert not stale, f"accepted findings that checkov no longer reports (remove them): {stale}"


def test_the_checks_can_fail(objects, tmp_path):
    """The same checks on a deliberately broken copy of the rendered StatefulSet do fail."""
    (statefulset,) = [copy.deepcopy(doc) for _, doc in objects if doc["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    pod["hostNetwork"] = True  # checkov CKV_K8S_19
    pod["containers"][0]["securityContext"]["privileged"] = True  # checkov CKV_K8S_16
    pod["containers"][0]["imagePullPolcy"] = "Always"  # a typo: --strict rejects unknown fields
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(statefulset))
    proc = kubernetes_validate([broken], KUBERNETES_VERSIONS[-1])
    assert proc.returncode != 0 and "imagePullPolcy" in proc.stdout + proc.stderr
    unmatched, _ = unaccepted(checkov_failures(tmp_path), accepted_findings())
    assert any(u.startswith("CKV_K8S_16") for u in unmatched) and any(u.startswith("CKV_K8S_19") for u in unmatched)


def test_rendered_workloads_follow_the_rules(objects):
    by_kind: dict[str, list[dict]] = {}
    for _, doc in objects:
        by_kind.setdefault(doc["kind"], []).append(doc)
    secrets = {}
    for s in by_kind["Secret"]:
        secrets |= {k: base64.b64decode(v).decode(errors="replace") for k, v in (s.get("data") or {}).items()}
        secrets |= dict(s.get("stringData") or {})
    assert {"munge.key", "jwt_hs256.key", "slurmdbd.conf", "token"} <= set(secrets)
    password = re.search(r"^StoragePass=(\S+)$", secrets["slurmdbd.conf"], re.M).group(1)
    needles = [password, secrets["token"]]
    for key in ("munge.key", "jwt_hs256.key"):
        raw = (s for s in by_kind["Secret"] if key in (s.get("data") or {}))
        needles.append(next(raw)["data"][key])
    config_text = json.dumps(by_kind["ConfigMap"])
    assert not [n[:4] for n in needles if n in config_text], "a secret value is in a ConfigMap"

    for w in by_kind["StatefulSet"] + by_kind["Deployment"]:
        check_workload(w)
        for c in w["spec"]["template"]["spec"]["containers"]:
            literals = json.dumps([e.get("value") for e in c.get("env", [])])
            assert not [n[:4] for n in needles if n in literals], f"{w['metadata']['name']}: a secret in an env literal"


def test_loader_reads_every_document(rendered_dir):
    assert len(load_objects(rendered_dir)) >= len(yaml_files(rendered_dir))
