"""The JupyterHub chart's reference values, for tests that check chart values offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from components.chart_values import helm_merge  # noqa: F401  (the program's merge, for the tests' use)

# The official chart's values.yaml and values.schema.yaml (reference data beside the repository, not part of it).
Z2JH = Path(os.environ.get("SCI_Z2JH_REFERENCE")
            or Path(__file__).resolve().parents[2] / "shared" / "reference" / "z2jh")


def chart_reference(name: str):
    """`values.yaml` or `values.schema.yaml` of the chart, parsed; fails the test clearly if it is missing."""
    path = Z2JH / name
    if not path.is_file():
        pytest.fail(f"JupyterHub chart reference {path} is missing: the chart-values checks need the chart's "
                    "values.yaml and values.schema.yaml in ../shared/reference/z2jh/ beside the repository "
                    "(or a directory named by SCI_Z2JH_REFERENCE)", pytrace=False)
    return yaml.safe_load(path.read_text())
