"""The stack's table of contents. `build()` makes the core every part is built on, once (`make_core()`: namespace,
images, keys, Slurm files, user directory, home, pull Secret, network graph), then deploys each part that the
configuration turns on, each with a function of its own that fills in its Args from the core and returns its outputs
with their hints (as pulumi-eks makes its core data once and hands it to each node group)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import directory, distributed, ldap, network, registry, single_node, site
from components.config import StackConfig
from components.images import CLIENT, JUPYTER, NOTEBOOK, SINGLE_NODE, SlurmImages, SlurmImagesArgs
from components.jupyter import PORT as JUPYTER_PORT
from components.jupyter import SlurmJupyter, SlurmJupyterArgs
from components.jupyterhub import PROXY_SERVICE, JupyterHub, JupyterHubArgs, hub_ldap_of, hub_metrics_values
from components.keys import SlurmKeys, SlurmKeysArgs
from components.labels import labels
from components.monitoring import TOKEN_KEY, Monitoring, MonitoringArgs
from components.restd import SlurmRestd, SlurmRestdArgs
from components.site_check import SiteCheck, SiteCheckArgs
from components.slurm_config import SlurmConfig, SlurmConfigArgs
from components.slurm_files import AUTH_SLURM, TOKEN_LIFETIME_S, Distributed, version_facts
from components.token_service import TokenService, TokenServiceArgs
from components.user_servers import UserServers

SHOW_SECRET = "pulumi stack output {} --show-secrets"


def build(cfg: StackConfig) -> dict[str, pulumi.Input]:
    """Everything one `pulumi up` makes; returns the stack outputs."""
    core = make_core(cfg)
    parts = cfg.components
    outputs = core.outputs()
    monitoring = None
    if cfg.metrics.enabled:
        monitoring, metrics_outputs = deploy_monitoring(core)
        outputs |= metrics_outputs
    if parts.single_node:
        outputs |= deploy_single_node(core)
    if parts.distributed:
        outputs |= deploy_distributed(core)
    if parts.restd:
        outputs |= deploy_restd(core)
    if parts.jupyter:
        outputs |= deploy_jupyter(core)
    if parts.token_service:
        outputs |= deploy_token_service(core)
    servers = user_servers(core) if parts.token_service and not cfg.kubernetes.render_dir else None
    if parts.jupyterhub:  # with the token service (a config rule): its users' servers get their Slurm tokens there
        outputs |= deploy_jupyterhub(core, outputs["slurmTokenUrl"], servers, monitoring)
    return outputs


@dataclass(frozen=True)
class Core:
    """What every part is built on, made once by make_core()."""
    cfg: StackConfig
    opts: pulumi.ResourceOptions  # the Kubernetes provider
    namespace: pulumi.Output[str]
    images: SlurmImages  # .refs by digest
    keys: SlurmKeys
    slurm: SlurmConfig  # the Slurm files (ConfigMap, Secret) and the clients' environment
    users: pulumi.Output[str]  # the user directory's ConfigMap
    # Config `ldap`: the Secret of nslcd.conf (with the bind password) and the site's CA, which the pods whose
    # entrypoint runs nslcd (the single node, the distributed roles, slurmrestd) get in their directory volume beside
    # the ConfigMap's files, and the nslcd sidecars of the pods whose containers run as users (the token service,
    # JupyterLab).
    directory_secret: Optional[pulumi.Output[str]]
    home_claim: pulumi.Input[str]  # the shared home (ReadWriteMany)
    pull_secret: Optional[pulumi.Output[str]]  # the registry's, if the stack has its credentials
    # The clients' key Secret (its file: keys.key_file, munge.key or an auth/slurm site's slurm.key); an existing
    # cluster's once its slurmctld took it.
    munge_secret: pulumi.Input[str]
    network: network.Graph  # who may reach whom: each part's NetworkPolicy

    def kubectl(self, command: str) -> str:
        """A kubectl command line in the stack's namespace, for an output's hint."""
        return f"kubectl -n {self.cfg.namespace} {command}"

    def outputs(self) -> dict[str, pulumi.Input]:
        return {"namespace": self.namespace, "slurmVersion": self.cfg.slurm_version, "images": self.images.refs,
                "mungeSecret": self.keys.munge_secret_name}


def make_core(cfg: StackConfig) -> Core:
    """The pieces every part shares, each made once; for an existing cluster also the check that its slurmctld takes
    the munge key, which every client waits for (SiteCheck)."""
    provider = k8s.Provider("kubernetes", context=cfg.kubernetes.context, kubeconfig=cfg.kubernetes.kubeconfig,
                            render_yaml_to_directory=cfg.kubernetes.render_dir)
    opts = pulumi.ResourceOptions(provider=provider)
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=cfg.namespace, labels=labels(cfg.namespace, "namespace")),
        opts=opts,
    ).metadata.name
    existing = cfg.existing_cluster
    keys = SlurmKeys("slurm-keys", SlurmKeysArgs(
        namespace=namespace, rotation=cfg.key_rotation, munge_key=cfg.munge_key,
        jwt=existing is None or cfg.jwt_key is not None, jwt_key=cfg.jwt_key, slurm_key=cfg.slurm_key,
        auth_slurm=existing is None and cfg.auth_type == AUTH_SLURM), opts=opts)
    images = SlurmImages("images", SlurmImagesArgs.from_config(cfg))
    # It was SlurmImages' child: the alias keeps it (and its auto-name) in stacks made before.
    pull_secret = registry.pull_secret("images-pull", cfg.images, namespace, pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=images)])))
    node = single_node_name(cfg)
    # Plain text, as slurm.conf is: the namespace's name as configured, not the Output.
    if cfg.components.distributed:
        controller_host = distributed.controller_host(cfg.cluster_name)
        controller_addr = distributed.controller_addr(cfg.cluster_name, cfg.namespace)
        spread = Distributed(accounting_addr=distributed.accounting_addr(cfg.cluster_name, cfg.namespace),
                             nodeset=distributed.NODESET, gpus=cfg.node.gpus and cfg.node.gpus.settings)
    else:
        controller_host = None if existing else single_node.controller_host(node)
        controller_addr = None if existing else single_node.controller_addr(node, cfg.namespace)
        spread = None
    slurm = SlurmConfig("slurm-config", SlurmConfigArgs(
        namespace=namespace, cluster_name=cfg.cluster_name, slurm_version=cfg.slurm_version, nodes=cfg.nodes,
        cpus_per_node=cfg.node.cpus, memory_mb_per_node=cfg.node.memory_mb,
        controller_host=controller_host, controller_addr=controller_addr, distributed=spread,
        existing_slurm_conf=existing.slurm_conf if existing else None,
        configless=bool(existing and existing.configless), auth_type=cfg.auth_type), opts=opts)
    users = k8s.core.v1.ConfigMap(  # auto-named: a changed directory is a new ConfigMap, so its pods roll
        "users",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels("users", "directory")),
        data=directory.render_files(cfg.directory, cfg.groups),
        opts=opts,
    ).metadata.name
    directory_secret = ldap_secret(cfg, namespace, opts) if cfg.ldap else None
    home_claim = cfg.home.claim or home_volume_claim(cfg, namespace, opts)
    if existing and (warning := site.unbounded_tokens(cfg.site)):
        pulumi.log.warn(f"existingCluster.slurmConf: {warning}")
    munge_secret = SiteCheck("site-check", SiteCheckArgs(
        namespace=namespace, image=images.refs[CLIENT], config_map_name=slurm.config_map_name,
        munge_secret_name=keys.munge_secret_name, slurm_env=slurm.client_env, image_pull_secret=pull_secret,
        key_file=keys.key_file,
    ), opts=opts).munge_secret_name if existing else keys.munge_secret_name
    graph = network.graph(cfg.components, nodes=cfg.nodes, restd_clients=cfg.restd.allowed_clients,
                          site_ports=cfg.site.ports if existing else (), metrics_scraper=network.scraper(cfg.metrics))
    return Core(cfg=cfg, opts=opts, namespace=namespace, images=images, keys=keys, slurm=slurm, users=users,
                directory_secret=directory_secret, home_claim=home_claim, pull_secret=pull_secret, munge_secret=munge_secret, network=graph)


def ldap_secret(cfg: StackConfig, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The site directory's Secret (components/ldap.py directory_files): auto-named, so a change rolls its pods."""
    settings = cfg.ldap.settings
    return k8s.core.v1.Secret(
        "directory-ldap",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels("users", "directory")),
        string_data=pulumi.Output.secret(cfg.ldap.bind_password).apply(
            lambda password: ldap.directory_files(settings, password)),
        opts=opts,
    ).metadata.name


