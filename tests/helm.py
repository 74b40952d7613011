"""The JupyterHub chart the committed stacks pin, found as `pulumi preview` finds it, for tests that check chart
values offline."""

from __future__ import annotations

import pytest
import yaml

from components.chart_values import helm_merge, load_chart  # noqa: F401  (helm_merge: the program's, for the tests)
from components.config import ConfigError, JupyterHub
from tests.project_env import PREFIX, ROOT

# jupyterhub.chartVersion of Pulumi.dev.yaml
VERSION = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"][f"{PREFIX}jupyterhub"]["chartVersion"]


def chart() -> tuple[dict, dict]:
    """(values.yaml, values schema) of chart VERSION, parsed (components.chart_values.load_chart); fails the test
    with the program's message if it cannot be found."""
    try:
        return load_chart(VERSION, JupyterHub().chart_repo)
    except ConfigError as e:
        pytest.fail(str(e), pytrace=False)
