#!/bin/bash
# Part of slurm-single-node's entrypoint: MariaDB for slurmdbd, its data on the state volume.
# seed_database: the data directory: the image's new database (made at build time) at the first start, and a
#   volume written by another image handed to this image's mysql.
# mariadb_command: MARIADB, the server's command line (needs MARIADB_SOCKET, from slurm-image.env).
# grant_database NAME USER PASSWORD: once the server answers, slurmdbd's database and user (slurmdbd 24.11+ cannot
#   create its database itself with Connector/C 3.4: error 5027); again at every start (the password may change).

seed_database() {
  local data="$FACT_STATE_DIR/mysql"
  install -d -m 0755 -o mysql -g mysql "$data" "$(dirname "$MARIADB_SOCKET")"
  # Debian gives `mysql` whatever system uid is free when it is made (this image's useradd, older images'
  # mariadb-server postinst), so a volume of another image may hold the database as another uid.
  if [[ -n "$(find "$data" -mindepth 1 ! -user mysql -print -quit)" ]]; then
    chown -R mysql:mysql "$data" && log "gave $data to this image's mysql (uid $(id -u mysql))"
  fi
  if [[ ! -d "$data/mysql" ]]; then
    log "first start: the image's new database into $data"
    cp -a --sparse=always /usr/share/slurm-single-node/mysql/. "$data/" || die "could not copy the image's database into $data"
  fi
}

# innodb_snapshot_isolation (ON by default since MariaDB 11.6) breaks slurmdbd's transactions: OFF.
# character-set-server=utf8mb4: the default of MariaDB 11.8; on 10.11 (bookworm) Debian's 50-server.cnf (package
# mariadb-server, not in the image) set it.
mariadb_command() {
  MARIADB=(/usr/sbin/mariadbd --user=mysql --datadir="$FACT_STATE_DIR/mysql" --socket="$MARIADB_SOCKET" --skip-networking
           --skip-name-resolve --loose-innodb-snapshot-isolation=OFF --character-set-server=utf8mb4
           --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 --innodb-log-file-size=16M
           --log-error="$FACT_LOG_DIR/mariadb.out")
}

# shellcheck disable=SC2120  # also called with arguments (the entrypoint's wait)
sql() { mariadb --socket="$MARIADB_SOCKET" -uroot "$@"; }

grant_database() {
  # shellcheck disable=SC2119  # the statements come on stdin
  sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$1\`;
CREATE USER IF NOT EXISTS '$2'@'localhost' IDENTIFIED BY '$3';
ALTER USER '$2'@'localhost' IDENTIFIED BY '$3';
GRANT ALL ON \`$1\`.* TO '$2'@'localhost';
SQL
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run alone: database.sh NAME USER PASSWORD (as root, in the image)
  set -euo pipefail
  PROG=slurm-single-node
  # shellcheck source-path=SCRIPTDIR/../lib source=lib.sh
  source "${SLURM_IMAGE_LIB:-/usr/local/lib/slurm-image}/lib.sh"
  [[ -n "${MARIADB_SOCKET:-}" ]] || load_env "${SLURM_CONFIG_DIR:-$FACT_CONFIG_MOUNT}/slurm-image.env"
  install -d -m 0755 -o slurm -g slurm "$FACT_LOG_DIR"
  seed_database
  mariadb_command
  sup_start mariadb "$FACT_LOG_DIR/mariadb.out" "$FACT_LOG_DIR/mariadb.out" "${MARIADB[@]}"
  sup_wait "MariaDB to answer on $MARIADB_SOCKET" sql -e 'SELECT 1'
  grant_database "$@" || die "could not create database $1 and user $2"
  log "database $1 of $2 ready"
  sup_stop_all
fi