def single_node_name(cfg: StackConfig) -> str:
    """The single node's StatefulSet and Service: its pod's hostname and DNS name are in slurm.conf."""
    return f"{cfg.cluster_name}-slurm"


def deploy_single_node(core: Core) -> dict[str, pulumi.Input]:
    cfg, name = core.cfg, single_node_name(core.cfg)
    node = single_node.SlurmSingleNode("single-node", single_node.SlurmSingleNodeArgs(
        namespace=core.namespace, name=name, image=core.images.refs[SINGLE_NODE], nodes=cfg.nodes,
        config_map_name=core.slurm.config_map_name, config_secret_name=core.slurm.secret_name,
        config_secret_files=core.slurm.secret_files, munge_secret_name=core.keys.munge_secret_name,
        jwt_secret_name=core.keys.jwt_secret_name, directory_config_map=core.users, home_claim=core.home_claim,
        directory_secret=core.directory_secret, storage_size=cfg.storage.size, storage_class=cfg.storage.class_name, cpu_milli=cfg.single_node_cpu_milli,
        memory_mib=cfg.single_node_memory_mib, network_policy=core.network.ingress(network.SINGLE_NODE),
        image_pull_secret=core.pull_secret, metrics=cfg.metrics.enabled,
        annotate=not cfg.metrics.prometheus_operator, key_file=core.keys.key_file), opts=core.opts)
    warn_if_nodes_change(cfg.nodes)
    user = cfg.users[0].name if cfg.users else "USER"
    return {"slurmController": node.controller_addr, "slurmNodes": cfg.nodes,
            "slurmTokenHint": core.kubectl(f"exec statefulset/{name} -- scontrol token username={user} "
                                           f"lifespan={TOKEN_LIFETIME_S}")}


