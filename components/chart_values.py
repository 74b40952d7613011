"""The user's JupyterHub chart values (`jupyterhub.values`, `jupyterhub.valuesFile`) over the program's.

Functions tested directly: `read_user_values()` (config time) combines the file and the object;
`with_user_values()` (when the chart values are computed, pure) refuses what the program must own, applies the
user's values over the program's with Helm's semantics and checks the result against the chart's schema.
`load_chart()` finds the `values.yaml` and values schema of exactly the pinned chart version (it reads the
environment and may run `helm pull`). `owned_list()` is
the README's list of what the program owns (OWNED). Every error is a ConfigError naming the key path
(`jupyterhub.values.singleuser.cpu.limit`) and never the value, which may be a secret.

Nulls: Helm deletes a key whose value is null, but a null in a Pulumi Release's values never reaches Helm:
the Kubernetes provider reads a Release's inputs with SkipNulls (pulumi-kubernetes provider/pkg/provider/
helm_release.go, Check/Create; pulumi/pulumi-kubernetes#3234, #3178 for Python and C#). So a user's null can
delete what the program sets, but not a chart default: that is refused rather than silently ignored.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

import pulumi
import yaml

from components.errors import PROJECT, ConfigError

KEY = "jupyterhub.values"
CHART = "jupyterhub"
_PULL_TIMEOUT = 120  # seconds for `helm pull`

# Chart value paths the program sets and the user may not change (nor any key below them), and why.
_IMAGE = "the notebook image is slurm-jupyter-notebook, built by this program and pinned by digest"
_UID = ("each user's server runs as their directory uid, gid and groups (hub.extraConfig.slurmUsers sets them "
        "per user), never as root")
_FSGID = "the fsGroup is the user's own group (hub.extraConfig.slurmUsers), so no other group reaches the server"
_CMD = "the image's entrypoint starts jupyterhub-singleuser only after its identity and authentication checks"
_HOME = "the users' homes are the shared home claim, mounted at `/home/<user>` as on the Slurm nodes"
_USERS = ("only users of the stack's directory may log in; change `users` instead (with `ldap`, the site's directory "
          "and `ldap.loginGroup` decide)")
_CLEANUP = ("the chart sets it to its own labels and `app.kubernetes.io/managed-by: kubespawner`, by which the stack's "
            "UserServers finds the user servers to remove before the home claim (components/user_servers.py); add "
            "labels with `singleuser.extraLabels` instead")
# KubeSpawner traits that would override those settings when given in hub.config.KubeSpawner (the chart
# loads hub.config last, z2jh 4.3.3 files/hub/jupyterhub_config.py) or in a profile's kubespawner_override.
SPAWNER_OWNED = {"image": _IMAGE, "uid": _UID, "gid": _UID, "supplemental_gids": _UID, "fs_gid": _FSGID,
                 "pod_security_context": _FSGID, "container_security_context": _UID, "extra_pod_config": _FSGID,
                 "cmd": _CMD, "volumes": _HOME, "volume_mounts": _HOME, "common_labels": _CLEANUP,
                 # its "escape" would turn alice-b's {username} into alice-2db: the home's subPath, not /home/alice-b
                 "slug_scheme": _HOME}
OWNED: dict[tuple[str, ...], str] = {
    ("singleuser", "image", "name"): _IMAGE,
    ("singleuser", "image", "tag"): _IMAGE,
    ("singleuser", "uid"): _UID,
    ("singleuser", "fsGid"): _FSGID,
    ("singleuser", "cmd"): _CMD,
    ("singleuser", "extraPodConfig", "securityContext"): _FSGID,
    # Not all of singleuser.storage: its extraVolumes and extraVolumeMounts are the chart's way to add volumes.
    ("singleuser", "storage", "type"): _HOME,
    ("singleuser", "storage", "static"): _HOME,
    ("singleuser", "storage", "homeMountPath"): _HOME,
    ("singleuser", "extraEnv", "SLURM_TOKEN_URL"): "where the user's server gets its Slurm tokens",
    ("singleuser", "extraEnv", "HOME"): _HOME,
    ("hub", "extraConfig", "slurmUsers"): _UID,
    ("hub", "config", "Authenticator", "allowed_users"): _USERS,
    ("hub", "config", "Authenticator", "allow_existing_users"): _USERS,
    **{("hub", "config", "KubeSpawner", trait): why for trait, why in SPAWNER_OWNED.items()},
    ("hub", "config", "Spawner", "cmd"): _CMD,
    ("hub", "config", "JupyterHub", "authenticate_prometheus"): (
        "the proxy routes /hub/metrics from anywhere: only a token with the read:metrics scope (the metrics "
        "scraper's) may read it"),
}
_METRICS = ("the metrics scraper's hub service and its read:metrics role come from config `metrics` (README "
            "\"Metrics and alerts\")")
# The hub's NetworkPolicy rules: with metrics the program's (the scraper's admission) come first and the user's
# own rules follow (with_user_values()), so that neither takes the other's place.
HUB_INGRESS = ("hub", "networkPolicy", "ingress")
_EXTRA_FILE = "it is one of the stack's Slurm files or the user directory, at the paths of the image contract"
# With config `ldap`, the LDAPAuthenticator settings the program makes of it (components/jupyterhub.py
# ldap_authenticator_config()); the spawn hook reads the same directory.
LDAP_SECTION = ("hub", "config", "LDAPAuthenticator")
_LDAP = ("logins check the site's directory of config `ldap`, the one the spawn hook reads each user's ids from; "
         "change `ldap` instead (its other settings are yours, as is another `hub.config.JupyterHub."
         "authenticator_class`)")


def helm_merge(base: Any, override: Any) -> Any:
    """Helm's coalescing of values over defaults: maps merge, a null deletes the key, anything else replaces.

    Returns new dicts without nulls; leaves (strings, lists, Pulumi Outputs) are shared, never copied or changed.
    """
    if not isinstance(override, Mapping):
        return override
    merged = dict(base) if isinstance(base, Mapping) else {}
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = helm_merge(merged.get(key), value)
    return merged


def _layer(base: Mapping, override: Mapping) -> dict:
    """Helm's merging of several values files (`-f a -f b`): maps merge, anything else (null too) replaces."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        merged[key] = _layer(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    return merged


