#!/bin/bash
# The image scripts' library: messages, munged, slurmrestd, waiting and supervision, written once for slurm-client
# (and the Jupyter images built FROM it) and slurm-single-node. In the images: /usr/local/lib/slurm-image/lib.sh,
# beside facts.sh (the program's paths, ports and key sizes, made by `python -m components.image_facts`).
# Sourced, after the script sets PROG (its name in messages); it only defines variables and functions.
# SLURM_IMAGE_LIB names another directory holding both (the tests run scripts from dockerfiles/ so).

# shellcheck source-path=SCRIPTDIR source=facts.sh
source "${BASH_SOURCE[0]%/*}/facts.sh"

PROG="${PROG:-${0##*/}}"
LOG_T0="${EPOCHREALTIME/[.,]/}"  # microseconds; log() counts from here
START_TIMEOUT="${SLURM_START_TIMEOUT:-60}"  # each start-up wait of sup_wait, in seconds

# --- messages ------------------------------------------------------------------------------------------------
log() { printf '[%s +%5.2fs] %s\n' "$PROG" "$(( (${EPOCHREALTIME/[.,]/} - LOG_T0) / 10000 ))e-2" "$*"; }
die() { echo "$PROG: ERROR: $*" >&2; exit 1; }

# load_env FILE: the variables of a rendered slurm-image.env (configs/slurm-image.env.j2), exported.
load_env() {
  set -a
  # shellcheck source=/dev/null
  source "$1"
  set +a
}

# --- munge ---------------------------------------------------------------------------------------------------
# munged as its own user; add --foreground (supervised) or --force (a daemon).
# shellcheck disable=SC2034  # for the scripts that source this
MUNGED=(setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged)
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }  # does the local munged answer?
munge_dirs() { install -d -m 0755 -o munge -g munge /run/munge /var/log/munge /var/lib/munge; }  # its run-time ones
munge_key_install() { install -m 0400 -o munge -g munge "$1" /etc/munge/munge.key; }  # munge_key_install SRC

# --- auth/slurm: sackd ------------------------------------------------------------------------------------------
# A site with AuthType=auth/slurm (Slurm's own authentication, no munged): the clients hold its slurm.key, which
# only sackd reads (Slurm's authentication.html: login nodes run sackd; the commands, as any user, get and check
# their credentials through its socket, which tells it their uid, and never read the key). SLURM_KEY: root's, 0600
# (Slurm refuses a key others may read); sackd reads it there in configless mode too (SLURM_SACK_KEY), where
# slurm.conf is its fetched copy in /run/slurm/conf. auth_slurm: is this container set up for auth/slurm?
SLURM_KEY=/etc/slurm/slurm.key
# shellcheck disable=SC2034  # for the scripts that source this
SACK_SOCKET="$FACT_RUN_DIR/sack.socket"
# shellcheck disable=SC2034  # for the scripts that source this
SACKD_PID="$FACT_RUN_DIR/sackd.pid"
sack_ok() { [[ -S "$SACK_SOCKET" ]]; }  # does sackd listen?
auth_slurm() { [[ -e "$SLURM_KEY" ]]; }
slurm_key_install() { install -d -m 0755 /etc/slurm && install -m 0600 -o root -g root "$1" "$SLURM_KEY"; }
# The stack's own Slurm with AuthType=auth/slurm (config authType; conf_auth_slurm reads the installed slurm.conf): no
# munged; slurm.key is SlurmUser's, 0600 (slurmctld and slurmdbd read it as slurm, slurmd and sackd as root), and each
# daemon serves its pod's commands through its own sack socket, which the commands try in this order: slurmd's (or
# sackd's) in $FACT_RUN_DIR, slurmctld's in /run/slurmctld, slurmdbd's in /run/slurmdbd (Slurm's sack.c and
# sack_api.c, after $SLURM_SACK_SOCKET and /run/slurm-<ClusterName>, neither of which is used here).
# daemon_key_install SRC: the key, and the two directories SlurmUser's (slurmctld and slurmdbd make their sockets as
# SlurmUser).
conf_auth_slurm() { grep -qiE '^[[:space:]]*AuthType[[:space:]]*=[[:space:]]*auth/slurm[[:space:]]*$' /etc/slurm/slurm.conf; }
daemon_key_install() {
  install -d -m 0755 /etc/slurm
  install -m 0600 -o slurm -g slurm "$1" "$SLURM_KEY"
  install -d -m 0755 -o slurm -g slurm /run/slurmctld /run/slurmdbd
}

