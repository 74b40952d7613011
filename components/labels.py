"""The app.kubernetes.io/* labels every object of this program carries."""

PART_OF = "slurm-cloud-integration"


def labels(app: str, component: str) -> dict[str, str]:
    """Labels for an object of `app` (its app.kubernetes.io/name) playing `component`."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector(app: str) -> dict[str, str]:
    """The stable subset of `labels()` that Services and workloads select on."""
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": PART_OF}
