#!/bin/bash
# The distributed deployment's entrypoint (components/distributed.py): one role of Slurm per pod, from this image.
#   distributed.sh accounting   munged (none with auth/slurm: start_auth), MariaDB (data on the state claim),
#                               slurmdbd; registers the cluster and the directory's users (associations), as the
#                               single node does; with the site's LDAP directory, follows its users' associations
#                               (directory.sh accounting)
#   distributed.sh controller   munged (with auth/slurm sackd instead), then slurmctld (StateSaveLocation on the state
#                               claim, configless) once the accounting pod knows the cluster (slurmctld dies without
#                               slurmdbd's TRES)
#   distributed.sh node         munged (none with auth/slurm), the directory's homes, then one slurmd: a dynamic node
#                               (-Z) named by the pod's hostname, its files fetched from slurmctld ($SLURM_CONF_SERVER),
#                               registering with $SLURMD_NODE_CONF (the pod's CPUs and memory); with the site's LDAP
#                               directory, follows its users' homes (directory.sh homes)
#   distributed.sh drain        a node pod's preStop hook: drains its Slurm node, waits up to $SLURM_DRAIN_GRACE_S for
#                               its jobs, sets it DOWN if some still run (they end NODE_FAIL), then deletes the node
#                               (a replacement pod registers it again: slurmd -Z)
#   distributed.sh ready        the probes: the mode's daemons answered once and still answer
# With the site's LDAP directory (config `ldap`: nslcd.conf in the directory volume) each mode first starts nslcd, so
# its daemons resolve the directory's users (slurmctld and slurmdbd their names and ids, slurmd and slurmstepd a job's
# user). Each daemon is supervised as in the single node (lib.sh): nslcd and the directory's sync are started again
# when they die; any other that dies ends the container, and Kubernetes starts it again. The single node's parts
# (database.sh, accounting.sh, homes.sh, directory.sh) do the shared steps.
set -euo pipefail
PROG="slurm-${1:-distributed}"
LIB=/usr/local/lib/slurm-single-node
# shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
CONFIG="${SLURM_CONFIG_DIR:-$FACT_CONFIG_MOUNT}"
READY="$FACT_RUN_DIR/ready"
MODE_FILE="$FACT_RUN_DIR/mode"
LOGS="$FACT_LOG_DIR"
# shellcheck source-path=SCRIPTDIR source=directory.sh
source "$LIB/directory.sh"  # start_nslcd, follow_directory: every mode but drain and ready
DB_WAIT_S="${SLURM_ACCOUNTING_WAIT_S:-600}"  # the controller's wait for a first start's new database
DRAIN_REASON="pod stopping"  # the Reason a stopping node pod drains its node with (drain; node resumes it)
DELETE_WAIT_S=20  # drain: how long the node's DOWN jobs may take to end before it is deleted (within DRAIN_MARGIN_S)

install_files() {  # install_files FILE...: the mounted Slurm files into /etc/slurm; slurm-image.env's variables
  local f
  [[ -f "$CONFIG/slurm-image.env" ]] || die "missing $CONFIG/slurm-image.env: mount the files rendered by components/slurm_files.py"
  load_env "$CONFIG/slurm-image.env"
  SLURM_INSTALLED="$(dpkg-query -W -f='${Version}' slurmctld)"
  [[ "$SLURM_INSTALLED" == "$SLURM_VERSION".* ]] || \
    die "the configuration is rendered for Slurm $SLURM_VERSION but this image has Slurm $SLURM_INSTALLED"
  install -d -m 0755 /etc/slurm
  for f in "$@"; do
    [[ -f "$CONFIG/$f" ]] || die "missing $CONFIG/$f"
    if [[ "$f" == slurmdbd.conf ]]; then install -m 0600 -o slurm -g slurm "$CONFIG/$f" /etc/slurm/
    else install -m 0644 -o root -g root "$CONFIG/$f" /etc/slurm/; fi
  done
}