# --- slurmrestd ----------------------------------------------------------------------------------------------
# slurmrestd_command: SLURMRESTD, slurmrestd's command line before its own arguments and the address to listen on.
# JWT authentication, every token going on to slurmctld (SLURM_JWT=daemon: it holds no key), as the unprivileged
# user slurmrestd. SLURMRESTD_SECURITY: its own unshare() of SysV IPC and file table is refused by container
# runtimes' default seccomp profiles (containerd's allows unshare only with CAP_SYS_ADMIN); the pod is isolated
# already. Without SLURMRESTD_LISTEN: slurmrestd reads that variable too, and 22.05's binds it beside its argument.
# MALLOC_ARENA_MAX=1: glibc gives each of slurmrestd's threads an arena of its own, and an answer's data, built in
# one and freed in another, stays mapped: GET /jobs with 3500 jobs known (27.6 MB of JSON) peaked at 1.56 GB, 2.08 GB
# after the second such request (24.11.5); with one arena 558 MB, and 573 MB after three.
slurmrestd_command() {
  # shellcheck disable=SC2034,SC2054  # for the scripts that source this; the commas are one argument
  SLURMRESTD=(env -u SLURMRESTD_LISTEN SLURM_JWT=daemon MALLOC_ARENA_MAX=1
              SLURMRESTD_SECURITY=disable_unshare_sysv,disable_unshare_files
              /usr/sbin/slurmrestd -a rest_auth/jwt -s "$SLURMRESTD_PLUGINS" -u slurmrestd -g slurmrestd)
}

# --- the site's directory (LDAP, config `ldap`) ------------------------------------------------------------
# With the stack's nslcd.conf in the mounted directory (components/ldap.py renders it into the directory volume
# beside passwd and group), nslcd (libnss-ldapd) answers NSS's `ldap` source, which the images' nsswitch.conf
# names after `files extrausers`: the image's own users first, then the static directory, then the site's. Without
# it the `ldap` source answers "unavailable" at once (no socket), so nothing waits on a directory that is not there.
# ldap_configured: is there an nslcd.conf to run with? nslcd_install: it becomes /etc/nslcd.conf (root's, 0600: it
# holds the bind password) with nslcd's run directory; then run NSLCD (in the foreground: supervised) and wait for
# nslcd_ok.
NSLCD_CONF="$FACT_EXTRAUSERS_DIR/nslcd.conf"
# shellcheck disable=SC2034  # for the scripts that source this
NSLCD=(/usr/sbin/nslcd --nofork)
ldap_configured() { [[ -f "$NSLCD_CONF" ]]; }
nslcd_install() {
  install -m 0600 -o root -g root "$NSLCD_CONF" /etc/nslcd.conf
  install -d -m 0755 -o nslcd -g nslcd /run/nslcd
}
nslcd_ok() { [[ -S /run/nslcd/socket ]]; }  # does it listen yet?

