# shellcheck shell=bash disable=SC2034
# The program's facts the image scripts use, sourced by lib.sh. Made from the Python side by
# `python -m components.image_facts`: do not edit (tests/unit/test_image_facts.py compares the two).
FACT_CONFIG_MOUNT=/etc/slurm-config                  # components.pods.CONFIG_MOUNT
FACT_KEYS_MOUNT=/etc/slurm-keys                      # components.pods.KEYS_MOUNT
FACT_MUNGE_KEY_FILE=munge.key                        # components.keys.MUNGE_KEY_FILE
FACT_MUNGE_KEY_BYTES=1024                            # components.keys.MUNGE_KEY_BYTES
FACT_JWT_KEY_FILE=jwt_hs256.key                      # components.keys.JWT_KEY_FILE
FACT_JWT_KEY_BYTES=32                                # components.keys.JWT_KEY_BYTES
FACT_SLURM_KEY_FILE=slurm.key                        # components.keys.SLURM_KEY_FILE
FACT_SLURM_KEY_BYTES=1024                            # components.keys.SLURM_KEY_BYTES
FACT_JWT_KEY_PATH=/etc/slurm/jwt_hs256.key           # components.slurm_files.JWT_KEY_PATH
FACT_STATE_DIR=/var/lib/slurm-state                  # components.slurm_files.STATE_DIR
FACT_LOG_DIR=/var/log/slurm                          # components.slurm_files.LOG_DIR
FACT_RUN_DIR=/run/slurm                              # components.slurm_files.RUN_DIR
FACT_SLURMCTLD_PORT=6817                             # components.slurm_files.SLURMCTLD_PORT
FACT_SLURMRESTD_PORT=6820                            # components.slurm_files.SLURMRESTD_PORT
FACT_RESTD_BACKEND=127.0.0.1:6880                    # components.restd.BACKEND
FACT_RESTD_SOCKET=/run/slurmrestd/slurmrestd.socket  # components.image_facts.RESTD_SOCKET
FACT_EXTRAUSERS_DIR=/var/lib/extrausers              # components.directory.EXTRAUSERS_DIR
FACT_HOME_ROOT=/home                                 # components.directory.HOME_ROOT
FACT_ACCOUNTING_UID_MIN=1000                         # components.image_facts.ACCOUNTING_UIDS
FACT_ACCOUNTING_UID_END=60000                        # components.image_facts.ACCOUNTING_UIDS (directory.MAX_ID)
FACT_EXPORTER_UID=341                                # components.single_node.EXPORTER_UID
