"""The distributed deployment (config components.distributed, components/distributed.py), under Pulumi's mocks: the
config's choices and refusals, the rendered slurm.conf (configless, dynamic nodes in a NodeSet, slurmdbd at its own
address), each role's StatefulSet with its claim, keys and resources, and the network edges between the roles."""

from __future__ import annotations

import functools

import pytest

from components import distributed, ldap, network, single_node
from components.config import ConfigError, parse
from components.slurm_files import (
    DISTRIBUTED_MEM_SPEC_MB,
    DRAIN_MARGIN_S,
    SLURMCTLD_PORT,
    SLURMDBD_PORT,
    Distributed,
    parse_slurm_conf,
    render_slurm_files,
)
from tests.unit.config_values import with_
from tests.unit.dist_stack import DIST, STATEFULSET, container, dist, pod, slurm_conf, statefulset
from tests.unit.stacks import run, run_values, stack_values
from tests.workload_rules import check_workload

POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
LDAP = {"uri": "ldap://ldap.example.org", "baseDn": "dc=example,dc=org", "bindDn": "cn=nslcd,dc=example,dc=org",
        "bindPassword": "s3cret-pw"}


# --- config ------------------------------------------------------------------------------------------------------

def test_the_single_node_stays_the_default_and_distributed_is_chosen_beside_it():
    assert not parse(with_()).components.distributed
    cfg = parse(with_(**DIST, nodes="3", node={"cpus": 2, "memoryMb": 4096}))
    assert cfg.components.distributed and not cfg.components.single_node and cfg.nodes == 3
    assert cfg.node_pod_cpu_milli == (2000, 2000), "the CPU request is the whole limit unless lowered"
    assert parse(with_(**DIST, distributed={"nodeCpuRequest": "250m"})).node_pod_cpu_milli == (250, 2000)


