# Sourced by every project script: where the machine-local tools, caches and state live.
# Nothing here is inside the checkout; delete $SCI_CACHE to start from scratch.
export SCI_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SCI_CACHE="${SCI_CACHE:-/var/cache/slurm-cloud-integration}"

# Pulumi: CLI, language host and plugins built from Go modules; local file state; passphrase secrets.
export PULUMI_HOME="$SCI_CACHE/pulumi-home"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$SCI_CACHE/state}"
export PULUMI_CONFIG_PASSPHRASE_FILE="${PULUMI_CONFIG_PASSPHRASE_FILE:-$SCI_CACHE/pulumi-passphrase}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=true
export PATH="$SCI_CACHE/bin:$SCI_ROOT/.venv/bin:$PATH"

# Containers: podman with runc and cgroupfs; its Docker-compatible API for pulumi-docker; a local registry.
export CONTAINERS_CONF="$SCI_CACHE/containers.conf"
export SCI_PODMAN_SOCKET="$SCI_CACHE/podman.sock"
export DOCKER_HOST="${DOCKER_HOST:-unix://$SCI_PODMAN_SOCKET}"
export SCI_REGISTRY="${SCI_REGISTRY:-127.0.0.1:5000}"

# The JupyterHub chart's values.yaml and values schema, to check jupyterhub.values offline (components/chart_values.py).
export SCI_Z2JH_REFERENCE="${SCI_Z2JH_REFERENCE:-$SCI_ROOT/../shared/reference/z2jh}"

# The single-node Kubernetes of toolchain/kube (the `cluster` stack and the end-to-end tests).
export SCI_KUBECONFIG="$SCI_CACHE/kube/admin.kubeconfig"