# start_auth: munged with the mounted munge key; or, with the mounted slurm.key (config authType auth/slurm; a node
# pod has no slurm.conf to read before slurmd fetches it), that key for the daemons (daemon_key_install), no munged.
AUTH_SLURM=""
[[ -s "$FACT_KEYS_MOUNT/$FACT_SLURM_KEY_FILE" ]] && AUTH_SLURM=yes
start_auth() {
  if [[ -n "$AUTH_SLURM" ]]; then
    daemon_key_install "$FACT_KEYS_MOUNT/$FACT_SLURM_KEY_FILE"
    log "auth/slurm: no munged"
    return 0
  fi
  munge_dirs
  munge_key_install "$FACT_KEYS_MOUNT/$FACT_MUNGE_KEY_FILE"
  sup_start munged "$LOGS/munged.out" /var/log/munge/munged.log "${MUNGED[@]}" --foreground
  sup_wait "munged to answer (munge -n | unmunge)" munge_ok
  log "munged ready"
}

run_dirs() {
  install -d -m 0755 "$FACT_RUN_DIR"
  install -d -m 0755 -o slurm -g slurm "$LOGS"
  rm -f "$READY"
  echo "$1" > "$MODE_FILE"
}

accounting() {
  # shellcheck source-path=SCRIPTDIR source=database.sh
  source "$LIB/database.sh"
  # shellcheck source-path=SCRIPTDIR source=accounting.sh
  source "$LIB/accounting.sh"
  run_dirs accounting
  install_files slurm.conf slurmdbd.conf
  install -m 0600 -o slurm -g slurm "$FACT_KEYS_MOUNT/$FACT_JWT_KEY_FILE" "$FACT_JWT_KEY_PATH"
  install -d -m 0755 "$FACT_STATE_DIR"
  sup_stop_on_signals
  start_nslcd
  start_auth
  seed_database
  mariadb_command
  sup_start mariadb "$LOGS/mariadb.out" "$LOGS/mariadb.out" "${MARIADB[@]}"
  sup_wait "MariaDB to answer on $MARIADB_SOCKET" sql -e 'SELECT 1'
  local user pass db
  user="$(dbd_setting StorageUser)"; pass="$(dbd_setting StoragePass)"; db="$(dbd_setting StorageLoc)"
  grant_database "$db" "$user" "$pass" || die "could not create database $db and user $user"
  log "MariaDB ready"
  sup_start slurmdbd "$LOGS/slurmdbd.out" "$LOGS/slurmdbd.log" /usr/sbin/slurmdbd -D
  # sacctmgr reaches slurmdbd through its Service name (slurm.conf AccountingStorageHost), published before Ready.
  sup_wait "slurmdbd to answer (sacctmgr show cluster)" slurmdbd_clusters
  register_cluster "$SLURM_CLUSTER_NAME"
  if ldap_configured; then follow_directory accounting "$SLURM_CLUSTER_NAME"; else sync_users "$SLURM_CLUSTER_NAME"; fi
  touch "$READY"
  log "ready: slurmdbd of cluster $SLURM_CLUSTER_NAME (Slurm $SLURM_INSTALLED)"
  sup_watch nslcd directory-sync
}

