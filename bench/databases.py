"""The databases a benchmark measures on: a scratch SQLite file, and a scratch PostgreSQL database when one
answers on 127.0.0.1:5432 (the user `postgres`, trusting local connections, as CI's machine has it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES = ("-h", "127.0.0.1", "-U", "postgres")


def postgres_answers() -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", 5432)) == 0


@contextmanager
def scratch_databases(name: str, directory: Path) -> Iterator[list[str]]:
    """DATABASE_URLs: SQLite in `directory`, then PostgreSQL's database `name` (made empty, dropped after)."""
    urls = [f"sqlite:///{directory}/db.sqlite3"]
    postgres = postgres_answers()
    if postgres:
        subprocess.run(["dropdb", *POSTGRES, "--if-exists", name], check=True)
        subprocess.run(["createdb", *POSTGRES, name], check=True)
        urls.append(f"postgres://postgres@127.0.0.1:5432/{name}")
    try:
        yield urls
    finally:
        if postgres:
            subprocess.run(["dropdb", *POSTGRES, "--if-exists", name])


def child_run(script: str, url: str, directory: Path, *arguments: str) -> int:
    """`script --child ARGUMENTS` in a fresh process whose settings read `url`: its exit status."""
    environ = {**os.environ, "DATABASE_URL": url, "DEBUG": "true", "KILN_VAR_DIR": str(directory)}
    return subprocess.run([sys.executable, script, "--child", *arguments], env=environ).returncode
