"""Wires the components together from one StackConfig; returns the stack outputs."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components import directory, network, registry, single_node, site
from components.config import StackConfig
from components.images import CLIENT, JUPYTER, NOTEBOOK, SINGLE_NODE, SlurmImages, SlurmImagesArgs
from components.jupyter import SlurmJupyter, SlurmJupyterArgs
from components.jupyterhub import JupyterHub, JupyterHubArgs
from components.keys import SlurmKeys, SlurmKeysArgs
from components.labels import labels
from components.restd import SlurmRestd, SlurmRestdArgs
from components.site_check import SiteCheck, SiteCheckArgs
from components.slurm_config import SlurmConfig, SlurmConfigArgs
from components.slurm_files import TOKEN_LIFETIME_S, version_facts
from components.token_service import TokenService, TokenServiceArgs
from components.user_servers import UserServers

SHOW_SECRET = "pulumi stack output {} --show-secrets"


def build(cfg: StackConfig) -> dict[str, pulumi.Input]:
    provider = k8s.Provider(
        "kubernetes",
        context=cfg.kubernetes.context,
        kubeconfig=cfg.kubernetes.kubeconfig,
        render_yaml_to_directory=cfg.kubernetes.render_dir,
    )
    k8s_opts = pulumi.ResourceOptions(provider=provider)
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=cfg.namespace, labels=labels(cfg.namespace, "namespace")),
        opts=k8s_opts,
    ).metadata.name
    ns = cfg.namespace  # plain text for names built before anything exists (hostnames, DNS names)

    keys = SlurmKeys(
        "slurm-keys",
        SlurmKeysArgs(namespace=namespace, rotation=cfg.key_rotation, munge_key=cfg.munge_key,
                      jwt=cfg.existing_cluster is None or cfg.jwt_key is not None, jwt_key=cfg.jwt_key),
        opts=k8s_opts,
    )
    images = SlurmImages("images", SlurmImagesArgs.from_config(cfg))
    # It was SlurmImages' child: the alias keeps it (and its auto-name) in stacks made before.
    pull_secret = registry.pull_secret("images-pull", cfg.images, namespace, pulumi.ResourceOptions.merge(
        k8s_opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(parent=images)])))

    outputs: dict[str, pulumi.Input] = {
        "namespace": namespace,
        "slurmVersion": cfg.slurm_version,
        "images": images.refs,
        "mungeSecret": keys.munge_secret_name,
    }

    node_name = f"{cfg.cluster_name}-slurm"
    existing = cfg.existing_cluster
    graph = network.graph(cfg.components, nodes=cfg.nodes, restd_clients=cfg.restd.allowed_clients,
                          site_ports=cfg.site.ports if existing else ())
    config = SlurmConfig(
        "slurm-config",
        SlurmConfigArgs(
            namespace=namespace, cluster_name=cfg.cluster_name, slurm_version=cfg.slurm_version, nodes=cfg.nodes,
            cpus_per_node=cfg.node.cpus, memory_mb_per_node=cfg.node.memory_mb,
            controller_host=None if existing else single_node.controller_host(node_name),
            controller_addr=None if existing else single_node.controller_addr(node_name, ns),
            existing_slurm_conf=existing.slurm_conf if existing else None,
            configless=bool(existing and existing.configless),
        ),
        opts=k8s_opts,
    )

    users = k8s.core.v1.ConfigMap(  # auto-named: a changed directory is a new ConfigMap, so its pods roll
        "users",
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels("users", "directory")),
        data=directory.render_files(cfg.directory, cfg.groups),
        opts=k8s_opts,
    ).metadata.name
    home_claim = cfg.home.claim or home_volume_claim(cfg, namespace, k8s_opts)
    munge_secret = keys.munge_secret_name  # for an existing cluster, once its slurmctld accepted it
    if existing:
        if warning := site.unbounded_tokens(cfg.site):
            pulumi.log.warn(f"existingCluster.slurmConf: {warning}")
        munge_secret = SiteCheck("site-check", SiteCheckArgs(
            namespace=namespace, image=images.refs[CLIENT], config_map_name=config.config_map_name,
            munge_secret_name=keys.munge_secret_name, slurm_env=config.client_env, image_pull_secret=pull_secret,
        ), opts=k8s_opts).munge_secret_name

    if cfg.components.single_node:
        node = single_node.SlurmSingleNode(
            "single-node",
            single_node.SlurmSingleNodeArgs(
                namespace=namespace, name=node_name, image=images.refs[SINGLE_NODE], nodes=cfg.nodes,
                config_map_name=config.config_map_name, config_secret_name=config.secret_name,
                config_secret_files=config.secret_files, munge_secret_name=keys.munge_secret_name,
                jwt_secret_name=keys.jwt_secret_name, directory_config_map=users, home_claim=home_claim,
                storage_size=cfg.storage.size,
                storage_class=cfg.storage.class_name, cpu_milli=cfg.single_node_cpu_milli,
                memory_mib=cfg.single_node_memory_mib,
                network_policy=graph.ingress(network.SINGLE_NODE), image_pull_secret=pull_secret),
            opts=k8s_opts,
        )
        outputs["slurmController"] = node.controller_addr
        outputs["slurmNodes"] = cfg.nodes
        warn_if_nodes_change(cfg.nodes)
        outputs["slurmTokenHint"] = (f"kubectl -n {ns} exec statefulset/{node_name} -- "
                                     f"scontrol token username={cfg.users[0].name if cfg.users else 'USER'} "
                                     f"lifespan={TOKEN_LIFETIME_S}")

    if cfg.components.restd:
        restd = SlurmRestd(
            "slurmrestd",
            SlurmRestdArgs(namespace=namespace, name=f"{cfg.cluster_name}-slurmrestd", image=images.refs[CLIENT],
                           config_map_name=config.config_map_name, munge_secret_name=munge_secret,
                           directory_config_map=users, network_policy=graph.ingress(network.RESTD),
                           slurm_env=config.client_env,
                           image_pull_secret=pull_secret),
            opts=k8s_opts,
        )
        outputs["slurmrestdUrl"] = restd.url
        # The newest API version its slurmrestd serves (the images' Slurm): URLs are {url}/slurm/{version}/...
        outputs["slurmrestdApiVersion"] = version_facts(cfg.slurm_version).rest_api_version

    if cfg.components.jupyter:
        name = f"{cfg.cluster_name}-jupyter"
        jupyter = SlurmJupyter(
            "jupyter",
            SlurmJupyterArgs(namespace=namespace, name=name, image=images.refs[JUPYTER],
                             config_map_name=config.config_map_name, munge_secret_name=munge_secret,
                             directory_config_map=users, home_claim=home_claim, user=cfg.jupyter_user,
                             rotation=cfg.key_rotation, slurm_env=config.client_env,
                             network_policy=graph.ingress(network.LAB),
                             image_pull_secret=pull_secret),
            opts=k8s_opts,
        )
        outputs["jupyterLabUrl"] = jupyter.url
        outputs["jupyterLabAccess"] = (f"kubectl -n {ns} port-forward service/{name} 8888:8888, then open "
                                       f"http://localhost:8888/lab?token=$({SHOW_SECRET.format('jupyterToken')})")
        outputs["jupyterToken"] = jupyter.token
        outputs["jupyterTokenHint"] = SHOW_SECRET.format("jupyterToken")

    token_url = None
    if cfg.components.token_service:
        tokens = TokenService(
            "slurm-token",
            TokenServiceArgs(namespace=namespace, name=f"{cfg.cluster_name}-slurm-token", image=images.refs[NOTEBOOK],
                             jwt_secret_name=keys.jwt_secret_name, directory_config_map=users,
                             network_policy=graph.ingress(network.TOKENS), image_pull_secret=pull_secret),
            opts=k8s_opts,
        )
        token_url = outputs["slurmTokenUrl"] = tokens.url

    user_servers = None
    if cfg.components.token_service and not cfg.kubernetes.render_dir:
        # KubeSpawner's servers may run in the namespace: the Release's, or those of a hub run beside the stack that
        # the token service serves (tests/e2e's). Named by whose they are: turning components.jupyterhub off deletes
        # the Release's UserServers after the Release, and so its servers.
        user_servers = UserServers("jupyterhub-servers" if cfg.components.jupyterhub else "own-hub-servers",
                                   namespace, home_claim, cfg.kubernetes.kubeconfig, cfg.kubernetes.context)

    if cfg.components.jupyterhub:
        hub = JupyterHub(
            "jupyterhub",
            JupyterHubArgs(namespace=namespace, chart_repo=cfg.jupyterhub.chart_repo,
                           chart_version=cfg.jupyterhub.chart_version, chart=cfg.jupyterhub.chart,
                           notebook_image=images.refs[NOTEBOOK],
                           image_tag=cfg.images.tag, config_files=config.files,
                           slurm_env=config.client_env, users=cfg.directory,
                           groups=cfg.groups, home_claim=home_claim, token_url=token_url,
                           egress=graph.egress(network.HUB_USERS),
                           rotation=cfg.key_rotation,
                           image_pull_secret=pull_secret, user_values=cfg.jupyterhub.values,
                           values_secret=cfg.jupyterhub.values_secret, user_servers=user_servers),
            opts=k8s_opts,
        )
        outputs["jupyterhubUrl"] = hub.url
        outputs["jupyterhubAccess"] = (f"{hub_address(cfg.jupyterhub.values, ns)} and log in as a user of `users` "
                                       f"with the password of {SHOW_SECRET.format('jupyterhubPassword')}")
        outputs["jupyterhubPassword"] = hub.password
    return outputs


def hub_address(user_values: dict, ns: str) -> str:
    """Where users open the hub: its `subdomain_host` (each server on a subdomain of it, README "Users and homes"),
    which only its wildcard DNS name reaches, else a port-forward of the chart's proxy-public Service."""
    host = user_values.get("hub", {}).get("config", {}).get("JupyterHub", {}).get("subdomain_host")
    if host:
        return f"open {host} (its DNS name and *.{host.split('://')[-1]} routed to service/proxy-public)"
    return f"kubectl -n {ns} port-forward service/proxy-public 8000:80, then open http://localhost:8000"


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