def read_user_values(values: Any, values_file: Any, project_dir: str = ".") -> dict:
    """`jupyterhub.valuesFile` (YAML, relative to the project) with `jupyterhub.values` (an object) over it.

    Nulls are kept: they are resolved against the program's values by `with_user_values()`.
    """
    combined: dict = {}
    if values_file not in (None, ""):
        path = str(values_file)
        try:
            text = Path(project_dir, path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError("jupyterhub.valuesFile", f"cannot read '{path}': {e.strerror}",
                              "give a YAML file of chart values, relative to the project directory") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            line = f" at line {where.line + 1}" if where else ""
            raise ConfigError("jupyterhub.valuesFile", f"'{path}' is not valid YAML{line}",
                              "fix the file (it holds chart values, as a z2jh config.yaml does)") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("jupyterhub.valuesFile", f"'{path}' does not hold a mapping of chart values",
                              "start it with top-level chart keys such as hub: or singleuser:")
        combined = loaded or {}
    if values is not None:
        if not isinstance(values, dict):
            raise ConfigError(KEY, "must be an object of chart values",
                              f"pulumi config set --path {KEY}.singleuser.memory.limit 2G (one per value)")
        combined = _layer(combined, values)
    return combined


def _walk(tree: Mapping, path: tuple = ()):
    for key, value in tree.items():
        yield path + (key,), value
        if isinstance(value, Mapping):
            yield from _walk(value, path + (key,))


def _walk_all(tree: Any, path: tuple = ()):
    """Like _walk, through lists too (an index is a path element)."""
    items = tree.items() if isinstance(tree, Mapping) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield path + (key,), value
        yield from _walk_all(value, path + (key,))


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(key)
    return tree


def _name(path: tuple) -> str:
    return ".".join([KEY, *map(str, path)])


def owned_paths(program: Mapping) -> dict[tuple, str]:
    """OWNED plus one entry per extraFiles entry, hub service, hub role and (config `ldap`) LDAPAuthenticator setting
    the program sets (its hub NetworkPolicy rules are not owned: the user's are added after them, HUB_INGRESS)."""
    files = (program.get("singleuser") or {}).get("extraFiles") or {}
    hub = program.get("hub") or {}
    metrics = {("hub", part, name): _METRICS for part in ("services", "loadRoles") for name in hub.get(part) or {}}
    ldap = {LDAP_SECTION + (name,): _LDAP for name in _get(program, LDAP_SECTION) or {}}
    return {**OWNED, **{("singleuser", "extraFiles", name): _EXTRA_FILE for name in files}, **metrics, **ldap}


def owned_list() -> str:
    """The README's list of the settings the program owns, by why (Markdown)."""
    by_why: dict[str, list[str]] = {}
    for path, why in OWNED.items():
        by_why.setdefault(why, []).append(f"`{'.'.join(path)}`")
    return "\n".join([*(f"- {', '.join(paths)}: {why}" for why, paths in by_why.items()),
                      f"- each `singleuser.extraFiles` entry the program sets: {_EXTRA_FILE}",
                      "- with `metrics.enabled`, `hub.services.metrics-scraper`, `hub.loadRoles.metrics-scraper`: "
                      f"{_METRICS} (your `hub.networkPolicy.ingress` rules are added after the scraper's)",
                      f"- with `ldap`, each `hub.config.LDAPAuthenticator` setting the program sets: {_LDAP}",
                      "- `kubespawner_override.TRAIT` in a profile of `singleuser.profileList`, for each "
                      "`hub.config.KubeSpawner.TRAIT` above"])


def with_user_values(program: Mapping, user: Mapping, defaults: Mapping, schema: Mapping) -> dict:
    """The program's chart values with the user's over them, for the Release (no nulls left).

    program: jupyterhub_values() (may hold Pulumi Outputs); user: read_user_values(); defaults, schema: load_chart().
    Raises ConfigError when the user sets an owned key, gives a null for a chart default, or when the chart
    defaults + program + user values fail the chart's schema.
    """
    owned = owned_paths(program)
    for path, value in _walk(user):
        for own, why in owned.items():
            below_or_at = path[:len(own)] == own
            replaces_parent = own[:len(path)] == path and not isinstance(value, Mapping)
            if below_or_at or replaces_parent:
                raise ConfigError(_name(path), f"is set by this program: {why}",
                                  f"remove it from {KEY} (and jupyterhub.valuesFile)")
    for path, _ in _walk_all(user):
        if len(path) > 1 and path[-2] == "kubespawner_override" and path[-1] in SPAWNER_OWNED:
            raise ConfigError(_name(path), f"is set by this program: {SPAWNER_OWNED[path[-1]]}",
                              f"remove it from the profile in {KEY} (and jupyterhub.valuesFile)")
    for path, value in _walk(user):
        if value is None and _get(defaults, path) is not None:
            raise ConfigError(_name(path), "is null, which in Helm deletes the chart's default, but Pulumi drops "
                              "nulls from a Release's values, so the default would stay",
                              "give the value you want instead of null")
    merged = helm_merge(program, user)
    program_rules, user_rules = _get(program, HUB_INGRESS), _get(user, HUB_INGRESS)
    if isinstance(program_rules, list) and isinstance(user_rules, list):
        merged["hub"]["networkPolicy"]["ingress"] = [*program_rules, *user_rules]  # helm_merge's dicts: new ones
    check_schema(helm_merge(defaults, _plain(merged)), schema)
    return merged


def _plain(tree: Any) -> Any:
    """Outputs (all strings in the program's values) as a placeholder string, for the schema check."""
    if isinstance(tree, Mapping):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_plain(v) for v in tree]
    return "<computed>" if isinstance(tree, pulumi.Output) else tree


