"""ConfigError, how every check of the stack configuration fails: its own module, so that the modules whose checks
`config.parse()` runs (chart_values, jupyterhub) can raise it without importing config."""

import pulumi

PROJECT = "slurm-cloud-integration"  # Pulumi.yaml's name: the prefix of every config key


class ConfigError(pulumi.RunError):
    """A stack configuration value is missing or wrong. The message says which, why and the fix."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key
        super().__init__(f"config key '{PROJECT}:{key}': {problem}. Fix: {fix}")
