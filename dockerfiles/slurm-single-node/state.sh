#!/bin/bash
# Part of slurm-single-node's entrypoint: the state volume (everything that must survive a restart) and the keys.
# make_state NODE...: its directories (database, StateSaveLocation, one slurmd spool per node, generated keys) and
#   the run-time ones, with the owners the daemons need.
# install_keys: the munge key (with slurm.conf's AuthType=auth/slurm the slurm.key instead) and the JWT key from
#   $SLURM_KEYS_DIR (default the keys mount), else the ones generated at the first start onto the volume and reused
#   at every later start, installed where munged and Slurm read them.

make_state() {
  local n
  install -d -m 0755 "$FACT_STATE_DIR"
  install -d -m 0700 -o root -g root "$FACT_STATE_DIR/keys"
  install -d -m 0700 -o slurm -g slurm "$FACT_STATE_DIR/slurmctld"
  install -d -m 0755 "$FACT_STATE_DIR/slurmd" "$FACT_RUN_DIR"
  rm -f "$FACT_RUN_DIR/ready"  # the container file system survives a restart
  install -d -m 0755 -o slurm -g slurm "$FACT_LOG_DIR"
  for n in "$@"; do install -d -m 0755 "$FACT_STATE_DIR/slurmd/$n"; done
  munge_dirs
}

install_keys() {
  if conf_auth_slurm; then
    key_file "$FACT_SLURM_KEY_FILE" "$FACT_SLURM_KEY_BYTES"
    daemon_key_install "$KEY_FILE"
  else
    key_file "$FACT_MUNGE_KEY_FILE" "$FACT_MUNGE_KEY_BYTES"
    munge_key_install "$KEY_FILE"
  fi
  key_file "$FACT_JWT_KEY_FILE" "$FACT_JWT_KEY_BYTES"
  install -m 0600 -o slurm -g slurm "$KEY_FILE" "$FACT_JWT_KEY_PATH"
}

# key_file NAME BYTES: KEY_FILE is the mounted key NAME, else the volume's, generated (BYTES random bytes) if none.
key_file() {
  KEY_FILE="${SLURM_KEYS_DIR:-$FACT_KEYS_MOUNT}/$1"
  [[ -s "$KEY_FILE" ]] && return 0
  KEY_FILE="$FACT_STATE_DIR/keys/$1"
  [[ -s "$KEY_FILE" ]] && return 0
  log "no ${SLURM_KEYS_DIR:-$FACT_KEYS_MOUNT}/$1 mounted: generating one into $KEY_FILE (kept for later starts)"
  head -c "$2" /dev/urandom > "$KEY_FILE.tmp" && chmod 0400 "$KEY_FILE.tmp" && mv "$KEY_FILE.tmp" "$KEY_FILE"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: state.sh NODE... (as root, in the image)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  install -d -m 0755 /etc/slurm
  make_state "$@"
  install_keys
fi
