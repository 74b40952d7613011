"""slurm-cloud-integration: `pulumi up --stack <env>` wires Slurm to Kubernetes. See README.md."""

import pulumi

from components.config import load
from components.stack import build

outputs = build(load())
for name, value in outputs.items():
    pulumi.export(name, value)