@pytest.mark.parametrize("changes, key, words", [
    ({"components": {"distributed": True}}, "components.singleNode", "two Slurm clusters"),
    ({**DIST, "slurmVersion": "22.05"}, "slurmVersion", "22.05 cannot run it: its dynamic nodes"),
    ({**DIST, "node": {"memoryMb": "300"}}, "node.memoryMb", f"{256 + DISTRIBUTED_MEM_SPEC_MB}"),
    ({**DIST, "distributed": {"nodeCpuRequest": "3"}}, "distributed.nodeCpuRequest", "more than the node pod's limit"),
    ({**DIST, "distributed": {"nodeCpuRequest": "lots"}}, "distributed.nodeCpuRequest", "Kubernetes quantity"),
    ({**DIST, "distributed": {"drainGraceSeconds": -1}}, "distributed.drainGraceSeconds", "604800"),
    ({**DIST, "distributed": {"drainGraceSeconds": "soon"}}, "distributed.drainGraceSeconds", "soon"),
    ({**DIST, "distributed": {"controlNodeSelector": {"pool": 1}}}, "distributed.controlNodeSelector",
     "not a Kubernetes label"),
])
def test_a_bad_distributed_config_names_its_key(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse(with_(**changes))
    assert f"'slurm-cloud-integration:{key}'" in str(err.value) and words in str(err.value), str(err.value)


def test_the_control_config_parses():
    """Control for the refusals above: the same keys with good values pass."""
    parse(with_(**DIST, slurmVersion="26.05", node={"memoryMb": 384},
                distributed={"nodeCpuRequest": "1", "drainGraceSeconds": 0, "controlNodeSelector": {"pool": "a"}}))


def test_the_sites_ldap_directory_is_accepted_with_the_distributed_deployment():
    """Preview refused `ldap` with components.distributed while only the single node followed a directory."""
    cfg = parse(with_(**DIST, ldap=LDAP, users=None, jupyter={"user": "alice"}), {"ldap"})
    assert cfg.components.distributed and cfg.ldap.uri == LDAP["uri"] and cfg.users == ()


# --- slurm.conf --------------------------------------------------------------------------------------------------

def render(**more) -> dict[str, str]:
    return parse_slurm_conf(render_slurm_files(
        "dist", "24.11", 2, "dist-slurmctld-0", "dist-slurmctld.ns.svc.cluster.local", db_password="password1",
        cpus_per_node=2, memory_mb_per_node=2048, **more)["slurm.conf"])


def test_distributed_slurm_conf_is_configless_with_dynamic_nodes_in_a_nodeset():
    conf = render(distributed=Distributed("dist-accounting.ns.svc.cluster.local"))
    assert conf["slurmctldparameters"] == "enable_configless"
    assert conf["slurmctldhost"] == "dist-slurmctld-0(dist-slurmctld.ns.svc.cluster.local)"
    assert conf["accountingstoragehost"] == "dist-accounting.ns.svc.cluster.local"
    assert "nodename" not in conf, "node pods register themselves (slurmd -Z): no NodeName line"
    assert conf["maxnodecount"] == "64" and conf["nodeset"] == "nodes"
    text = render_slurm_files("dist", "24.11", 2, "dist-slurmctld-0", "a.b", db_password="password1",
                              distributed=Distributed("c.d"))["slurm.conf"]
    assert "\nNodeSet=nodes Feature=nodes\n" in text and "\nPartitionName=debug Nodes=nodes " in text
    # Jobs without --mem share what Slurm leaves them of the pod's memory.
    assert conf["defmempercpu"] == str((2048 - DISTRIBUTED_MEM_SPEC_MB) // 2)


def test_the_single_nodes_slurm_conf_is_unchanged_by_the_option():
    """Control: without `distributed`, the single node's static nodes, one address for everything."""
    conf = render()
    assert "slurmctldparameters" not in conf and "maxnodecount" not in conf
    assert conf["nodename"] == "c1" and conf["accountingstoragehost"] == "dist-slurmctld.ns.svc.cluster.local"


def test_rendering_refuses_22_05_for_the_distributed_deployment():
    with pytest.raises(ValueError, match="dynamic nodes"):
        render_slurm_files("dist", "22.05", 2, "h", db_password="password1", distributed=Distributed("a.b"))


def test_the_node_pods_register_with_their_pods_cpus_and_memory():
    assert distributed.node_conf(4, 8192) == f"CPUs=4 RealMemory=8192 MemSpecLimit={DISTRIBUTED_MEM_SPEC_MB} Feature=nodes"


# --- the stack ---------------------------------------------------------------------------------------------------

def test_the_dist_stack_renders_its_slurm_conf_for_its_own_names():
    conf = parse_slurm_conf(slurm_conf(dist()))
    assert conf["slurmctldhost"] == "dist-slurmctld-0(dist-slurmctld.slurm-dist.svc.cluster.local)"
    assert conf["accountingstoragehost"] == "dist-accounting.slurm-dist.svc.cluster.local"
    assert conf["slurmctldparameters"] == "enable_configless"
    assert "single-node-statefulset" not in [r.name for r in dist().of_type(STATEFULSET)], "no single node beside it"


def test_slurmctld_and_slurmdbd_names_resolve_before_their_pods_exist():
    """ClusterIP Services: a headless name is NXDOMAIN (cached 30 s by CoreDNS) until its pod has an address. Each pod
    sees its own name as loopback, so its own clients need no edge to itself."""
    result = dist()
    ns = result.outputs["namespace"][0]
    for role in ("slurmctld", "accounting"):
        svc = result.one(SERVICE, f"distributed-{role}-service").plain
        assert svc["spec"].get("clusterIP") != "None" and svc["spec"]["publishNotReadyAddresses"] is True, role
        assert svc["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}, role
        own = f"{svc['metadata']['name']}.{ns}.svc.cluster.local"
        assert pod(result, role)["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": [own]}], role
    assert f"({distributed.controller_addr('dist', ns)})" in slurm_conf(result)
    nodes = result.one(SERVICE, "distributed-node-service").plain
    assert nodes["spec"]["clusterIP"] == "None" and "hostAliases" not in pod(result, "node")


def test_each_role_is_its_own_statefulset_and_follows_the_workload_rules():
    result = dist()
    assert sorted(r.name for r in result.of_type(STATEFULSET)) == [
        "distributed-accounting-statefulset", "distributed-node-statefulset", "distributed-slurmctld-statefulset"]
    for role in ("slurmctld", "accounting", "node"):
        check_workload(statefulset(result, role))
    assert statefulset(result, "node")["spec"]["replicas"] == 2
    assert statefulset(result, "slurmctld")["spec"]["replicas"] == 1
    assert statefulset(result, "node")["metadata"]["name"] == "dist-node"  # pods dist-node-0, -1: the Slurm nodes


def test_slurmctld_and_the_database_keep_their_state_on_claims_of_their_own():
    result = dist()
    for role in ("slurmctld", "accounting"):
        claims = statefulset(result, role)["spec"]["volumeClaimTemplates"]
        assert [c["metadata"]["name"] for c in claims] == ["state"]
        assert claims[0]["spec"]["resources"]["requests"]["storage"] == "1Gi"  # Pulumi.dist.yaml storage.size
        assert {"name": "state", "mountPath": "/var/lib/slurm-state"} in container(result, role)["volumeMounts"]
    assert not statefulset(result, "node")["spec"].get("volumeClaimTemplates"), "node pods keep no state"


def test_each_role_runs_its_mode_of_the_single_node_image():
    result = dist()
    images = {container(result, role)["image"] for role in ("slurmctld", "accounting", "node")}
    assert len(images) == 1 and "/slurm-single-node@sha256:" in images.pop()
    for role, mode in (("slurmctld", "controller"), ("accounting", "accounting"), ("node", "node")):
        assert container(result, role)["command"] == [distributed.ENTRYPOINT, mode]


def key_files(spec: dict) -> set[str]:
    keys = next(v for v in spec["volumes"] if v["name"] == "slurm-keys")["projected"]["sources"]
    return {i["path"] for s in keys for i in s["secret"]["items"]}


def config_files(spec: dict) -> set[str]:
    found = [v for v in spec["volumes"] if v["name"] == "slurm-config"]
    return {i["path"] for v in found for s in v["projected"]["sources"] if "secret" in s
            for i in s["secret"]["items"]} | ({"ConfigMap"} if found else set())


@pytest.mark.parametrize("auth, key", [("auth/slurm", "slurm.key"), ("auth/munge", "munge.key")])
def test_only_the_pods_that_need_a_key_get_it(auth, key):
    result = dist() if auth == "auth/slurm" else run("dist", authType=auth)  # the committed stack's is auth/slurm
    assert key_files(pod(result, "node")) == {key}, "a node pod checks no token: no JWT key"
    assert key_files(pod(result, "slurmctld")) == {key, "jwt_hs256.key"}
    assert key_files(pod(result, "accounting")) == {key, "jwt_hs256.key"}
    assert config_files(pod(result, "accounting")) == {"ConfigMap", "slurmdbd.conf"}
    assert config_files(pod(result, "slurmctld")) == {"ConfigMap"}, "the database password is the accounting pod's"
    assert config_files(pod(result, "node")) == set(), "node pods are configless: no slurm.conf mounted"


def test_node_pods_are_configless_and_get_exactly_their_resources():
    c = container(dist(), "node")
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SLURM_CONF_SERVER"] == f"dist-slurmctld.slurm-dist.svc.cluster.local:{SLURMCTLD_PORT}"
    assert env["SLURMD_NODE_CONF"] == distributed.node_conf(1, 768)  # Pulumi.dist.yaml node.cpus, node.memoryMb
    resources = c["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "768Mi"
    assert resources["limits"]["cpu"] == "1" and resources["requests"]["cpu"] == "100m"  # distributed.nodeCpuRequest


def test_node_pods_mount_the_shared_home_and_spread_over_kubernetes_nodes():
    spec = pod(dist(), "node")
    assert {"name": "home", "mountPath": "/home"} in spec["containers"][0]["volumeMounts"]
    home = next(v for v in spec["volumes"] if v["name"] == "home")
    assert home["persistentVolumeClaim"]["claimName"]
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["maxSkew"] == 1
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == distributed.NODE_APP


def test_slurmctld_and_accounting_run_on_the_nodes_the_config_selects_and_node_pods_anywhere():
    """distributed.controlNodeSelector (Pulumi.dist.yaml: toolchain/kube's first node) is the nodeSelector of the
    slurmctld and accounting pods; the node pods have none. Control: without the key no pod has one."""
    result = dist()
    for role in ("slurmctld", "accounting"):
        assert pod(result, role)["nodeSelector"] == {"kubernetes.io/hostname": "sci-node"}, role
    assert "nodeSelector" not in pod(result, "node")
    anywhere = run("dist", distributed={"nodeCpuRequest": "100m"})
    assert not [r for r in ("slurmctld", "accounting", "node") if "nodeSelector" in pod(anywhere, r)]


def test_only_node_pods_keep_sys_ptrace_and_no_pod_is_privileged():
    result = dist()
    for role in ("slurmctld", "accounting", "node"):
        sc = container(result, role)["securityContext"]
        assert sc["privileged"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert ("SYS_PTRACE" in sc["capabilities"]["add"]) == (role == "node"), role
    assert tuple(container(result, "node")["securityContext"]["capabilities"]["add"]) == single_node.CAPABILITIES


def test_slurm_exporter_runs_beside_slurmctld():
    spec = pod(dist(), "slurmctld")
    assert [c["name"] for c in spec["containers"]] == ["slurm", "slurm-exporter"]
    exporter = spec["containers"][1]
    assert exporter["securityContext"]["runAsUser"] == single_node.EXPORTER_UID
    assert not any(m["mountPath"] == "/etc/slurm-keys" for m in exporter["volumeMounts"])
    assert "readinessProbe" not in exporter and "readinessProbe" in spec["containers"][0], \
        "slurmctld's readiness is its own, never the exporter's"


def test_every_pod_of_the_stack_is_behind_a_network_policy():
    result = dist()
    selected = {r.plain["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for r in result.of_type(POLICY)}
    assert {distributed.CONTROLLER_APP, distributed.ACCOUNTING_APP, distributed.NODE_APP} <= selected


def edges(graph) -> set[tuple[str, str, tuple[int, ...]]]:
    return {(e.source.app or e.source.cidr or e.source.namespace, e.target.app, e.ports) for e in graph.edges}


def test_the_roles_reach_each_other_only_where_slurm_needs_it():
    cfg = parse(with_(**DIST))
    graph = network.graph(cfg.components, nodes=2, restd_clients=cfg.restd.allowed_clients)
    found = edges(graph)
    ctld, dbd, node = distributed.CONTROLLER_APP, distributed.ACCOUNTING_APP, distributed.NODE_APP
    assert (node, ctld, (SLURMCTLD_PORT,)) in found and (ctld, dbd, (SLURMDBD_PORT,)) in found
    assert (ctld, node, ()) in found and (node, node, ()) in found
    assert (dbd, ctld, (SLURMCTLD_PORT,)) in found, "slurmdbd pushes association changes to slurmctld"
    assert ("slurmrestd", ctld, (SLURMCTLD_PORT,)) in found and ("slurmrestd", dbd, (SLURMDBD_PORT,)) in found
    assert not [e for e in found if e[1] == single_node.APP], "no edge into a single node that is not there"
    into_accounting = {e[0] for e in found if e[1] == dbd}
    assert "slurm-jupyter" in into_accounting and "slurm-single-node" not in into_accounting


def test_a_single_node_stack_has_no_edge_of_the_distributed_roles():
    """Control: the same table without components.distributed."""
    cfg = parse(with_())
    graph = network.graph(cfg.components, nodes=2, restd_clients=cfg.restd.allowed_clients)
    roles = {distributed.CONTROLLER_APP, distributed.ACCOUNTING_APP, distributed.NODE_APP}
    assert not [e for e in edges(graph) if e[0] in roles or e[1] in roles]
    assert [e for e in edges(graph) if e[1] == single_node.APP]


def test_a_stopping_node_pod_drains_its_slurm_node_within_the_configured_grace():
    """The node container's preStop hook (distributed.sh drain) waits up to distributed.drainGraceSeconds for the
    node's jobs; the pod's grace period is that plus the margin for the DOWN, the delete and the daemons' stop."""
    result = dist()  # Pulumi.dist.yaml: drainGraceSeconds 30
    c = container(result, "node")
    assert c["lifecycle"]["preStop"]["exec"]["command"] == [distributed.ENTRYPOINT, "drain"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SLURM_DRAIN_GRACE_S"] == "30"
    assert pod(result, "node")["terminationGracePeriodSeconds"] == 30 + DRAIN_MARGIN_S
    other = run("dist", distributed={"nodeCpuRequest": "100m", "drainGraceSeconds": 900})
    assert pod(other, "node")["terminationGracePeriodSeconds"] == 900 + DRAIN_MARGIN_S
    assert {e["name"]: e["value"] for e in container(other, "node")["env"]}["SLURM_DRAIN_GRACE_S"] == "900"
    assert "lifecycle" not in container(result, "slurmctld"), "only the node pods drain"


def test_pulumi_waits_for_a_rolling_update_that_drains_each_node_pod_in_turn():
    timeouts = distributed.node_timeouts(nodes=3, drain_grace_s=300)
    assert timeouts.update == timeouts.delete == f"{600 + 3 * (300 + DRAIN_MARGIN_S)}s"


def test_the_default_grace_is_five_minutes():
    assert parse(with_(**DIST)).distributed.drain_grace_seconds == 300


# --- the site's LDAP directory (config `ldap`) ---------------------------------------------------------------------

@functools.cache
def dist_ldap():
    """The dist stack with the site's directory instead of its `users` and `groups` (JupyterLab as one of its users)."""
    return run_values(stack_values("dist", users=None, groups=None, ldap=LDAP, metrics={"enabled": True},
                                   jupyter={"user": "christopher"}), {"ldap"})


def secrets_of(spec: dict) -> dict[str, set[str]]:
    """{volume name: the Secrets it projects} of a pod."""
    return {v["name"]: {s["secret"]["name"] for s in v.get("projected", {}).get("sources", []) if "secret" in s}
            for v in spec["volumes"]}


def mounted_by(spec: dict, volume: str) -> set[str]:
    return {c["name"] for c in spec["containers"] if any(m["name"] == volume for m in c.get("volumeMounts", []))}


def test_with_ldap_every_slurm_role_gets_nslcd_conf_in_its_directory_volume():
    """slurmctld, the accounting pod and the node pods resolve the directory (their entrypoint modes run nslcd from
    the directory volume's nslcd.conf, as the single node's does): the Secret with the bind password is there."""
    result = dist_ldap()
    secret = result.one(SECRET, "directory-ldap")
    name = secret.plain["metadata"]["name"]
    assert "bindpw s3cret-pw" in secret.plain["stringData"][ldap.NSLCD_CONF_FILE].splitlines()
    for role in ("slurmctld", "accounting", "node"):
        spec = pod(result, role)
        sources = next(v for v in spec["volumes"] if v["name"] == "users")["projected"]["sources"]
        assert [(s["secret"]["name"], [(i["key"], i["mode"]) for i in s["secret"]["items"]])
                for s in sources if "secret" in s] == [
            (name, [(ldap.NSLCD_CONF_FILE, 0o400), (ldap.CA_FILE, 0o644)])], role
        assert {"name": "users", "mountPath": "/var/lib/extrausers", "readOnly": True} in \
            container(result, role)["volumeMounts"], role
        assert {v for v, found in secrets_of(spec).items() if name in found} == {"users"}, role


def test_with_ldap_only_the_slurm_containers_get_the_bind_password():
    """slurm-exporter beside slurmctld runs as its own user and needs no directory: it never mounts the Secret."""
    spec = pod(dist_ldap(), "slurmctld")
    assert [c["name"] for c in spec["containers"]] == ["slurm", "slurm-exporter"]
    assert mounted_by(spec, "users") == {"slurm"}


def test_control_without_ldap_the_roles_directory_volume_is_the_configmap_alone():
    result = dist()
    assert not [r for r in result.of_type(SECRET) if r.name == "directory-ldap"]
    for role in ("slurmctld", "accounting", "node"):
        users = next(v for v in pod(result, role)["volumes"] if v["name"] == "users")
        assert "configMap" in users and "projected" not in users, role