def deploy_distributed(core: Core) -> dict[str, pulumi.Input]:
    """slurmctld, accounting and the node pods, each its own StatefulSet (components/distributed.py)."""
    cfg = core.cfg
    metrics = cfg.metrics
    request, _ = cfg.node_pod_cpu_milli
    slurm = distributed.SlurmDistributed("distributed", distributed.SlurmDistributedArgs(
        namespace=core.namespace, cluster_name=cfg.cluster_name, image=core.images.refs[SINGLE_NODE],
        nodes=cfg.nodes, node_cpus=cfg.node.cpus, node_cpu_request_milli=request, node_memory_mb=cfg.node.memory_mb,
        config_map_name=core.slurm.config_map_name, config_secret_name=core.slurm.secret_name,
        config_secret_files=core.slurm.secret_files, munge_secret_name=core.keys.munge_secret_name,
        jwt_secret_name=core.keys.jwt_secret_name, directory_config_map=core.users, home_claim=core.home_claim,
        directory_secret=core.directory_secret, storage_size=cfg.storage.size, storage_class=cfg.storage.class_name,
        controller_policy=core.network.ingress(network.CONTROLLER),
        accounting_policy=core.network.ingress(network.ACCOUNTING), node_policy=core.network.ingress(network.NODES),
        image_pull_secret=core.pull_secret, metrics=metrics.enabled, annotate=not metrics.prometheus_operator,
        gpus=cfg.node.gpus and cfg.node.gpus.settings, drain_grace_s=cfg.distributed.drain_grace_seconds,
        control_node_selector=cfg.distributed.control_node_selector, key_file=core.keys.key_file),
        opts=core.opts)
    user = cfg.users[0].name if cfg.users else "USER"
    ctld = distributed.names(cfg.cluster_name)["slurmctld"]
    return {"slurmController": slurm.controller_addr, "slurmNodes": cfg.nodes,
            "slurmNodeStatefulSet": slurm.node_statefulset,
            "slurmTokenHint": core.kubectl(f"exec statefulset/{ctld} -- scontrol token username={user} "
                                           f"lifespan={TOKEN_LIFETIME_S}")}


