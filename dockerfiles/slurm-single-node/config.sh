#!/bin/bash
# Part of slurm-single-node's entrypoint: the mounted configuration, checked and installed into /etc/slurm.
# read_config: from $SLURM_CONFIG_DIR (default the config mount); then slurm-image.env's variables are exported, and
# DB_USER, DB_PASS, DB_NAME (slurmdbd.conf), NODES (slurm.conf's NodeName lines) and SLURM_INSTALLED (the image's
# Slurm) are set. Stops the start with a message naming the fix when the files do not fit this image or container.

read_config() {
  local dir="${SLURM_CONFIG_DIR:-$FACT_CONFIG_MOUNT}" f
  for f in slurm.conf cgroup.conf slurmdbd.conf slurm-image.env; do
    [[ -f "$dir/$f" ]] || die "missing $dir/$f: mount the files rendered by components/slurm_files.py"
  done
  load_env "$dir/slurm-image.env"  # rendered at deploy time (configs/slurm-image.env.j2)
  SLURM_INSTALLED="$(dpkg-query -W -f='${Version}' slurmctld)"
  [[ "$SLURM_INSTALLED" == "$SLURM_VERSION".* ]] || \
    die "the configuration is rendered for Slurm $SLURM_VERSION but this image has Slurm $SLURM_INSTALLED: build the image with DEBIAN_SUITE for $SLURM_VERSION or render for ${SLURM_INSTALLED%%.*}.$(cut -d. -f2 <<<"$SLURM_INSTALLED")"
  [[ "$(hostname)" == "$SLURM_CONTROLLER_HOST" ]] || \
    die "this container's hostname is '$(hostname)' but slurm.conf names the controller '$SLURM_CONTROLLER_HOST': run it with --hostname $SLURM_CONTROLLER_HOST (Kubernetes: pod spec hostname)"

  install -d -m 0755 /etc/slurm
  install -m 0644 -o root -g root "$dir/slurm.conf" "$dir/cgroup.conf" /etc/slurm/
  install -m 0600 -o slurm -g slurm "$dir/slurmdbd.conf" /etc/slurm/slurmdbd.conf
  DB_USER="$(dbd_setting StorageUser)"; DB_PASS="$(dbd_setting StoragePass)"; DB_NAME="$(dbd_setting StorageLoc)"
  [[ -n "$DB_USER" && -n "$DB_PASS" && -n "$DB_NAME" ]] || die "slurmdbd.conf needs StorageUser, StoragePass and StorageLoc"
  mapfile -t NODES < <(sed -n 's/^[[:space:]]*NodeName=\([^[:space:]]*\).*/\1/p' /etc/slurm/slurm.conf)
  ((${#NODES[@]})) || die "slurm.conf has no NodeName line"
}

dbd_setting() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" /etc/slurm/slurmdbd.conf | tail -n1; }

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: config.sh (prints what it read)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  read_config
  echo "Slurm $SLURM_INSTALLED, cluster $SLURM_CLUSTER_NAME, nodes ${NODES[*]}, database $DB_NAME of $DB_USER"
fi
