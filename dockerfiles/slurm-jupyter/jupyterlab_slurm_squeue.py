"""The Slurm panel's queue as Slurm has it: a job's name cannot change whom the panel shows as its owner.

A server extension of this project (not of jupyterlab-slurm), enabled in both Jupyter images by
jupyter_server_config.d/jupyterlab_slurm_squeue.json. jupyterlab-slurm 4.1.0 (jupyterlab_slurm/handlers.py,
SqueueHandler, the /jupyterlab_slurm/squeue endpoint the panel polls) runs
    squeue -o "%.18i %.9P %j %.20u %.2t %.15M %.6D %R" -h                    (handlers.py:747)
and splits each line on white space:
    values = row.strip().split(maxsplit=7)                                    (handlers.py:781)
    rows.append([(html.escape(entry)).strip() for entry in values])          (handlers.py:783)
so a name with blanks shifts the columns (bob's job "x alice R" shows USER alice, ST R), the user is cut to 20
characters (%.20u: names may have 32), a newline in a name (sbatch -J takes one) makes up a whole row of its own
("x\n999999 debug x alice R"), and quotes come back as &quot; (the panel shows cells as text, not HTML).
The panel's owner column and its "my jobs" filter (USER == the session's user) trust that row. jupyterlab-slurm
has no setting for this format or parser (its traitlets, config.py, only name the commands' paths; its site hooks
only reach the job-details handler), so this replaces SqueueHandler.run_command, the method holding both.

The replacement asks squeue for the same eight columns, unpadded, with a separator and a record end that are
random per request (squeue -h -o "%i<S>%P<S>%j<S>%u<S>%t<S>%M<S>%D<S>%R<E>"): no job name, whatever it holds
(blanks, quotes, the separator of a fixed delimiter, newlines), can contain them, so it cannot shift a column or
end a row. USER is %u, the name Slurm has for the job's uid, which the submitter does not choose. Values are
returned as Slurm prints them. The response keeps upstream's shape (columns, rows in that order, success, ...).
"""

from __future__ import annotations

import secrets
import shlex

UPSTREAM_VERSION = "4.1.0"  # requirements.in
COLUMNS = ["JOBID", "PARTITION", "NAME", "USER", "ST", "TIME", "NODES", "NODELIST(REASON)"]  # upstream's
FIELDS = ["%i", "%P", "%j", "%u", "%t", "%M", "%D", "%R"]  # squeue -o letters of COLUMNS, in that order


def squeue_argv(squeue: str, sep: str, end: str) -> list[str]:
    return shlex.split(squeue) + ["--noheader", "--format", sep.join(FIELDS) + end]


def parse(stdout: str, sep: str, end: str) -> list[list[str]]:
    """Rows of `squeue_argv`'s output. Each record ends with `end` then squeue's newline; a record starts with the
    job id (never a newline), so only that one newline separates records. The last record's newline may have
    been stripped (upstream's _run_command strips stdout; `end` keeps a name's own trailing blanks)."""
    rows = []
    for record in stdout.split(end):
        record = record[1:] if record.startswith("\n") else record
        if not record:
            continue
        values = record.split(sep)
        if len(values) != len(FIELDS):
            raise ValueError(f"squeue printed a record of {len(values)} fields, not {len(FIELDS)}: {record!r}")
        rows.append(values)
    return rows


async def run_command(self, args: list = None):
    """SqueueHandler.run_command (jupyterlab-slurm 4.1.0, handlers.py:753-818) with `squeue_argv` and `parse`."""
    sep, end = f"<{secrets.token_hex(12)}>", f"<{secrets.token_hex(12)}/>"
    rows, returncode = [], -1
    try:
        out = await self._run_command(squeue_argv(self._slurm_command, sep, end))
        returncode = out.get("returncode", -1)
        stdout, stderr = out.get("stdout") or "", (out.get("stderr") or "").strip()
        response_message = "{}: {} -h -o ...".format("Success" if returncode == 0 else "Failure", self._slurm_command)
        error_message = None if returncode == 0 else stderr
        if returncode == 0:
            rows = parse(stdout, sep, end)
    except Exception as e:  # as upstream: the panel gets the message, the log the traceback
        self._serverlog.exception(e)
        response_message = "Failure: {}".format(self._slurm_command)
        error_message = "Unhandled Exception: {}".format(e)
        returncode, rows = -1, []
    success = returncode == 0
    return {
        "success": success,
        "responseMessage": response_message,
        "errorMessage": None if success else error_message,
        "exitCode": returncode,
        "data": {"rows": rows, "columns": list(COLUMNS)},
    }


def _jupyter_server_extension_points():
    return [{"module": "jupyterlab_slurm_squeue"}]


def _load_jupyter_server_extension(server_app):
    from jupyterlab_slurm import __version__
    from jupyterlab_slurm.handlers import SqueueHandler

    if __version__ != UPSTREAM_VERSION:  # another release may parse squeue differently, or may have fixed this
        server_app.log.warning("jupyterlab_slurm_squeue was written for jupyterlab-slurm %s, this is %s: check "
                               "that SqueueHandler.run_command still needs replacing", UPSTREAM_VERSION, __version__)
    SqueueHandler.run_command = run_command
    server_app.log.info("jupyterlab_slurm_squeue: SqueueHandler.run_command of jupyterlab-slurm %s replaced "
                        "(delimited squeue output)", __version__)