# --- waiting -------------------------------------------------------------------------------------------------
# retry_until SECONDS CMD...: runs CMD (output discarded) every RETRY_INTERVAL_S (0.05 s) until it succeeds (0) or
# SECONDS pass (1). While daemons are supervised, one that dies ends the script (sup_check).
retry_until() {
  local deadline=$(( EPOCHSECONDS + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    if (( ${#SUP_PID[@]} )); then sup_check; fi
    if (( EPOCHSECONDS >= deadline )); then return 1; fi
    sleep "${RETRY_INTERVAL_S:-0.05}"
  done
}

# --- supervision ---------------------------------------------------------------------------------------------
# Daemons run in the background of the script, each under a NAME. One that dies while the script waits for
# something ends the script (after stopping the others); sup_watch then starts the restartable ones again.
declare -gA SUP_PID=() SUP_OUT=() SUP_LOG=() SUP_CMD=()
SUP_ORDER=()  # names in start order: stopped in the reverse one
SUP_STOPPING=0

# sup_start NAME OUT LOG CMD...: runs CMD in the background, stdout and stderr to OUT ("": the script's own);
# LOG is the daemon's own log file ("" if none), whose tail is shown when it dies.
sup_start() {
  local name="$1" out="$2" logfile="$3"; shift 3
  if [[ -n "$out" ]]; then "$@" >"$out" 2>&1 & else "$@" & fi
  SUP_PID[$name]=$!; SUP_OUT[$name]="$out"; SUP_LOG[$name]="$logfile"; printf -v "SUP_CMD[$name]" '%q ' "$@"
  [[ " ${SUP_ORDER[*]} " == *" $name "* ]] || SUP_ORDER+=("$name")
}

sup_tails() {  # sup_tails NAME LINES: the tails of its log file and its output file
  local f
  for f in "${SUP_LOG[$1]}" "${SUP_OUT[$1]}"; do
    [[ -n "$f" && -s "$f" ]] || continue
    echo "--- tail of $f" >&2; tail -n "$2" "$f" >&2
    [[ "${SUP_LOG[$1]}" != "${SUP_OUT[$1]}" ]] || break  # one file for both
  done
  return 0
}

sup_report() {  # sup_report NAME STATUS: a death, with the tail of its logs
  echo "$PROG: ERROR: $1 (pid ${SUP_PID[$1]}) exited with status $2; its log:" >&2
  sup_tails "$1" 25
}

sup_check() {  # ends the script when a daemon has died
  local name status
  for name in "${!SUP_PID[@]}"; do
    if ! kill -0 "${SUP_PID[$name]}" 2>/dev/null; then
      status=0; wait "${SUP_PID[$name]}" || status=$?
      sup_report "$name" "$status"; sup_stop_all; exit 1
    fi
  done
}

# sup_wait WHAT CMD...: retry_until $SLURM_START_TIMEOUT (default 60 s) CMD; past it the script ends, naming WHAT.
sup_wait() {
  local what="$1" name; shift
  retry_until "$START_TIMEOUT" "$@" && return 0
  echo "$PROG: ERROR: timed out after ${START_TIMEOUT}s waiting for $what" >&2
  for name in "${SUP_ORDER[@]}"; do
    [[ -n "${SUP_LOG[$name]:-}" && -s "${SUP_LOG[$name]}" ]] || continue
    echo "--- tail of ${SUP_LOG[$name]}" >&2; tail -n 10 "${SUP_LOG[$name]}" >&2
  done
  sup_stop_all; exit 1
}

sup_stop() {  # sup_stop NAME: SIGTERM, at most 5 s to exit, then SIGKILL
  local pid="${SUP_PID[$1]:-}" t
  [[ -n "$pid" ]] || return 0
  t="${EPOCHREALTIME/[.,]/}"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in {1..100}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  log "stopped $1 in $(( (${EPOCHREALTIME/[.,]/} - t) / 1000 )) ms"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "SUP_PID[$1]"
}

sup_stop_all() {  # in the reverse order of their starts
  SUP_STOPPING=1
  trap - TERM INT
  local i
  for (( i = ${#SUP_ORDER[@]} - 1; i >= 0; i-- )); do sup_stop "${SUP_ORDER[i]}"; done
}

sup_stop_on_signals() {  # SIGTERM or SIGINT stops every daemon, then the script (exit 0)
  trap 'log "stopping"; sup_stop_all; log "stopped"; exit 0' TERM INT
}

# sup_watch [NAME...]: until a signal stops everything, wait; a daemon named here that dies is started again
# (at most twice a second), any other ends the script with exit 1 after stopping the rest.
sup_watch() {
  local restartable=" $* " died status name
  while :; do
    died=""; status=0
    # One that died while this was busy (starting another again) may be no job of the shell any more, which wait -n
    # would never return: look first.
    for name in "${!SUP_PID[@]}"; do
      if ! kill -0 "${SUP_PID[$name]}" 2>/dev/null; then
        died="${SUP_PID[$name]}"; wait "$died" 2>/dev/null || status=$?; break
      fi
    done
    if [[ -z "$died" ]]; then
      wait -n -p died "${SUP_PID[@]}" 2>/dev/null || status=$?
      (( SUP_STOPPING )) && return 0
      [[ -n "$died" ]] || continue  # a trapped signal interrupted wait
    fi
    for name in "${!SUP_PID[@]}"; do
      [[ "${SUP_PID[$name]}" == "$died" ]] || continue
      if [[ "$restartable" != *" $name "* ]]; then
        sup_report "$name" "$status"; unset "SUP_PID[$name]"; sup_stop_all; exit 1
      fi
      echo "$PROG: $name exited with status $status (pid $died); starting it again" >&2
      sup_tails "$name" 25
      unset "SUP_PID[$name]"
      sleep 0.5  # at most two starts a second if it keeps dying at once
      eval "sup_start \"\$name\" \"\${SUP_OUT[\$name]}\" \"\${SUP_LOG[\$name]}\" ${SUP_CMD[$name]}"
      log "started $name again (pid ${SUP_PID[$name]}); the others run on"
    done
  done
}
