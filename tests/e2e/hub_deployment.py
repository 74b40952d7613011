"""A real JupyterHub on a deployed stack, run as the official chart (z2jh 4.3.3) runs it, from the chart values the
program computes. `deployment` is a stack's (tests/e2e/deployment.Deployment: `cluster` in test_03, the `site`
stack's clients of an outside Slurm in test_07, the distributed deployment in test_10, ...). None has a JupyterHub
release (the chart cannot be fetched here), so the tests deploy:

- images built here with podman (tests/e2e/hub/): the hub (jupyterhub 5.4.4 + jupyterhub-kubespawner 7.0.0, the
  chart's hub image's versions) and the proxy (configurable-http-proxy 5.2.0 from npm, the chart's proxy's); the
  user servers run the stack's own slurm-jupyter-notebook (the token service's image), pinned by digest through
  `split_image_ref()`;
- the values: `components.jupyterhub.jupyterhub_values()` for the stack's Slurm files and munge key, as the
  program's Pulumi Release hands them to Helm (nulls dropped), Helm-merged over the chart's default values.yaml;
  the hub's configuration from them by tests/e2e/hub_config.py (the chart's semantics);
- the chart's objects, with the chart's names, for what this needs: ServiceAccount, Role and RoleBinding `hub` (the
  Role's rules are the chart's templates/hub/rbac.yaml), Secrets `hub` (configuration, proxy auth token) and
  `singleuser` (extraFiles), the hub database's claim `hub-db-dir`, Deployments `hub` and `proxy`, Services `hub`,
  `proxy-api` and `proxy-public`, and the NetworkPolicies `hub`, `proxy` and `singleuser` (chart_network_policies():
  built from the values as the chart's templates render them, so that this cluster's policy engine judges the hub's
  traffic as it would the chart's). Pod labels (the hub.jupyter.org/network-access-* ones those policies read
  included), pod and container security contexts, probes and the proxy's arguments come from the values / the
  chart's templates/{hub,proxy}/deployment.yaml. KubeSpawner then makes the users' pods and claims through the
  Kubernetes API.

Users reach it as the chart's users do: `kubectl port-forward service/proxy-public` (the stack output
jupyterhubAccess) and the login form, with the password of the values' hub.config.SharedPasswordAuthenticator.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Collection, Iterator, Optional, Sequence

import requests

from components import restd, token_service
from components.chart_values import with_user_values
from components.jupyterhub import APP as HUB_APP
from components.jupyterhub import HubLdap, jupyterhub_values, split_image_ref
from tests.e2e import hub_config
from tests.e2e.deployment import Deployment
from tests.e2e.kube import Pod
from tests.helm import chart, helm_merge
from tests.hub_egress import hub_users_egress
from tests.images.slurm_containers import WaitTimeout, podman, podman_build, wait_until

HUB_IMAGES = Path(__file__).resolve().parent / "hub"  # Dockerfiles of the hub and the proxy
E2E_REPO = "slurm-cloud-integration-e2e"  # not the stack's repository: built by the tests
CONFIG_PATH = "/usr/local/etc/jupyterhub/jupyterhub_config.py"  # where the chart mounts it
AUTH_TOKEN_KEY = "hub.config.ConfigurableHTTPProxy.auth_token"  # the chart's key in the `hub` Secret
CHP_PORT, PUBLIC_PORT = 8000, 80


# --- images -----------------------------------------------------------------------------------------------------
def push(name: str) -> str:
    """podman push NAME (registry/repo:tag); returns `registry/repo@sha256:...`."""
    with tempfile.TemporaryDirectory() as d:
        digest_file = os.path.join(d, "digest")
        podman("push", "--digestfile", digest_file, name, timeout=600)
        digest = Path(digest_file).read_text().strip()
    return f"{name.rsplit(':', 1)[0]}@{digest}"


def registry_name(image: str, tag: str = "e2e") -> str:
    return f"{os.environ.get('SCI_REGISTRY', '127.0.0.1:5000')}/{E2E_REPO}/{image}:{tag}"


def build_hub_image(which: str, tag: str | None = None) -> str:
    """podman build tests/e2e/hub/WHICH (`hub` or `proxy`); returns the tag (default: its $SCI_REGISTRY name)."""
    tag = tag or registry_name({"hub": "jupyterhub", "proxy": "configurable-http-proxy"}[which])
    podman_build(str(HUB_IMAGES / which), tag, ca_certs=True)
    return tag


def hub_images(deployment: Deployment) -> dict[str, str]:
    """{"notebook", "hub", "proxy"}: the stack's notebook image (the token service runs it too) and the hub's and
    proxy's, built here and pushed to the local registry; references by digest."""
    return {"notebook": deployment.app(token_service.APP).spec["containers"][0]["image"],
            "hub": push(build_hub_image("hub")), "proxy": push(build_hub_image("proxy"))}


