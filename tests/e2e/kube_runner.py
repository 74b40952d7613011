"""Runs the Kubernetes objects a Pulumi stack rendered (render_yaml_to_directory) on this machine, with podman.

There is no Kubernetes here (no kube-apiserver, kubelet, kind or k3s can be installed), and `podman kube play`
cannot run what the stack renders (no StatefulSet with volumeClaimTemplates, no projected volumes, no Services).
This module is the small stand-in: it reads the rendered YAML, works out the pods the workload controllers
would create, and runs each pod's containers with podman, as close to what a kubelet would do as this takes.
It never holds a second copy of any object: everything comes from the rendered directory, plus objects a test
creates on purpose with `create()` (what `kubectl create -f` would do).

Real (taken from the rendered objects and done for real):
- Namespace, ConfigMap, Secret (`data` and `stringData`), Service, StatefulSet (pod `<name>-<ordinal>`,
  hostname = pod name, one PVC per volumeClaimTemplate named `<claim>-<sts>-<ordinal>` that outlives the pod),
  Deployment (pod `<name>-<template hash>-<suffix>`), PersistentVolumeClaim.
- Pod templates: image (pulled from the registry by digest; imagePullPolicy -> --pull), command/args with
  Kubernetes semantics (command replaces ENTRYPOINT, args replace CMD), workingDir, env (value,
  secretKeyRef, configMapKeyRef, fieldRef metadata.name/namespace and status.podIP; envFrom), hostname,
  subdomain, volumes (configMap, secret, projected with configMap/secret sources, items, modes and
  defaultMode, materialised as root-owned files and mounted read-only; persistentVolumeClaim and
  volumeClaimTemplates as podman volumes; emptyDir as a podman volume deleted with the pod; subPath),
  securityContext (runAsUser/runAsGroup, runAsNonRoot checked, capabilities drop/add,
  allowPrivilegeEscalation=false as no-new-privileges, readOnlyRootFilesystem, privileged, seccomp
  Unconfined, fsGroup as group ownership + group-read of the volume files and a supplementary group),
  resources.limits (cpu, memory), terminationGracePeriodSeconds (stop timeout), restartPolicy Always.
- Probes, as readiness waits: startupProbe then readinessProbe, exec (podman exec with timeoutSeconds),
  tcpSocket and httpGet (from the host to the pod's address), success/failure as the kubelet counts them.
- Cluster DNS for Services: every pod has its own /etc/hosts (as the kubelet writes one) in which each
  Service name resolves to the addresses of the pods its selector matches: `<svc>.<ns>.svc.cluster.local`,
  `<svc>.<ns>.svc`, `<svc>.<ns>`, and `<svc>` within the namespace; StatefulSet pods also as
  `<pod>.<svc>.<ns>.svc.cluster.local`. The files are rewritten whenever pods change.
- Deleting: `apply()` after the objects disappeared from the directory (e.g. `pulumi destroy`) deletes the
  pods of removed workloads; a removed Namespace takes everything in it, PVCs (their podman volumes) included.

Emulated or not done (say so when reading a result):
- No kube-proxy: a ClusterIP Service name resolves straight to its pods' addresses (not a virtual IP), so a
  Service whose port differs from its targetPort is refused rather than remapped; not-ready pods stay in DNS.
- No NetworkPolicy enforcement: every pod reaches every other (one podman bridge network).
- Probes are polled every min(periodSeconds, 1 s) rather than every periodSeconds (waits end sooner), and
  livenessProbes are not evaluated after start-up; restarts after a crash are podman's --restart=always,
  without the kubelet's back-off.
- A pod keeps its address when it is re-created (Kubernetes gives a new one and updates DNS).
- One container per pod (what the stack renders); initContainers, sidecars, service account tokens
  (the stack sets automountServiceAccountToken false), Service environment variables (enableServiceLinks is
  false), scheduling, requests, storage sizes and storage classes are not emulated.
- Secret and ConfigMap files are plain files in a private directory under $SCI_CACHE/e2e (kubelet: tmpfs with
  ..data symlinks) and are not refreshed when the object changes.

  python -m tests.e2e.kube_runner up [RENDER_DIR]     start (or update) and wait until ready; prints the pods
  python -m tests.e2e.kube_runner down                delete everything it made (containers, volumes, network)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

DEFAULT_CACHE = "/var/cache/slurm-cloud-integration"
LABEL = "io.slurm-cloud-integration.e2e"  # every podman object made here carries LABEL=<prefix>
CLUSTER_DOMAIN = "cluster.local"


class KubeRunnerError(RuntimeError):
    pass


class NotReady(AssertionError):
    pass


# --- podman ----------------------------------------------------------------------------------------------------
def podman_env() -> dict:
    env = dict(os.environ)
    conf = os.path.join(env.get("SCI_CACHE", DEFAULT_CACHE), "containers.conf")
    if "CONTAINERS_CONF" not in env and os.path.exists(conf):
        env["CONTAINERS_CONF"] = conf  # runc, cgroupfs, low ulimits (scripts/env.sh)
    return env


def podman(*args: str, check: bool = True, timeout: float = 120, input: Optional[str] = None
           ) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                              env=podman_env(), input=input)
    except subprocess.TimeoutExpired as e:
        raise KubeRunnerError(f"podman {' '.join(args)} did not finish within {timeout}s: {e.stderr}") from None
    if check and proc.returncode != 0:
        raise KubeRunnerError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               detail: Callable[[], str] = lambda: "", interval: float = 0.2):
    """Poll `condition` until truthy (returned); after `timeout` s raise NotReady naming `what`, the last error
    the condition raised and `detail()`."""
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except NotReady:
            raise
        except Exception as e:  # not there yet
            last = e
        if time.monotonic() >= deadline:
            extra = detail()
            raise NotReady(f"timed out after {timeout:g}s waiting for {what}" + (f"; last error: {last}" if last else "")
                           + (f"\n{extra}" if extra else ""))
        time.sleep(interval)


# --- objects ---------------------------------------------------------------------------------------------------
def load_objects(directory: Path) -> list[dict]:
    objects = []
    for path in sorted(Path(directory).rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind"):
                objects.append(doc)
    return objects


def _key(obj: dict) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return obj["kind"], meta.get("namespace") or "default", meta["name"]


def _dns_label(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass
class Pod:
    """A pod the runner runs: one podman container named `container`."""

    name: str
    namespace: str
    labels: dict
    spec: dict
    owner: str  # "StatefulSet/name", "Deployment/name" or "Pod/name" (created by a test)
    ip: str = ""
    template_hash: str = ""
    container: str = ""  # podman container name
    pvc_volumes: dict = field(default_factory=dict)  # pod volume name -> podman volume

    @property
    def hostname(self) -> str:
        return self.spec.get("hostname") or self.name[:63]


class KubeRunner:
    """Runs the objects of `render_dir` (and those `create()`d) as podman containers; see the module docstring."""

    def __init__(self, render_dir: Optional[Path] = None, prefix: str = "sci-e2e"):
        self.render_dir = Path(render_dir) if render_dir else None
        self.prefix = prefix
        self.network = prefix
        cache = Path(os.environ.get("SCI_CACHE", DEFAULT_CACHE))
        self.workdir = cache / "e2e" / prefix  # materialised Secrets live here: private to root
        self.created: dict[tuple, dict] = {}  # objects made with create(), beside the rendered ones
        self.objects: dict[tuple, dict] = {}
        self.pods: dict[tuple[str, str], Pod] = {}  # (namespace, pod name) -> running pod
        self.container_ids: set[str] = set()  # every container ever started (to look for leftovers)
        self._adopt()

    # --- reading the objects ---------------------------------------------------------------------------------
    def reload(self) -> None:
        objects = {}
        if self.render_dir is not None and self.render_dir.is_dir():
            for obj in load_objects(self.render_dir):
                objects[_key(obj)] = obj
        objects.update(self.created)
        # A Namespace that no longer exists takes everything in it.
        namespaces = {k[2] for k in objects if k[0] == "Namespace"} | {"default"}
        self.objects = {k: o for k, o in objects.items() if k[0] == "Namespace" or k[1] in namespaces}

    def get(self, kind: str, namespace: str, name: str) -> dict:
        try:
            return self.objects[(kind, namespace, name)]
        except KeyError:
            raise KubeRunnerError(f"{kind} {namespace}/{name} does not exist (referenced by a pod)") from None

    def of_kind(self, kind: str) -> list[dict]:
        return [o for k, o in self.objects.items() if k[0] == kind]

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        secret = self.get("Secret", namespace, name)
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
        return data

    def config_map_data(self, namespace: str, name: str) -> dict[str, bytes]:
        cm = self.get("ConfigMap", namespace, name)
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
        return data

    def create(self, obj: dict) -> dict:
        """Add an object beside the rendered ones (a test's `kubectl create -f`): a Secret, ConfigMap or Pod.
        `apply()` runs a created Pod."""
        obj = json.loads(json.dumps(obj))
        obj.setdefault("metadata", {}).setdefault("namespace", "default")
        self.created[_key(obj)] = obj
        return obj

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Forget a created object; `apply()` then deletes its pod."""
        self.created.pop((kind, namespace, name), None)

    # --- desired pods ----------------------------------------------------------------------------------------
    def desired_pods(self) -> list[Pod]:
        pods = []
        for sts in self.of_kind("StatefulSet"):
            meta, spec = sts["metadata"], sts["spec"]
            ns = meta.get("namespace") or "default"
            template = spec["template"]
            for ordinal in range(spec.get("replicas", 1)):
                name = f"{meta['name']}-{ordinal}"
                pod = Pod(name, ns, dict(template["metadata"].get("labels") or {}), template["spec"],
                          f"StatefulSet/{meta['name']}")
                for claim in spec.get("volumeClaimTemplates") or []:
                    claim_name = f"{claim['metadata']['name']}-{name}"
                    pod.pvc_volumes[claim["metadata"]["name"]] = self._volume_name(ns, claim_name)
                pod.spec = dict(pod.spec, hostname=pod.spec.get("hostname") or name)
                if spec.get("serviceName") and not pod.spec.get("subdomain"):
                    pod.spec["subdomain"] = spec["serviceName"]
                pods.append(pod)
        for dep in self.of_kind("Deployment"):
            meta, spec = dep["metadata"], dep["spec"]
            ns = meta.get("namespace") or "default"
            template = spec["template"]
            h = _hash(template)
            for i in range(spec.get("replicas", 1)):
                name = f"{meta['name']}-{h[:10]}-{_hash([h, i])[:5]}"
                pods.append(Pod(name, ns, dict(template["metadata"].get("labels") or {}), template["spec"],
                                f"Deployment/{meta['name']}"))
        for p in self.of_kind("Pod"):
            meta = p["metadata"]
            pods.append(Pod(meta["name"], meta.get("namespace") or "default", dict(meta.get("labels") or {}),
                            p["spec"], f"Pod/{meta['name']}"))
        for pod in pods:
            for vol in pod.spec.get("volumes") or []:
                if "persistentVolumeClaim" in vol:
                    claim = vol["persistentVolumeClaim"]["claimName"]
                    self.get("PersistentVolumeClaim", pod.namespace, claim)
                    pod.pvc_volumes[vol["name"]] = self._volume_name(pod.namespace, claim)
            pod.template_hash = _hash([pod.spec, pod.labels, pod.pvc_volumes])
        return pods

    def _volume_name(self, namespace: str, claim: str) -> str:
        return f"{self.prefix}-{namespace}-{claim}"

    def _container_name(self, pod: Pod) -> str:
        return f"{self.prefix}-{pod.namespace}-{pod.name}"

    # --- reconcile -------------------------------------------------------------------------------------------
    def apply(self) -> list[Pod]:
        """Make the running pods what the objects ask for: start missing pods, replace changed ones, delete
        those whose workload (or namespace) is gone, delete the volumes of deleted PVCs. Returns pods started."""
        self.reload()
        desired = {(p.namespace, p.name): p for p in self.desired_pods()}
        for key, pod in list(self.pods.items()):
            if key not in desired or desired[key].template_hash != pod.template_hash:
                self._delete_pod(pod)
        self._delete_orphan_volumes()
        if not desired:
            self._write_hosts()
            return []
        self._ensure_network()
        new = [p for k, p in desired.items() if k not in self.pods]
        for pod in new:
            pod.ip = self._free_ip()
            pod.container = self._container_name(pod)
            self.pods[(pod.namespace, pod.name)] = pod
        self._write_hosts()
        for pod in new:
            self._start(pod)
        return new

    def _ensure_network(self):
        if podman("network", "exists", self.network, check=False).returncode != 0:
            podman("network", "create", "--label", f"{LABEL}={self.prefix}", self.network)
        info = json.loads(podman("network", "inspect", self.network).stdout)[0]
        subnets = info.get("subnets") or [{"subnet": s["subnet"]} for p in info.get("plugins", [])
                                          for r in (p.get("ipam") or {}).get("ranges", []) for s in r]
        self._subnet = ip_network(subnets[0]["subnet"])

    def _free_ip(self) -> str:
        used = {p.ip for p in self.pods.values()}
        for host in list(self._subnet.hosts())[9:]:  # leave the gateway and the first few alone
            if str(host) not in used:
                return str(host)
        raise KubeRunnerError(f"no free address in {self._subnet}")

    # --- DNS -------------------------------------------------------------------------------------------------
    def service_addresses(self) -> dict[str, dict[str, list[str]]]:
        """{namespace: {service name: [pod addresses]}} as cluster DNS would answer (no virtual IPs)."""
        out: dict[str, dict[str, list[str]]] = {}
        for svc in self.of_kind("Service"):
            meta, spec = svc["metadata"], svc["spec"]
            ns = meta.get("namespace") or "default"
            for port in spec.get("ports") or []:
                target = port.get("targetPort", port["port"])
                if isinstance(target, int) and target != port["port"]:
                    raise KubeRunnerError(f"Service {ns}/{meta['name']} maps port {port['port']} to {target}: "
                                          "no kube-proxy here to remap ports (see the module docstring)")
            selector = spec.get("selector") or {}
            ips = [p.ip for p in self.pods.values()
                   if p.namespace == ns and selector and selector.items() <= p.labels.items()]
            out.setdefault(ns, {})[meta["name"]] = sorted(ips)
        return out

    def hosts_file(self, pod: Pod) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        own = [pod.hostname]
        if pod.spec.get("subdomain"):
            own.insert(0, f"{pod.hostname}.{pod.spec['subdomain']}.{pod.namespace}.svc.{CLUSTER_DOMAIN}")
        lines.append(f"{pod.ip}\t{' '.join(own)}")
        for ns, services in sorted(self.service_addresses().items()):
            for name, ips in sorted(services.items()):
                names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
                if ns == pod.namespace:
                    names.append(name)
                for ip in ips:
                    lines.append(f"{ip}\t{' '.join(names)}")
                # Pods of a StatefulSet whose serviceName is this Service: <pod>.<svc>.<ns>.svc.cluster.local
                for other in self.pods.values():
                    if other.namespace == ns and other.spec.get("subdomain") == name and other is not pod:
                        lines.append(f"{other.ip}\t{other.hostname}.{name}.{ns}.svc.{CLUSTER_DOMAIN}")
        return "\n".join(lines) + "\n"

    def _write_hosts(self):
        for pod in self.pods.values():
            path = self._pod_dir(pod) / "hosts"
            path.parent.mkdir(parents=True, exist_ok=True)
            text = self.hosts_file(pod)
            # Rewrite in place: the file is bind-mounted, a rename would leave the container the old inode.
            with open(path, "a+") as f:
                f.seek(0)
                if f.read() != text:
                    f.seek(0)
                    f.truncate()
                    f.write(text)

    # --- starting a pod --------------------------------------------------------------------------------------
    def _pod_dir(self, pod: Pod) -> Path:
        return self.workdir / pod.namespace / pod.name

    def _start(self, pod: Pod) -> None:
        containers = pod.spec.get("containers") or []
        if len(containers) != 1 or pod.spec.get("initContainers"):
            raise KubeRunnerError(f"pod {pod.namespace}/{pod.name}: only one container and no initContainers are "
                                  "emulated")
        c = containers[0]
        pod_dir = self._pod_dir(pod)
        pod_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        psc = pod.spec.get("securityContext") or {}
        sc = {**{k: v for k, v in psc.items() if k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")},
              **(c.get("securityContext") or {})}
        fs_group = psc.get("fsGroup")

        labels = {LABEL: self.prefix, f"{LABEL}.namespace": pod.namespace, f"{LABEL}.pod": pod.name,
                  f"{LABEL}.owner": pod.owner, f"{LABEL}.hash": pod.template_hash}
        args = ["run", "-d", "--name", pod.container, "--hostname", pod.hostname,
                "--network", self.network, "--ip", pod.ip, "--no-hosts", "--no-healthcheck",
                "-v", f"{pod_dir / 'hosts'}:/etc/hosts",
                "--stop-timeout", str(pod.spec.get("terminationGracePeriodSeconds", 30))]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        restart = pod.spec.get("restartPolicy", "Always")
        args += ["--restart", {"Always": "always", "OnFailure": "on-failure", "Never": "no"}[restart]]
        args += ["--pull", {"IfNotPresent": "missing", "Always": "always", "Never": "never"}[
            c.get("imagePullPolicy") or ("Always" if c["image"].endswith(":latest") else "IfNotPresent")]]

        # securityContext
        user = sc.get("runAsUser")
        if sc.get("runAsNonRoot") and user == 0:
            raise KubeRunnerError(f"pod {pod.name}: runAsNonRoot with runAsUser 0 (the kubelet refuses to start it)")
        if user is not None:
            args += ["--user", f"{user}:{sc['runAsGroup']}" if sc.get("runAsGroup") is not None else str(user)]
        if sc.get("privileged"):
            args.append("--privileged")
        caps = sc.get("capabilities") or {}
        for cap in caps.get("drop") or []:
            args += ["--cap-drop", cap.lower()]
        for cap in caps.get("add") or []:
            args += ["--cap-add", cap.lower()]
        if sc.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if sc.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            args += ["--security-opt", "seccomp=unconfined"]
        if fs_group is not None:
            args += ["--group-add", str(fs_group)]

        limits = (c.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            args += ["--memory", _memory(limits["memory"])]
        if "cpu" in limits:
            args += ["--cpus", str(_cpu(limits["cpu"]))]

        # environment, through a private file (no secret on a command line)
        env_file = pod_dir / "env"
        with open(os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            for k, v in self._env(pod, c).items():
                if "\n" in v:
                    raise KubeRunnerError(f"pod {pod.name}: env {k} holds a newline (not emulated)")
                f.write(f"{k}={v}\n")
        args += ["--env-file", str(env_file)]

        # volumes
        volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
        for name in pod.pvc_volumes:
            volumes.setdefault(name, {"name": name, "persistentVolumeClaim": {}})
        for mount in c.get("volumeMounts") or []:
            args += ["--mount", self._mount(pod, volumes, mount, fs_group)]

        if c.get("workingDir"):
            args += ["--workdir", c["workingDir"]]
        if c.get("command"):
            args += ["--entrypoint", json.dumps(c["command"])]
        args.append(c["image"])
        args += [str(a) for a in c.get("args") or []]
        out = podman(*args, timeout=600)
        self.container_ids.add(out.stdout.strip().splitlines()[-1])

    def _env(self, pod: Pod, c: dict) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                data = self.config_map_data(pod.namespace, src["configMapRef"]["name"])
            else:
                data = self.secret_data(pod.namespace, src["secretRef"]["name"])
            env.update({prefix + k: v.decode() for k, v in data.items()})
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "valueFrom" in e:
                vf = e["valueFrom"]
                if "secretKeyRef" in vf:
                    ref = vf["secretKeyRef"]
                    data = self.secret_data(pod.namespace, ref["name"])
                elif "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    data = self.config_map_data(pod.namespace, ref["name"])
                elif "fieldRef" in vf:
                    path = vf["fieldRef"]["fieldPath"]
                    env[e["name"]] = {"metadata.name": pod.name, "metadata.namespace": pod.namespace,
                                      "status.podIP": pod.ip, "spec.nodeName": "localhost"}[path]
                    continue
                else:
                    raise KubeRunnerError(f"pod {pod.name}: env {e['name']}: {sorted(vf)} is not emulated")
                if ref["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise KubeRunnerError(f"pod {pod.name}: env {e['name']}: key {ref['key']} not in {ref['name']}")
                env[e["name"]] = data[ref["key"]].decode()
            else:
                env[e["name"]] = ""
        return env

    def _mount(self, pod: Pod, volumes: dict, mount: dict, fs_group: Optional[int]) -> str:
        name = mount["name"]
        if name not in volumes:
            raise KubeRunnerError(f"pod {pod.name}: volumeMount {name} has no volume")
        vol = volumes[name]
        ro = ",ro" if mount.get("readOnly") else ""
        sub = mount.get("subPath", "")
        if "persistentVolumeClaim" in vol or "emptyDir" in vol:
            vname = pod.pvc_volumes.get(name) or f"{self._container_name(pod)}-{name}"
            if podman("volume", "exists", vname, check=False).returncode != 0:
                labels = ["--label", f"{LABEL}={self.prefix}", "--label", f"{LABEL}.namespace={pod.namespace}"]
                if "emptyDir" in vol:
                    labels += ["--label", f"{LABEL}.pod={pod.name}"]
                elif vol["persistentVolumeClaim"]:
                    labels += ["--label", f"{LABEL}.claim=standalone"]
                else:
                    labels += ["--label", f"{LABEL}.claim=volumeClaimTemplate"]
                podman("volume", "create", *labels, vname)
            if sub:
                raise KubeRunnerError(f"pod {pod.name}: subPath on a PVC is not emulated")
            return f"type=volume,src={vname},dst={mount['mountPath']}{ro}"
        files = self._files(pod, vol)  # {relative path: (bytes, mode)}
        d = self._pod_dir(pod) / "volumes" / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        for rel, (data, mode) in files.items():
            path = d / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if fs_group is not None:  # the kubelet gives a fsGroup the files' group and group read
                os.chown(path, 0, fs_group)
                mode |= 0o440
            os.chmod(path, mode)
        src = d / sub if sub else d
        if sub and not src.exists():
            raise KubeRunnerError(f"pod {pod.name}: subPath {sub} is not in volume {name}")
        # ConfigMap, Secret and projected volumes are always read-only in Kubernetes.
        return f"type=bind,src={src},dst={mount['mountPath']},ro"

    def _files(self, pod: Pod, vol: dict) -> dict[str, tuple[bytes, int]]:
        if "projected" in vol:
            default_mode = vol["projected"].get("defaultMode", 0o644)
            sources = vol["projected"]["sources"]
        elif "configMap" in vol or "secret" in vol:
            kind = "configMap" if "configMap" in vol else "secret"
            default_mode = vol[kind].get("defaultMode", 0o644)
            src = dict(vol[kind])
            if kind == "secret":
                src["name"] = src.pop("secretName")
            sources = [{kind: src}]
        else:
            raise KubeRunnerError(f"pod {pod.name}: volume {vol['name']} of type {sorted(vol)} is not emulated")
        files: dict[str, tuple[bytes, int]] = {}
        for source in sources:
            kind = next(iter(source))
            ref = source[kind]
            if kind == "configMap":
                data = self.config_map_data(pod.namespace, ref["name"])
            elif kind == "secret":
                data = self.secret_data(pod.namespace, ref["name"])
            else:
                raise KubeRunnerError(f"pod {pod.name}: projected source {kind} is not emulated")
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                if item["key"] not in data:
                    raise KubeRunnerError(f"pod {pod.name}: key {item['key']} is not in {kind} {ref['name']}")
                files[item["path"]] = (data[item["key"]], item.get("mode", ref.get("defaultMode", default_mode)))
        return files

    # --- deleting ----------------------------------------------------------------------------------------------
    def _delete_pod(self, pod: Pod, grace: Optional[int] = None) -> None:
        grace = pod.spec.get("terminationGracePeriodSeconds", 30) if grace is None else grace
        podman("rm", "-f", "-t", str(grace), pod.container, check=False, timeout=grace + 60)
        # emptyDir volumes go with the pod; PVCs stay.
        for v in self._volumes(namespace=pod.namespace, pod=pod.name):
            podman("volume", "rm", "-f", v, check=False)
        shutil.rmtree(self._pod_dir(pod), ignore_errors=True)
        self.pods.pop((pod.namespace, pod.name), None)

    def _volumes(self, **labels: str) -> dict[str, dict]:
        """{name: labels} of this runner's podman volumes that carry every `labels` (LABEL.<key>=value).
        (podman ORs several --filter label=..., so the rest is filtered here.)"""
        out = json.loads(podman("volume", "ls", "--format", "json", "--filter", f"label={LABEL}={self.prefix}").stdout
                         or "[]")
        return {v["Name"]: v.get("Labels") or {} for v in out
                if all((v.get("Labels") or {}).get(f"{LABEL}.{k}") == val for k, val in labels.items())}

    def _delete_orphan_volumes(self) -> None:
        """Volumes whose PVC is gone: a deleted PersistentVolumeClaim's, or anything of a deleted Namespace.
        A StatefulSet's claims outlive the StatefulSet (Kubernetes' default retention), not their namespace."""
        namespaces = {k[2] for k in self.objects if k[0] == "Namespace"} | {"default"}
        pvcs = {(k[1], k[2]) for k in self.objects if k[0] == "PersistentVolumeClaim"}
        for v, labels in self._volumes().items():
            ns, claim = labels.get(f"{LABEL}.namespace"), labels.get(f"{LABEL}.claim")
            if ns not in namespaces or (claim == "standalone" and (ns, v) not in
                                        {(n, self._volume_name(n, c)) for n, c in pvcs}):
                podman("volume", "rm", "-f", v, check=False)

    def restart_pod(self, pod: Pod, grace: Optional[int] = None) -> Pod:
        """Delete the pod and let its controller make it again (`kubectl delete pod`): same name, same PVCs."""
        self._delete_pod(pod, grace)
        self.apply()
        return self.pods[(pod.namespace, pod.name)]

    def down(self) -> None:
        """Delete every pod, volume and the network this runner's prefix made, and its working directory."""
        for pod in list(self.pods.values()):
            self._delete_pod(pod)
        for cid in podman("ps", "-aq", "--filter", f"label={LABEL}={self.prefix}").stdout.split():
            podman("rm", "-f", "-t", "10", cid, check=False, timeout=90)
        for v in self._volumes():
            podman("volume", "rm", "-f", v, check=False)
        podman("network", "rm", "-f", self.network, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.pods.clear()
        self.created.clear()

    def leftovers(self) -> dict[str, list[str]]:
        """What of this runner still exists: containers, volumes, the network, conmon/container processes."""
        containers = podman("ps", "-a", "--format", "{{.Names}}", "--filter", f"label={LABEL}={self.prefix}").stdout.split()
        volumes = list(self._volumes())
        networks = [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if n == self.network]
        processes = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(cid in cmdline for cid in self.container_ids):
                processes.append(f"{pid}: {cmdline[:200]}")
        files = [str(p) for p in self.workdir.rglob("*")] if self.workdir.exists() else []
        return {k: v for k, v in {"containers": containers, "volumes": volumes, "networks": networks,
                                  "processes": processes, "files": files}.items() if v}

    def _adopt(self) -> None:
        """Pick up the pods an earlier run with the same prefix left running (so `up` twice is a no-op)."""
        fmt = "{{json .Config.Labels}}\t{{.Name}}\t{{.Id}}\t{{json .NetworkSettings.Networks}}"
        names = podman("ps", "-aq", "--filter", f"label={LABEL}={self.prefix}", check=False).stdout.split()
        if not names:
            return
        self.reload()
        desired = {(p.namespace, p.name): p for p in self.desired_pods()}
        for line in podman("inspect", "--format", fmt, *names, check=False).stdout.splitlines():
            labels_json, name, cid, nets = line.split("\t")
            labels = json.loads(labels_json)
            key = (labels.get(f"{LABEL}.namespace"), labels.get(f"{LABEL}.pod"))
            ip = (json.loads(nets).get(self.network) or {}).get("IPAddress", "")
            pod = desired.get(key)
            self.container_ids.add(cid)
            if pod is None or not ip:
                podman("rm", "-f", "-t", "5", name, check=False)
                continue
            pod.ip, pod.container = ip, name
            pod.template_hash = labels.get(f"{LABEL}.hash", "")
            self.pods[key] = pod
        if self.pods:
            self._ensure_network()

    # --- using the pods ----------------------------------------------------------------------------------------
    def pod(self, owner: str, namespace: Optional[str] = None) -> Pod:
        """The (first) pod of a workload: "StatefulSet/name", "Deployment/name", "Pod/name", or a pod name."""
        for p in self.pods.values():
            if (namespace is None or p.namespace == namespace) and owner in (p.owner, p.name):
                return p
        raise KubeRunnerError(f"no pod of {owner}; pods: {[p.owner + ' ' + p.name for p in self.pods.values()]}")

    def container_id(self, pod: Pod) -> str:
        return podman("inspect", "--format", "{{.Id}}", pod.container, check=False).stdout.strip()

    def status(self, pod: Pod) -> str:
        return podman("inspect", "--format", "{{.State.Status}}", pod.container, check=False).stdout.strip()

    def logs(self, pod: Pod, tail: int = 60) -> str:
        p = podman("logs", "--tail", str(tail), pod.container, check=False)
        restarts = podman("inspect", "--format", "{{.RestartCount}}", pod.container, check=False).stdout.strip()
        return f"--- logs of pod {pod.namespace}/{pod.name} ({self.status(pod)}, restarts {restarts}):\n{p.stdout}{p.stderr}"

    def exec(self, pod: Pod, *cmd: str, user: Optional[str] = None, check: bool = True, timeout: float = 60,
             input: Optional[str] = None) -> subprocess.CompletedProcess:
        """`kubectl exec`: run CMD in the pod's container."""
        args = ["exec", "-i"] + (["--user", user] if user else []) + [pod.container, *cmd]
        proc = podman(*args, check=False, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise KubeRunnerError(f"exec in {pod.name}: {' '.join(cmd)} failed ({proc.returncode}):\n"
                                  f"{proc.stdout}{proc.stderr}")
        return proc

    def resolve(self, host: str, namespace: str = "default") -> str:
        """What a pod in `namespace` gets for `host` (a Service name): its first address."""
        for ns, services in self.service_addresses().items():
            for name, ips in services.items():
                if ips and host in (f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}") + (
                        (name,) if ns == namespace else ()):
                    return ips[0]
        raise KubeRunnerError(f"{host} does not resolve to any pod")

    def wait_exited(self, pod: Pod, timeout: float = 120) -> int:
        """Wait for a pod that runs to completion (restartPolicy Never); its container's exit code."""
        def exited():
            return self.status(pod) in ("exited", "stopped")
        wait_until(exited, timeout, f"pod {pod.namespace}/{pod.name} to finish", lambda: self.logs(pod))
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", pod.container).stdout.strip())

    # --- probes ------------------------------------------------------------------------------------------------
    def probe(self, pod: Pod, probe: dict) -> bool:
        """One probe attempt as the kubelet makes it: True on success."""
        c = pod.spec["containers"][0]
        timeout = probe.get("timeoutSeconds", 1)
        if "exec" in probe:
            try:
                return self.exec(pod, *probe["exec"]["command"], check=False, timeout=timeout).returncode == 0
            except KubeRunnerError:  # timed out
                return False
        if "tcpSocket" in probe:
            port = _port(c, probe["tcpSocket"]["port"])
            try:
                with socket.create_connection((pod.ip, port), timeout=timeout):
                    return True
            except OSError:
                return False
        if "httpGet" in probe:
            g = probe["httpGet"]
            url = f"{g.get('scheme', 'HTTP').lower()}://{pod.ip}:{_port(c, g['port'])}{g.get('path', '/')}"
            req = urllib.request.Request(url, headers={h["name"]: h["value"] for h in g.get("httpHeaders") or []})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return 200 <= r.status < 400
            except urllib.error.HTTPError as e:
                return 200 <= e.code < 400
            except OSError:
                return False
        raise KubeRunnerError(f"pod {pod.name}: probe {sorted(probe)} is not emulated")

    def wait_ready(self, pods: Optional[Iterable[Pod]] = None, timeout: float = 300) -> None:
        """Wait until each pod's startupProbe, then readinessProbe, succeeds (a pod without probes: running).
        Fails at once if a pod that does not restart has exited."""
        deadline = time.monotonic() + timeout
        for pod in list(pods if pods is not None else self.pods.values()):
            c = pod.spec["containers"][0]
            for kind in ("startupProbe", "readinessProbe"):
                probe = c.get(kind)
                left = max(1.0, deadline - time.monotonic())
                if kind == "startupProbe" and probe:
                    left = min(left, probe.get("initialDelaySeconds", 0)
                               + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3) + 5)
                self._wait_probe(pod, kind, probe, left)

    def _wait_probe(self, pod: Pod, kind: str, probe: Optional[dict], timeout: float) -> None:
        successes = 0
        needed = probe.get("successThreshold", 1) if probe and kind == "readinessProbe" else 1

        def ok():
            nonlocal successes
            status = self.status(pod)
            if status in ("exited", "stopped") and pod.spec.get("restartPolicy", "Always") == "Never":
                raise NotReady(f"pod {pod.namespace}/{pod.name} exited\n{self.logs(pod)}")
            if status != "running":
                return False
            if probe is None:
                return True
            successes = successes + 1 if self.probe(pod, probe) else 0
            return successes >= needed

        interval = min(float((probe or {}).get("periodSeconds", 1)), 1.0)
        wait_until(ok, timeout, f"{kind} of pod {pod.namespace}/{pod.name} ({pod.owner})",
                   lambda: self.logs(pod), interval=interval)

    # --- kubectl port-forward ------------------------------------------------------------------------------------
    def port_forward(self, service: str, port: int, namespace: str) -> "PortForward":
        """`kubectl port-forward service/NAME LOCAL:PORT`: a TCP forwarder on 127.0.0.1 to a pod of the Service."""
        return PortForward(self.resolve(f"{service}.{namespace}", namespace), port)


class PortForward:
    """127.0.0.1:<local_port> -> <address>:<port>, one thread per connection; `close()` stops it."""

    def __init__(self, address: str, port: int):
        self.target = (address, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.local_port = self.server.getsockname()[1]
        self.closed = False
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pipe, args=(a, b), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.server.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise KubeRunnerError(f"named port {port} not found in container {container['name']}")


def _memory(q: str) -> str:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", str(q))
    if not m:
        raise KubeRunnerError(f"memory quantity {q!r} is not understood")
    return str(int(float(m.group(1)) * units.get(m.group(2) or "", 1)))


def _cpu(q) -> float:
    q = str(q)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def local_render_dir() -> Path:
    """`kubernetes.renderDir` of Pulumi.local.yaml with $SCI_CACHE expanded (where `pulumi up --stack local` renders)."""
    from tests.manifests.rendered import local_render_dir as render_dir  # one reader of Pulumi.local.yaml
    return render_dir()


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.e2e.kube_runner", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("render_dir", nargs="?", help="default: the local stack's renderDir")
    parser.add_argument("--prefix", default="sci-e2e-manual", help="names and label of what it makes")
    parser.add_argument("--timeout", type=float, default=300)
    a = parser.parse_args(argv)
    runner = KubeRunner(Path(a.render_dir) if a.render_dir else local_render_dir(), prefix=a.prefix)
    if a.action == "down":
        runner.down()
        left = runner.leftovers()
        print(f"removed everything of {a.prefix}" if not left else f"left over: {left}")
        return 1 if left else 0
    started = runner.apply()
    runner.wait_ready(timeout=a.timeout)
    for p in runner.pods.values():
        print(f"pod {p.namespace}/{p.name}\t{p.owner}\t{p.ip}\t{'started' if p in started else 'unchanged'}")
    for svc in runner.of_kind("Service"):
        ns, name = svc["metadata"].get("namespace", "default"), svc["metadata"]["name"]
        ports = ",".join(str(p["port"]) for p in svc["spec"].get("ports") or [])
        print(f"service {ns}/{name}\t{name}.{ns}.svc.{CLUSTER_DOMAIN}\t"
              f"{' '.join(runner.service_addresses()[ns][name])}\tports {ports}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
