import os
import stat

from django.apps import AppConfig
from django.db.backends.signals import connection_created


def sqlite_private(sender, connection, **kwargs) -> None:
    """The embedded default's SQLite file (and its WAL and shared-memory files) readable by Kiln's user only:
    SQLite creates them with the umask's 0644, and they hold password hashes, sessions and API token hashes."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:"):
        return
    for path in (name, f"{name}-wal", f"{name}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                os.chmod(path, mode & 0o700)
        except OSError:
            pass  # not there (yet), or not ours to change


class BlueprintConfig(AppConfig):
    """The blueprint's own tooling: `manage.py kiln setup|run|ctl|check`, and the embedded default's
    file permissions. No models."""

    name = "blueprint"
    verbose_name = "Deployment blueprint"

    def ready(self) -> None:
        connection_created.connect(sqlite_private, dispatch_uid="kiln-sqlite-private")