# --- values -----------------------------------------------------------------------------------------------------
def without_nulls(values):
    """What a `helm.v3.Release` hands Helm: Pulumi drops null map entries at every depth before the provider sees
    them (pulumi-kubernetes provider/pkg/provider/helm_release.go unmarshals the inputs with SkipNulls: true; pulumi
    sdk go/common/resource/plugin/rpc.go UnmarshalProperties skips them recursively), so a null cannot remove a chart
    default: the default stays."""
    if isinstance(values, dict):
        return {k: without_nulls(v) for k, v in values.items() if v is not None}
    return [without_nulls(v) for v in values] if isinstance(values, list) else values


# What a user would give as the stack setting jupyterhub.values: an authenticator setting, to see it take effect.
USER_VALUES = {"hub": {"config": {"Authenticator": {"blocked_users": ["mallory"]}}}}


def chart_values(deployment: Deployment, notebook_ref: str, token_url: str, tag: str = "e2e",
                 egress: Sequence[dict] = (), user_values: dict = USER_VALUES,
                 metrics: Optional[dict] = None, hub_ldap: Optional[HubLdap] = None) -> dict:
    """jupyterhub_values() for the stack's Slurm files and client environment, user directory, home claim, token
    service, `egress` (hub_users_egress()), `metrics` (hub_metrics_values()) and `hub_ldap` (config `ldap`: logins
    and each user's ids from the site's directory, the stack's directory then empty), with `user_values` over them, as
    the program's Release gets them (components.chart_values.with_user_values: owned keys refused, schema checked;
    no nulls), checked to be all mapped by hub_config, Helm-merged over the chart's defaults."""
    name, image_tag = split_image_ref(notebook_ref, tag)
    users, groups = deployment.directory()
    values = jupyterhub_values(image_name=name, image_tag=image_tag, config_files=deployment.config_files(),
                               slurm_env=deployment.slurm_env(), users=users, groups=groups,
                               home_claim=deployment.home_claim(), token_url=token_url,
                               hub_password=secrets.token_hex(16), egress=egress, metrics=metrics, hub_ldap=hub_ldap)
    defaults, schema = chart()
    values = with_user_values(values, user_values, defaults, schema)
    values = json.loads(json.dumps(values))
    hub_config.check_mapped(values)
    return helm_merge(defaults, without_nulls(values))


def password(values: dict) -> str:
    return values["hub"]["config"]["SharedPasswordAuthenticator"]["user_password"]


# --- the chart's objects ----------------------------------------------------------------------------------------
def labels(component: str) -> dict:
    """The chart's matchLabels (app, release, component)."""
    return {"app": "jupyterhub", "release": hub_config.RELEASE, "component": component}


def pod_labels(component: str, *access: str, extra: Optional[dict] = None) -> dict:
    """The labels of the chart's hub and proxy pods: its matchLabelsLegacyAndModern (templates/_helpers.tpl: the
    matchLabels and app.kubernetes.io/{component,name,instance}), `hub.jupyter.org/network-access-ACCESS: "true"`
    for each of `access` (what the other components' NetworkPolicies admit), and the values' `extra` (hub.labels,
    proxy.labels)."""
    return {**labels(component), "app.kubernetes.io/component": component, "app.kubernetes.io/name": "jupyterhub",
            "app.kubernetes.io/instance": hub_config.RELEASE,
            **{f"hub.jupyter.org/network-access-{a}": "true" for a in access}, **(extra or {})}


# --- the chart's NetworkPolicies --------------------------------------------------------------------------------
PRIVATE_IPS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")  # the chart's "private IPs" (_helpers-netpol.tpl)