def check_schema(values: Mapping, schema: Mapping) -> None:
    """Validate complete chart values (defaults included) with the chart's draft-07 schema, as Helm does.

    Raises ConfigError for the first error by key path; the message names the rule, never the value.
    """
    import jsonschema  # only needed when JupyterHub is deployed

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(values),
                    key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    error = errors[0]
    path = tuple(error.absolute_path)
    others = f" ({len(errors) - 1} more error(s) after this one)" if len(errors) > 1 else ""
    if error.validator == "additionalProperties":
        allowed = set((error.schema or {}).get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        close = difflib.get_close_matches(extra[0], allowed, n=1) if extra else []
        raise ConfigError(_name(path + tuple(extra[:1])), f"is not a value of the JupyterHub chart{others}",
                          f"did you mean '{close[0]}'?" if close else "see the chart's values reference")
    if error.validator == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        problem = f"must be of type {' or '.join(types)}"
    elif error.validator == "enum":
        problem = f"must be one of {error.validator_value}"
    elif error.validator == "required":
        problem = f"misses a required key ({', '.join(error.validator_value)})"
    else:
        problem = f"breaks the chart schema's '{error.validator}' rule ({str(error.validator_value)[:80]})"
    raise ConfigError(_name(path), problem + others, "see the chart's values reference (values.schema.yaml)")


_TAG = re.compile(r"\btag v?([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]*[0-9A-Za-z])?)", re.IGNORECASE)


def source_tags(directory: Path) -> set[str]:
    """The chart versions `tag X.Y.Z` (any case) in `directory`'s SOURCE.md (none without one)."""
    source = directory / "SOURCE.md"
    return set(_TAG.findall(source.read_text(encoding="utf-8"))) if source.is_file() else set()


def chart_version(directory: Path) -> Optional[str]:
    """The chart version of the files in `directory`: its Chart.yaml's `version` (a `helm pull`), else the one
    `tag X.Y.Z` its SOURCE.md names (a copy from the chart's git tree, which has no Chart.yaml); None if neither."""
    if (directory / "Chart.yaml").is_file():
        chart = yaml.safe_load((directory / "Chart.yaml").read_text(encoding="utf-8"))
        return str(chart["version"]) if isinstance(chart, dict) and chart.get("version") else None
    tags = source_tags(directory)
    return tags.pop() if len(tags) == 1 else None


def _chart_files(directory: Path, version: str) -> tuple[Optional[tuple[Path, Path]], str]:
    """(values.yaml, values schema) in `directory` if they are chart `version`'s, else None and why not."""
    schema = next((directory / s for s in ("values.schema.yaml", "values.schema.json") if (directory / s).is_file()),
                  None)
    if not (directory / "values.yaml").is_file() or schema is None:
        return None, f"{directory} holds no values.yaml and values schema"
    found = chart_version(directory)
    tags = set() if (directory / "Chart.yaml").is_file() else source_tags(directory)
    if found is None and len(tags) > 1:
        return None, f"{directory} names several chart versions in its SOURCE.md (tags {', '.join(sorted(tags))})"
    if found is None:
        return None, f"{directory} does not say its chart version (no Chart.yaml, no 'tag X.Y.Z' in a SOURCE.md)"
    if found != version:
        return None, f"{directory} is chart {found}, not the pinned {version}"
    return (directory / "values.yaml", schema), ""


def chart_cache() -> Path:
    """Where `helm pull` keeps the charts: $SCI_CACHE/charts, else the user's cache directory ($XDG_CACHE_HOME, else
    ~/.cache)/slurm-cloud-integration/charts (a preview in CI)."""
    cache = os.environ.get("SCI_CACHE")
    return (Path(cache) if cache else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", PROJECT)
            ) / "charts"


def load_chart(version: str, repo: str) -> tuple[dict, dict]:
    """(values.yaml, values schema) of the JupyterHub chart `version`, parsed.

    Looked for, in order: `chart_cache()/jupyterhub-<version>/jupyterhub` (a `helm pull` of that version),
    `$SCI_Z2JH_REFERENCE` (a directory holding both files), then `helm pull` into the first. A directory is used
    only if it is that version (chart_version()). Raises ConfigError naming what to set when none works.
    """
    pulled = chart_cache() / f"{CHART}-{version}"
    reference = os.environ.get("SCI_Z2JH_REFERENCE")
    found, why = None, []
    for directory in [pulled / CHART, *([Path(reference)] if reference else [])]:
        found, problem = _chart_files(directory, version)
        if found:
            break
        why.append(problem)
    if found is None and not shutil.which("helm"):
        why.append("helm is not installed to pull it")
    elif found is None:
        problem = _helm_pull(version, repo, pulled)
        found, problem = _chart_files(pulled / CHART, version) if problem is None else (None, problem)
        why.append(problem)
    if found is None:
        raise ConfigError("jupyterhub.chartVersion", f"the schema of chart {version} is needed to check "
                          f"jupyterhub.values, but: {'; '.join(why)}",
                          f"install helm 3 and let this machine reach {repo} (then helm pulls it into {pulled}), or "
                          f"export SCI_Z2JH_REFERENCE=DIR holding chart {version}'s values.yaml, values.schema.yaml "
                          "(or .json) and Chart.yaml (or a SOURCE.md naming its tag)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    defaults, schema = (yaml.load(p.read_text(encoding="utf-8"), Loader=loader) for p in found)
    return defaults, schema


def _helm_pull(version: str, repo: str, target: Path) -> Optional[str]:
    """`helm pull --untar` into target (atomically); the reason on failure, None on success."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=target.parent)
    try:
        run = subprocess.run(["helm", "pull", CHART, "--repo", repo, "--version", version, "--untar",
                              "--untardir", tmp], capture_output=True, text=True, timeout=_PULL_TIMEOUT)
        if run.returncode != 0:
            return f"helm pull failed: {run.stderr.strip()[-300:]}"
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return None
    except subprocess.TimeoutExpired:
        return f"helm pull of {repo} timed out after {_PULL_TIMEOUT} s"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