def deploy_restd(core: Core) -> dict[str, pulumi.Input]:
    restd = SlurmRestd("slurmrestd", SlurmRestdArgs(
        namespace=core.namespace, name=f"{core.cfg.cluster_name}-slurmrestd", image=core.images.refs[CLIENT],
        config_map_name=core.slurm.config_map_name, munge_secret_name=core.munge_secret, key_file=core.keys.key_file,
        directory_config_map=core.users, directory_secret=core.directory_secret,
        network_policy=core.network.ingress(network.RESTD), slurm_env=core.slurm.client_env,
        image_pull_secret=core.pull_secret), opts=core.opts)
    # The newest API version its slurmrestd serves (the images' Slurm): URLs are {url}/slurm/{version}/...
    return {"slurmrestdUrl": restd.url,
            "slurmrestdApiVersion": version_facts(core.cfg.slurm_version).rest_api_version}


def deploy_jupyter(core: Core) -> dict[str, pulumi.Input]:
    cfg, name = core.cfg, f"{core.cfg.cluster_name}-jupyter"
    jupyter = SlurmJupyter("jupyter", SlurmJupyterArgs(
        namespace=core.namespace, name=name, image=core.images.refs[JUPYTER],
        config_map_name=core.slurm.config_map_name, munge_secret_name=core.munge_secret, key_file=core.keys.key_file,
        directory_config_map=core.users, home_claim=core.home_claim, user=cfg.jupyter_user,
        directory_secret=core.directory_secret, nslcd_image=core.images.refs[CLIENT],
        rotation=cfg.key_rotation, network_policy=core.network.ingress(network.LAB), slurm_env=core.slurm.client_env,
        image_pull_secret=core.pull_secret), opts=core.opts)
    token = SHOW_SECRET.format("jupyterToken")
    return {"jupyterLabUrl": jupyter.url,
            "jupyterLabAccess": core.kubectl(f"port-forward service/{name} {JUPYTER_PORT}:{JUPYTER_PORT}, then open "
                                             f"http://localhost:{JUPYTER_PORT}/lab?token=$({token})"),
            "jupyterToken": jupyter.token, "jupyterTokenHint": token}


def deploy_monitoring(core: Core) -> tuple[Monitoring, dict[str, pulumi.Input]]:
    """The scraper's hub token, discovery objects and alert rules (config `metrics`, components/monitoring.py)."""
    cfg = core.cfg
    monitoring = Monitoring("metrics", MonitoringArgs(
        namespace=core.namespace, name=cfg.cluster_name, parts=cfg.components,
        operator=cfg.metrics.prometheus_operator, monitor_labels=cfg.metrics.monitor_labels,
        pending_minutes=cfg.metrics.pending_alert_minutes, rotation=cfg.key_rotation), opts=core.opts)
    return monitoring, {
        "metricsTokenSecret": monitoring.token_secret, "metricsTokenKey": TOKEN_KEY,
        "metricsTokenHint": core.kubectl(f"get secret {cfg.cluster_name}-metrics-scraper -o "
                                         f"jsonpath='{{.data.{TOKEN_KEY}}}' | base64 -d"),
        "metricsRules": monitoring.rules}


def deploy_token_service(core: Core) -> dict[str, pulumi.Input]:
    metrics = core.cfg.metrics
    tokens = TokenService("slurm-token", TokenServiceArgs(
        namespace=core.namespace, name=f"{core.cfg.cluster_name}-slurm-token", image=core.images.refs[NOTEBOOK],
        jwt_secret_name=core.keys.jwt_secret_name, directory_config_map=core.users,
        directory_secret=core.directory_secret, nslcd_image=core.images.refs[CLIENT],
        network_policy=core.network.ingress(network.TOKENS), image_pull_secret=core.pull_secret,
        metrics=metrics.enabled, annotate=not metrics.prometheus_operator), opts=core.opts)
    return {"slurmTokenUrl": tokens.url}