dbd_setting() { sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" /etc/slurm/slurmdbd.conf | tail -n1; }

cluster_known() { timeout 5 sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$SLURM_CLUSTER_NAME"; }
ctld_up() { timeout 5 scontrol ping 2>/dev/null | grep -q 'is UP'; }

controller() {
  run_dirs controller
  install_files slurm.conf cgroup.conf
  # gres.conf where the stack renders one (config node.gpus): slurmctld serves it to the configless node pods.
  if [[ -f "$CONFIG/gres.conf" ]]; then install_files gres.conf; fi
  [[ "$(hostname)" == "$SLURM_CONTROLLER_HOST" ]] || \
    die "this pod's hostname is '$(hostname)' but slurm.conf names the controller '$SLURM_CONTROLLER_HOST'"
  install -m 0600 -o slurm -g slurm "$FACT_KEYS_MOUNT/$FACT_JWT_KEY_FILE" "$FACT_JWT_KEY_PATH"
  install -d -m 0755 "$FACT_STATE_DIR"
  install -d -m 0700 -o slurm -g slurm "$FACT_STATE_DIR/slurmctld"
  sup_stop_on_signals
  start_nslcd
  start_auth
  if [[ -n "$AUTH_SLURM" ]]; then  # this pod's commands (sacctmgr below) need credentials before slurmctld serves them
    command -v sackd >/dev/null || die "auth/slurm needs sackd (Slurm 23.11+), which this image lacks"
    rm -f "$SACK_SOCKET"
    sup_start sackd "$LOGS/sackd.out" "$LOGS/sackd.out" sackd -D
    sup_wait "sackd to listen on $SACK_SOCKET" sack_ok
  fi
  log "waiting for the accounting pod to know cluster $SLURM_CLUSTER_NAME"
  START_TIMEOUT="$DB_WAIT_S" sup_wait "slurmdbd to know cluster $SLURM_CLUSTER_NAME (sacctmgr show cluster)" cluster_known
  sup_start slurmctld "$LOGS/slurmctld.out" "$LOGS/slurmctld.log" /usr/sbin/slurmctld -D
  sup_wait "slurmctld to answer (scontrol ping)" ctld_up
  touch "$READY"
  log "ready: slurmctld of cluster $SLURM_CLUSTER_NAME (Slurm $SLURM_INSTALLED, configless)"
  sup_watch nslcd
}

ctld_listens() { timeout 2 bash -c "exec 3<>/dev/tcp/${SLURM_CONF_SERVER%:*}/${SLURM_CONF_SERVER##*:}"; }
node_known() {  # this pod's node, registered and not DOWN (scontrol reads slurmd's fetched files, /run/slurm/conf)
  local state
  state="$(timeout 5 scontrol show node "$(hostname)" 2>/dev/null | sed -n 's/^ *State=\([^ ]*\).*/\1/p')"
  [[ -n "$state" && "$state" != DOWN* ]]
}

node() {
  # shellcheck source-path=SCRIPTDIR source=homes.sh
  source "$LIB/homes.sh"
  [[ -n "${SLURM_CONF_SERVER:-}" && -n "${SLURMD_NODE_CONF:-}" ]] || die "SLURM_CONF_SERVER and SLURMD_NODE_CONF are required"
  run_dirs node
  install -d -m 0755 "$FACT_STATE_DIR" "$FACT_STATE_DIR/slurmd"
  make_homes
  sup_stop_on_signals
  start_nslcd
  if ldap_configured; then follow_directory homes; fi  # the node pods mount the shared home: they make the homes
  start_auth
  log "waiting for slurmctld at $SLURM_CONF_SERVER"
  START_TIMEOUT="$DB_WAIT_S" sup_wait "slurmctld to listen at $SLURM_CONF_SERVER" ctld_listens
  # With auth/slurm slurmd fetches its files with the key it finds at /etc/slurm/slurm.key and goes on using it
  # (Slurm's fetch_config.c sets SLURM_SACK_KEY to it; that variable alone switches any AuthType to auth/slurm).
  sup_start slurmd "$LOGS/slurmd.out" "$LOGS/slurmd-$(hostname).log" \
    /usr/sbin/slurmd -D -Z --conf-server "$SLURM_CONF_SERVER" --conf "$SLURMD_NODE_CONF"
  sup_wait "node $(hostname) to register with slurmctld" node_known
  # A pod whose preStop hook drained its node but could not delete it (slurmctld away): this one resumes it.
  local show
  show="$(timeout 5 scontrol show node "$(hostname)" 2>/dev/null)" || true
  if [[ "$show" == *"Reason=$DRAIN_REASON"* ]]; then
    timeout 10 scontrol update nodename="$(hostname)" state=resume && log "resumed node $(hostname), left drained"
  fi
  touch "$READY"
  log "ready: node $(hostname) ($SLURMD_NODE_CONF)"
  sup_watch nslcd directory-sync
}

jobs_on() {  # jobs_on NODE: 0 it runs or ends a job, 1 it runs none, 2 slurmctld did not answer
  local out
  out="$(timeout 10 squeue -h -w "$1" -o %i 2>/dev/null)" || return 2
  [[ -n "$out" ]]
}

UNANSWERED=0  # drain: squeues in a row that slurmctld did not answer
jobs_done() {  # jobs_done NODE: its jobs ended, or slurmctld is gone (3 squeues unanswered: pulumi destroy)
  local rc=0
  jobs_on "$1" || rc=$?
  case "$rc" in
    0) UNANSWERED=0; return 1 ;;
    1) return 0 ;;
    *) (( ++UNANSWERED >= 3 )) ;;
  esac
}