def egress_rules(values: dict, netpol: dict) -> list[dict]:
    """The chart's templates/_helpers-netpol.tpl `jupyterhub.networkPolicy.renderEgressRules` for one component's
    networkPolicy values: a rule per egressAllowRules flag that is set, then the values' own `egress` rules."""
    allow = netpol.get("egressAllowRules") or {}
    metadata = f"{values['singleuser']['cloudMetadata']['ip']}/32"

    def private() -> list[dict]:
        return [{"ipBlock": {"cidr": cidr}} for cidr in PRIVATE_IPS]

    rules: list[dict] = []
    dns_to = ([{"ipBlock": {"cidr": metadata}}] if allow.get("dnsPortsCloudMetadataServer") else []) + \
        ([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]
         if allow.get("dnsPortsKubeSystemNamespace") else []) + \
        (private() if allow.get("dnsPortsPrivateIPs") else [])
    if dns_to:
        rules.append({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "to": dns_to})
    if allow.get("nonPrivateIPs"):
        rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE_IPS, metadata]}}]})
    if allow.get("privateIPs"):
        rules.append({"to": private()})
    if allow.get("cloudMetadataServer"):
        rules.append({"to": [{"ipBlock": {"cidr": metadata}}]})
    return rules + list(netpol.get("egress") or [])


def ingress_rules(netpol: dict, *by_access: tuple[str, Sequence]) -> list[dict]:
    """The chart's ingress rules of one component (templates/{hub,proxy,singleuser}/netpol.yaml): allowedIngressPorts
    from anywhere; for each (ACCESS, ports), those ports from the pods labelled hub.jupyter.org/network-access-ACCESS
    (with interNamespaceAccessLabels "accept": in any namespace, and from namespaces so labelled); the values' own
    `ingress` rules."""
    rules: list[dict] = []
    if netpol.get("allowedIngressPorts"):
        rules.append({"ports": [{"port": p} for p in netpol["allowedIngressPorts"]]})
    for access, ports in by_access:
        label = {f"hub.jupyter.org/network-access-{access}": "true"}
        peers: list[dict] = [{"podSelector": {"matchLabels": label}}]
        if netpol.get("interNamespaceAccessLabels") == "accept":
            peers[0]["namespaceSelector"] = {"matchLabels": {}}
            peers.append({"namespaceSelector": {"matchLabels": label}})
        rules.append({"ports": [{"port": p} for p in ports], "from": peers})
    return rules + list(netpol.get("ingress") or [])


def to_pods(component: str, *ports: int) -> dict:
    """An egress rule to `ports` of the chart's pods of `component` (by its matchLabels)."""
    return {"to": [{"podSelector": {"matchLabels": labels(component)}}], "ports": [{"port": p} for p in ports]}


def chart_network_policies(values: dict, namespace: str) -> list[dict]:
    """The chart's NetworkPolicies `hub`, `proxy` and `singleuser` as z2jh 4.3.3 renders them from `values` (the
    merged values; each only if its networkPolicy.enabled): templates/hub/netpol.yaml, templates/proxy/netpol.yaml,
    templates/singleuser/netpol.yaml with the egress rules of templates/_helpers-netpol.tpl. Ports by name are the
    containers' port names (hub: http; proxy: http, https, api; KubeSpawner's notebook-port)."""
    hub, chp, su = values["hub"]["networkPolicy"], values["proxy"]["chp"]["networkPolicy"], \
        values["singleuser"]["networkPolicy"]
    https = values["proxy"].get("https") or {}
    proxy_http = ["http", *(["https"] if https.get("enabled") and https.get("type") in ("manual", "secret") else [])]
    specs = (
        ("hub", hub, "hub", ingress_rules(hub, ("hub", ["http"])),
         [to_pods("proxy", hub_config.PROXY_API_PORT), to_pods("singleuser-server", 8888)]),
        ("proxy", chp, "proxy", ingress_rules(chp, ("proxy-http", proxy_http), ("proxy-api", ["api"])),
         [to_pods("hub", hub_config.HUB_PORT), to_pods("singleuser-server", 8888)]),
        ("singleuser", su, "singleuser-server", ingress_rules(su, ("singleuser", ["notebook-port"])),
         [to_pods("hub", hub_config.HUB_PORT), to_pods("proxy", CHP_PORT), to_pods("autohttps", 8080, 8443)]),
    )
    return [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": name, "namespace": namespace, "labels": pod_labels(name)},  # not Helm's chart, heritage
             "spec": {"podSelector": {"matchLabels": labels(component)}, "policyTypes": ["Ingress", "Egress"],
                      "ingress": ingress, "egress": egress + egress_rules(values, netpol)}}
            for name, netpol, component, ingress, egress in specs if netpol.get("enabled")]