def user_servers(core: Core) -> UserServers:
    """KubeSpawner's servers may run in the namespace: the Release's, or those of a hub run beside the stack that the
    token service serves (tests/e2e's). Named by whose they are: turning components.jupyterhub off deletes the
    Release's UserServers after the Release, and so its servers."""
    cfg = core.cfg
    return UserServers("jupyterhub-servers" if cfg.components.jupyterhub else "own-hub-servers",
                       core.namespace, core.home_claim, cfg.kubernetes.kubeconfig, cfg.kubernetes.context)


def deploy_jupyterhub(core: Core, token_url: pulumi.Input[str], servers: Optional[UserServers],
                      monitoring: Optional[Monitoring]) -> dict[str, pulumi.Input]:
    cfg = core.cfg
    metrics = hub_metrics_values(monitoring.token, core.network.chart_ingress(network.HUB),
                                 annotate=not cfg.metrics.prometheus_operator) if monitoring else None
    hub = JupyterHub("jupyterhub", JupyterHubArgs(
        namespace=core.namespace, chart_repo=cfg.jupyterhub.chart_repo, chart_version=cfg.jupyterhub.chart_version,
        chart=cfg.jupyterhub.chart, notebook_image=core.images.refs[NOTEBOOK], image_tag=cfg.images.tag,
        config_files=core.slurm.files, slurm_env=core.slurm.client_env, users=cfg.directory, groups=cfg.groups,
        home_claim=core.home_claim, token_url=token_url, egress=core.network.egress(network.HUB_USERS),
        rotation=cfg.key_rotation, image_pull_secret=core.pull_secret, user_values=cfg.jupyterhub.values,
        values_secret=cfg.jupyterhub.values_secret, user_servers=servers, metrics=metrics,
        hub_ldap=hub_ldap_of(cfg.ldap)), opts=core.opts)
    if hub.password is None:  # config `ldap`: each user's own password of the site's directory
        return {"jupyterhubUrl": hub.url,
                "jupyterhubAccess": f"{hub_address(core)} and log in with an account of the site's directory"}
    return {"jupyterhubUrl": hub.url,
            "jupyterhubAccess": f"{hub_address(core)} and log in as a user of `users` with the password of "
                                f"{SHOW_SECRET.format('jupyterhubPassword')}",
            "jupyterhubPassword": hub.password}


def hub_address(core: Core) -> str:
    """Where users open the hub: its `subdomain_host` (each server on a subdomain of it, README "Users and homes"),
    which only its wildcard DNS name reaches, else a port-forward of the chart's proxy-public Service."""
    host = core.cfg.jupyterhub.values.get("hub", {}).get("config", {}).get("JupyterHub", {}).get("subdomain_host")
    if host:
        return f"open {host} (its DNS name and *.{host.split('://')[-1]} routed to service/{PROXY_SERVICE})"
    return core.kubectl(f"port-forward service/{PROXY_SERVICE} 8000:80, then open http://localhost:8000")


def warn_if_nodes_change(nodes: int) -> None:
    """`pulumi preview` (and up) warn when `nodes` differs from the stack's last update (its output slurmNodes, read
    through a StackReference to the stack itself): the single node's pod is then replaced, and each job running in it
    ends NODE_FAIL (JobRequeue=0). Nothing on a first update."""
    previous = pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}")

    def warn(was) -> None:
        if was is not None and int(was) != nodes:  # Pulumi's outputs carry numbers as floats
            pulumi.log.warn(f"nodes goes from {int(was)} to {nodes}: the single node's pod is replaced, and every job "
                            "running in it ends NODE_FAIL (JobRequeue=0). Before `pulumi up`, wait until `squeue -t "
                            "running` shows none, or drain the nodes (scontrol update nodename=ALL state=drain "
                            "reason=resize) and let their jobs finish")
    previous.get_output("slurmNodes").apply(warn)


def home_volume_claim(cfg: StackConfig, namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The shared home claim (ReadWriteMany, config `home`): a new volume of `home.className`, or bound to the
    existing PersistentVolume `home.volume` (class "", so that no class provisions one instead); its name."""
    return k8s.core.v1.PersistentVolumeClaim(
        "home",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels("home", "storage")),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteMany"], volume_name=cfg.home.volume,
            storage_class_name="" if cfg.home.volume else cfg.home.class_name,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": cfg.home.size})),
        opts=opts,
    ).metadata.name