drain() {  # the node pod's preStop hook: Kubernetes sends SIGTERM once it returns, or at the pod's grace period's end
  PROG=slurm-drain
  exec >>/proc/1/fd/1 2>&1 || true  # into the pod's log: an exec hook's own output is shown nowhere
  local node grace show
  node="$(hostname)"; grace="${SLURM_DRAIN_GRACE_S:-300}"
  if ! show="$(timeout 10 scontrol show node "$node" 2>/dev/null)"; then
    log "slurmctld did not answer for node $node (gone, or the node unknown): stopping at once"
    return 0
  fi
  if [[ "$show" =~ State=[^[:space:]]*DRAIN && "$show" == *"Reason="* && "$show" != *"Reason=$DRAIN_REASON"* ]]; then
    log "node $node was drained by an operator: left drained, and a pod of its name joins it so"
    return 0
  fi
  if ! timeout 10 scontrol update nodename="$node" state=drain reason="$DRAIN_REASON"; then
    log "slurmctld did not drain node $node: stopping at once"
    return 0
  fi
  log "drained node $node; waiting up to ${grace}s for its jobs"
  local RETRY_INTERVAL_S=1  # retry_until: one squeue a second per stopping node
  if ! retry_until "$grace" jobs_done "$node"; then
    log "grace of ${grace}s over: node $node DOWN, its jobs end NODE_FAIL (or are requeued)"
    timeout 10 scontrol update nodename="$node" state=down reason="$DRAIN_REASON, grace over" || true
  elif (( UNANSWERED >= 3 )); then
    log "slurmctld did not answer 3 times: stopping at once"
    return 0
  fi
  # refused while the node has jobs (dynamic_nodes.html): the DOWN ones take a moment to end
  if retry_until "$DELETE_WAIT_S" timeout 10 scontrol delete nodename="$node"; then
    log "deleted node $node after ${SECONDS}s"
  else
    log "could not delete node $node: it stays drained until a pod of its name resumes it"
  fi
}

ready() {  # the probe: the mode's start finished, and its main daemon still answers
  [[ -f "$READY" ]] || { echo "not ready: starting"; exit 1; }
  case "$(cat "$MODE_FILE")" in
    accounting) load_env "$CONFIG/slurm-image.env"; cluster_known || { echo "not ready: slurmdbd does not answer"; exit 1; } ;;
    controller) ctld_up || { echo "not ready: slurmctld does not answer scontrol ping"; exit 1; } ;;
    node) kill -0 "$(cat "$FACT_RUN_DIR/slurmd-$(hostname).pid" 2>/dev/null)" 2>/dev/null \
            || { echo "not ready: slurmd is not running"; exit 1; } ;;
  esac
}

case "${1:-}" in
  accounting|controller|node|drain|ready) "$1" ;;
  *) die "usage: distributed.sh accounting|controller|node|drain|ready" ;;
esac