def restd_admits_hub_users(deployment: Deployment) -> bool:
    """Does the stack's slurmrestd NetworkPolicy admit the hub's user pods (config restd.allowedClients lists
    jupyterhub, as by default)? False without slurmrestd."""
    for policy in deployment.kube.of_kind("networkpolicy"):
        spec = policy["spec"]
        if (spec.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name") != restd.APP:
            continue
        return any(HUB_APP in e["values"] for rule in spec.get("ingress") or [] for peer in rule.get("from") or []
                   for e in (peer.get("podSelector") or {}).get("matchExpressions") or []
                   if e["key"] == "app.kubernetes.io/name" and e["operator"] == "In")
    return False


def single_node_egress(deployment: Deployment) -> list[dict]:
    """singleuser.networkPolicy.egress as the program computes it for a stack with the single node (the `cluster`
    stack): slurmctld and slurmdbd, slurmrestd if its policy admits the user pods, the token service."""
    return hub_users_egress(restd=restd_admits_hub_users(deployment))


def hub_objects(values: dict, namespace: str, hub_image: str, proxy_image: str, auth_token: str) -> list[dict]:
    """The objects in creation order (Services before the pods that look them up)."""
    hub, chp = values["hub"], values["proxy"]["chp"]

    def meta(name: str, **extra) -> dict:
        return {"name": name, "namespace": namespace, **extra}

    def probe(path: str, port: str, cfg: dict) -> dict:
        return {"httpGet": {"path": path, "port": port}, "periodSeconds": cfg["periodSeconds"],
                "timeoutSeconds": cfg["timeoutSeconds"], "failureThreshold": cfg["failureThreshold"]}

    token_env = {"name": "CONFIGPROXY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hub", "key": AUTH_TOKEN_KEY}}}
    sqlite_pvc = hub["db"]["type"] == "sqlite-pvc"
    objects = [
        *chart_network_policies(values, namespace),  # first: no pod of the hub's is ever without its policy
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("hub")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta("hub"), "rules": [
            {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
             "verbs": ["get", "watch", "list", "create", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta("hub"),
         "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": namespace}],
         "roleRef": {"kind": "Role", "name": "hub", "apiGroup": "rbac.authorization.k8s.io"}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta("hub"),
         "stringData": {"jupyterhub_config.py": hub_config.render(values), AUTH_TOKEN_KEY: auth_token}},
        hub_config.singleuser_secret(values, namespace),
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("hub"),
         "spec": {"selector": labels("hub"), "ports": [{"name": "hub", "port": hub_config.HUB_PORT,
                                                         "targetPort": "http"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("proxy-api"),
         "spec": {"selector": labels("proxy"), "ports": [{"port": hub_config.PROXY_API_PORT, "targetPort": "api"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("proxy-public"),
         "spec": {"type": values["proxy"]["service"]["type"], "selector": labels("proxy"),
                  "ports": [{"name": "http", "port": PUBLIC_PORT, "targetPort": "http"}]}},
    ]
    if sqlite_pvc:
        pvc = hub["db"]["pvc"]
        objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("hub-db-dir"),
                        "spec": {"accessModes": pvc["accessModes"], "resources": {"requests": {"storage": pvc["storage"]}},
                                 **({"storageClassName": pvc["storageClassName"]} if pvc.get("storageClassName") else {})}})
    hub_pod = {
        "serviceAccountName": "hub", "securityContext": hub["podSecurityContext"],
        "volumes": [{"name": "secret", "secret": {"secretName": "hub"}},
                    *([{"name": "pvc", "persistentVolumeClaim": {"claimName": "hub-db-dir"}}] if sqlite_pvc else [])],
        "containers": [{
            "name": "hub", "image": hub_image, "imagePullPolicy": "IfNotPresent",
            "args": ["jupyterhub", "--config", CONFIG_PATH, *(["--upgrade-db"] if sqlite_pvc else [])],
            "securityContext": hub["containerSecurityContext"],
            "env": [{"name": "PYTHONUNBUFFERED", "value": "1"},
                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    token_env],
            "ports": [{"name": "http", "containerPort": hub_config.HUB_PORT}],
            "readinessProbe": probe("/hub/health", "http", hub["readinessProbe"]),
            "volumeMounts": [{"name": "secret", "mountPath": CONFIG_PATH, "subPath": "jupyterhub_config.py"},
                             *([{"name": "pvc", "mountPath": "/srv/jupyterhub"}] if sqlite_pvc else [])]}]}
    hub_url = f"http://hub:{hub_config.HUB_PORT}"
    proxy_pod = {
        "containers": [{
            "name": "chp", "image": proxy_image, "imagePullPolicy": "IfNotPresent",
            "command": ["configurable-http-proxy", "--ip=", "--api-ip=", f"--api-port={hub_config.PROXY_API_PORT}",
                        f"--default-target={hub_url}", f"--error-target={hub_url}/hub/error", f"--port={CHP_PORT}",
                        *(["--host-routing"] if hub["config"].get("JupyterHub", {}).get("subdomain_host") else [])],
            "securityContext": chp["containerSecurityContext"],
            "env": [token_env],
            "ports": [{"name": "http", "containerPort": CHP_PORT},
                      {"name": "api", "containerPort": hub_config.PROXY_API_PORT}],
            "readinessProbe": probe("/_chp_healthz", "http", chp["readinessProbe"])}]}
    # The pods' labels: templates/hub/deployment.yaml and templates/proxy/deployment.yaml.
    template_labels = {"hub": pod_labels("hub", "proxy-api", "proxy-http", "singleuser", extra=hub.get("labels")),
                       "proxy": pod_labels("proxy", "hub", "singleuser", extra=values["proxy"].get("labels"))}
    annotations = {"hub": {"annotations": hub["annotations"]} if hub.get("annotations") else {}, "proxy": {}}
    for name, spec in (("hub", hub_pod), ("proxy", proxy_pod)):
        objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name),
                        "spec": {"replicas": 1, "selector": {"matchLabels": labels(name)},
                                 "template": {"metadata": {"labels": template_labels[name], **annotations[name]},
                                              "spec": spec}}})
    return objects


