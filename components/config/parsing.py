"""Validation, one phase: everything that can be checked before a resource exists is checked here, so that
`pulumi preview` (and `pulumi up` without one) stops before anything is made.

`parse()` takes raw config values in and gives a checked `StackConfig` out: each key converted and checked as the
table declares it (components/config/table.py, through schema.py), then the rules between keys (rules.py), then
the JupyterHub chart values against the pinned chart's schema. It needs no Pulumi engine, so it is tested directly,
but it is not pure: besides its arguments it reads the files that keys name (relative to `project_dir`), the
environment (`$VAR`s in paths; where the chart is, `SCI_CACHE` and `SCI_Z2JH_REFERENCE`) and, with JupyterHub and
the chart not found, runs `helm pull` (chart_values.load_chart()). `load()` reads the running Pulumi stack's
configuration and calls it. A bad value raises `ConfigError`, whose message names the key, what is wrong and how to
fix it; `pulumi preview` prints it without a stack trace.
"""

from __future__ import annotations

import typing
from dataclasses import replace
from typing import Any

import pulumi.runtime.config as runtime_config

from components.chart_values import load_chart, read_user_values
from components.config.rules import check_rules
from components.config.schema import parse_table
from components.config.table import StackConfig
from components.errors import PROJECT
from components.jupyterhub import check_user_values, hub_ldap_of


def load(project_dir: str = ".") -> StackConfig:
    """Read and check the running stack's configuration."""
    prefix = f"{PROJECT}:"
    values = {k[len(prefix):]: v for k, v in _all_config().items() if k.startswith(prefix)}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    secret = {k for k in values if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secrets}
    return parse(values, secret, project_dir)


def _all_config() -> dict[str, Any]:
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def parse(values: dict[str, Any], secret_keys: typing.AbstractSet[str] = frozenset(),
          project_dir: str = ".") -> StackConfig:
    """Check raw config values (strings, or JSON strings for objects) and build a StackConfig.

    `secret_keys`: the keys set with --secret; `project_dir`: what file paths are relative to. With
    `components.jupyterhub`, the chart values are checked against the pinned chart (jupyterhub.check_user_values),
    whose default values and schema the result carries for the Release."""
    cfg = parse_table(StackConfig, values, secret_keys, project_dir)
    hub = cfg.jupyterhub
    cfg = replace(cfg, jupyterhub=replace(
        hub, values=read_user_values(hub.values, hub.values_file, project_dir),
        values_secret="jupyterhub" in secret_keys))
    check_rules(cfg)
    if cfg.components.jupyterhub:
        chart = load_chart(cfg.jupyterhub.chart_version, cfg.jupyterhub.chart_repo)
        check_user_values(chart, cfg.jupyterhub.values, cfg.directory, metrics=cfg.metrics.enabled,
                          hub_ldap=hub_ldap_of(cfg.ldap))
        cfg = replace(cfg, jupyterhub=replace(cfg.jupyterhub, chart=chart))
    return cfg
