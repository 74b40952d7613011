"""Helm's coalescing of user values over a chart's defaults, for tests that check chart values offline."""

from __future__ import annotations

import copy


def helm_merge(base, override):
    """Maps merge, a null deletes the key, anything else replaces."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