def pull_image(deployment: Deployment, image: str, timeout: float = 600) -> None:
    """Put `image` on the node before users log in, as the chart's image pullers do (a pod that only pulls it)."""
    kube = deployment.kube
    name = f"image-puller-{secrets.token_hex(3)}"
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": kube.namespace},
                 "spec": {"restartPolicy": "Never", "containers": [
                     {"name": "pull", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["true"]}]}})
    try:
        code = kube.wait_exited(kube.pod(name), timeout)
        assert code == 0, f"the image puller exited {code}"
    finally:
        kube.delete("pod", name)


def wait_rollout(deployment: Deployment, name: str, timeout: float = 300) -> None:
    proc = deployment.kube.kubectl("rollout", "status", f"deployment/{name}", f"--timeout={int(timeout)}s",
                                   check=False, timeout=timeout + 10)
    if proc.returncode != 0:
        logs = deployment.kube.kubectl("logs", f"deployment/{name}", "--tail=60", check=False)
        events = deployment.kube.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:]
        raise WaitTimeout(f"deployment {name} not ready within {timeout:g}s: {proc.stderr}\n{logs.stdout}"
                          f"{logs.stderr}\n{events}")


@contextmanager
def running_hub(deployment: Deployment, images: dict[str, str], values: dict,
                timings: Optional[dict[str, float]] = None) -> Iterator[str]:
    """Deploys the hub (hub_objects) and yields its public URL (public_url) once hub and proxy are ready and the
    notebook image is on the node; `timings` gets "JupyterHub hub and proxy ready" (s). Afterwards removes the hub's
    objects and the user pods KubeSpawner made."""
    d = deployment
    objects = hub_objects(values, d.namespace, images["hub"], images["proxy"], secrets.token_hex(32))
    t0 = time.monotonic()
    try:
        for obj in objects:
            d.kube.create(obj)
        wait_rollout(d, "proxy")
        wait_rollout(d, "hub")
        # Ready by their probes is not yet reachable through the proxy: the Services may not route to the new pods
        # yet (a first page once got the proxy's bare error status, once a 404). The hub's own answer to the login
        # page will do: a 200, or with subdomain_host a redirect to its host; the hub's have X-JupyterHub-Version.
        def login_page_served() -> bool:
            r = requests.get(f"{public_url(d)}/hub/login", timeout=10, allow_redirects=False)
            return r.status_code < 400 and "X-JupyterHub-Version" in r.headers
        wait_until(login_page_served, 60, "the hub's login page through the proxy", interval=0.5)
        if timings is not None:
            timings["JupyterHub hub and proxy ready"] = time.monotonic() - t0
        pull_image(d, images["notebook"])
        yield public_url(d)
    finally:
        d.kube.delete_labelled("pod", "component=singleuser-server")
        for obj in reversed(objects):
            d.kube.delete(obj["kind"], obj["metadata"]["name"])


