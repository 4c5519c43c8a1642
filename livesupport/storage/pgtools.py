"""Backups of a PostgreSQL database with PostgreSQL's own tools, ``pg_dump`` and ``pg_restore``
(Debian's ``postgresql-client``): one consistent snapshot, taken while the servers run, in
the custom format, files included (their bytes are rows)."""

from __future__ import annotations

import os
import shutil
import subprocess

from ..config import ConfigError


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} is not installed; install PostgreSQL's client tools (Debian: "
            f"apt-get install postgresql-client), or back up with pg_dump yourself"
        )
    return found


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ConfigError(f"{what} failed: {lines[-1] if lines else done.returncode}")


def dump(url: str, dest: str) -> None:
    """``pg_dump`` of the database at ``url`` into the file ``dest`` (written whole or not at
    all: a partial file is removed)."""
    tmp = dest + ".partial"
    try:
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--file", tmp, url], "pg_dump")
        _run([_tool("pg_restore"), "--list", tmp], "reading the dump back")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    os.replace(tmp, dest)


def restore(src: str, url: str) -> None:
    """``pg_restore`` of the dump ``src`` into the database at ``url``, replacing the tables
    of ours that are there, in one transaction."""
    _run(
        [_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction"]
        + ["--exit-on-error", "--dbname", url, src],
        "pg_restore",
    )