def hub_logs(deployment: Deployment):
    """A function giving the hub's log tail (for start_and_time's `logs`)."""
    return lambda: deployment.kube.kubectl("logs", "deployment/hub", "--tail=40", check=False).stdout


# --- a user, through the proxy ----------------------------------------------------------------------------------
class HubUser:
    """One user's browser-like session on the hub's public URL (through configurable-http-proxy)."""

    def __init__(self, url: str, name: str):
        self.url, self.name = url, name
        self.session = requests.Session()
        self.token = ""

    def login(self, password: str) -> requests.Response:
        """The hub's login form (GET for its XSRF cookie, POST); a 302 on success, 403 on a wrong password. Then,
        as a browser would, a page of the hub, which gives the XSRF cookie of the logged-in session."""
        self.session.get(f"{self.url}/hub/login", timeout=30).raise_for_status()
        r = self.session.post(f"{self.url}/hub/login", timeout=30, allow_redirects=False,
                              data={"username": self.name, "password": password,
                                    "_xsrf": self.session.cookies.get("_xsrf", path="/hub/")})
        if r.status_code == 302:
            self.session.get(f"{self.url}/hub/home", timeout=30).raise_for_status()
        return r

    def hub_api(self, method: str, path: str, **kw) -> requests.Response:
        """The hub's REST API with the login cookie (and the XSRF header cookie-authenticated calls need)."""
        headers = {"X-XSRFToken": self.session.cookies.get("_xsrf", path="/hub/") or ""}
        return self.session.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kw)

    def start_server(self) -> None:
        r = self.hub_api("POST", f"/users/{self.name}/server")
        assert r.status_code in (201, 202), f"{self.name}: starting the server: {r.status_code} {r.text}"

    def server_ready(self) -> bool:
        r = self.hub_api("GET", f"/users/{self.name}")
        r.raise_for_status()
        server = r.json()["servers"].get("")
        if server is None:
            raise WaitTimeout(f"{self.name}'s server is gone (the spawn failed): {r.json()}")
        return bool(server.get("ready"))

    def new_token(self) -> str:
        r = self.hub_api("POST", f"/users/{self.name}/tokens", json={"note": "e2e", "expires_in": 3600})
        assert r.status_code in (200, 201), r.text
        self.token = r.json()["token"]
        return self.token

    def server(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        """A request to the user's server through the proxy (/user/NAME/PATH) with a token (default: theirs)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"token {token}"} if token else {}
        return requests.request(method, f"{self.url}/user/{self.name}{path}", headers=headers, timeout=60,
                                allow_redirects=False, **kw)


def crash_check(deployment: Deployment, name: str):
    """A check that fails at once, with the log of the crashed container, if NAME's server pod has restarted
    (KubeSpawner itself would wait for it until singleuser.startTimeout)."""
    def check() -> bool:
        proc = deployment.kube.kubectl("get", "pod", f"jupyter-{name}", "-o", "json", check=False)
        if proc.returncode != 0:  # not made yet
            return True
        if any(s.get("restartCount") for s in json.loads(proc.stdout)["status"].get("containerStatuses") or []):
            log = "".join(deployment.kube.kubectl("logs", f"jupyter-{name}", *previous, "--tail=20", check=False).stdout
                          for previous in (["--previous"], []))
            raise WaitTimeout(f"{name}'s server pod crashed and restarts:\n{log}")
        return True
    return check


def start_and_time(user: HubUser, password: str, crashed=lambda: True, timeout: float = 300, logs=lambda: "") -> float:
    """Log in, start the server, wait until it answers through the proxy; the seconds from login to that.
    `crashed()` raises to stop waiting (see crash_check)."""
    t0 = time.monotonic()
    r = user.login(password)
    assert r.status_code == 302, f"{user.name}: login answered {r.status_code}: {r.text[-500:]}"
    user.start_server()
    try:
        wait_until(lambda: crashed() and user.server_ready(), timeout, f"the hub to report {user.name}'s server ready",
                   interval=0.5)
    except WaitTimeout as e:
        raise WaitTimeout(f"{e}\n--- hub:\n{logs()}") from None
    user.new_token()
    wait_until(lambda: user.server("GET", "/api/status").status_code == 200, 60,
               f"{user.name}'s server to answer through the proxy", logs, interval=0.2)
    return time.monotonic() - t0


def user_pod(deployment: Deployment, name: str) -> Pod:
    return deployment.kube.pod(f"jupyter-{name}")  # KubeSpawner's pod_name_template, the chart leaves it


def in_pod(deployment: Deployment, name: str, script: str, check: bool = True, timeout: float = 60):
    """`bash -c SCRIPT` in NAME's server pod, as the pod runs (their uid), with the pod's environment."""
    return deployment.kube.exec(user_pod(deployment, name), "bash", "-c", script, check=check, timeout=timeout)


def job_from_home(deployment: Deployment, user: HubUser, how: str, hosts: Collection[str]) -> str:
    """One job of `user`'s as they would run it: written in ~/p with the file browser's API, submitted from their
    terminal (`how` "terminal") or the Slurm panel ("panel"), COMPLETED as them (sacct names them and the job), run
    in ~/p on one of `hosts`, its output read back through the file browser's API. The job's id."""
    d, name = deployment, user.name
    job_name = f"{name}-{how}-{secrets.token_hex(2)}"
    r = user.server("PUT", "/api/contents/p", json={"type": "directory"})
    assert r.status_code in (200, 201), r.text
    r = user.server("PUT", f"/api/contents/p/{job_name}.sh",
                    json={"type": "file", "format": "text", "content": job_script(job_name)})
    assert r.status_code in (200, 201), r.text
    if how == "terminal":
        job = in_pod(d, name, f"cd ~{name}/p && sbatch --parsable {job_name}.sh").stdout.strip().split(";")[0]
    else:
        r = user.server("POST", "/jupyterlab_slurm/sbatch",
                        json={"inputPath": f"/home/{name}/p/{job_name}.sh", "outputPath": f"/home/{name}/p"})
        body = r.json()
        assert r.status_code == 200 and body.get("success"), body
        job = str(body["data"]["jobId"])
    assert d.wait_job(job).startswith("COMPLETED")
    assert d.sacct(job, "User,JobName") == f"{name}|{job_name}"
    r = user.server("GET", f"/api/contents/p/{job_name}-{job}.out")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    out = r.json()["content"].strip()
    ran = re.fullmatch(rf"{job_name} on (\S+) as {name} in /home/{name}/p", out)
    assert ran and ran[1] in hosts, (out, hosts)
    return job


def public_url(deployment: Deployment) -> str:
    """The proxy's public Service at its cluster IP, which kube-proxy routes on this machine (as scripts/run-local's
    addresses). Not `kubectl port-forward`: through it, two of four runs lost a request mid-test ("Remote end closed
    connection without response"); through the cluster IP, none of the runs since."""
    ip = deployment.kube.get("service", "proxy-public")["spec"]["clusterIP"]
    return f"http://{ip}:{PUBLIC_PORT}"


def job_script(name: str) -> str:
    """A job that writes its output beside the script, in the submit directory (under the user's home)."""
    return f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --output={name}-%j.out\n" \
           f"echo {name} on $(hostname) as $(id -un) in $(pwd)\n"
