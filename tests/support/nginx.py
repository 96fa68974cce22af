"""deploy/nginx/kiln.conf for a test: the shipped file with its ports and paths replaced, run by a private nginx.

`render_kiln_conf` changes only the values listed in `SHIPPED_VALUES` and fails if one of them is not
where it was, so the rendered file is the shipped one and cannot drift from it. `NginxHarness` wraps it
in a minimal nginx.conf (pid, logs and temp files under a temp directory) for `nginx -t` and for a real
nginx on a free loopback port, stopped by its process id.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import REPO, wait_for

NGINX_CONF = REPO / "deploy" / "nginx" / "kiln.conf"
# Debian installs nginx in /usr/sbin, which is not on a normal user's PATH.
NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
MIME_TYPES = Path("/etc/nginx/mime.types")


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_CANDIDATES if os.access(path, os.X_OK)), None)


@dataclass(frozen=True)
class Site:
    """Where the rendered kiln.conf listens and what it points at."""

    port: int
    web_port: int
    flower_port: int
    static_root: Path
    media_root: Path

    def shipped_values(self) -> dict[str, str]:
        """Each value as kiln.conf ships it (deploy/env.example's defaults) -> its value for this site."""
        return {
            "listen 80;": f"listen 127.0.0.1:{self.port};",
            "127.0.0.1:8000": f"127.0.0.1:{self.web_port}",
            "127.0.0.1:5555": f"127.0.0.1:{self.flower_port}",
            "/srv/kiln/static/": f"{self.static_root}/",
            "/var/lib/kiln/media/": f"{self.media_root}/",
        }


def render_kiln_conf(site: Site, source: Path = NGINX_CONF) -> str:
    """The shipped kiln.conf with its ports and paths replaced; comments are left as they are."""
    counts = dict.fromkeys(site.shipped_values(), 0)
    lines = []
    for line in source.read_text().splitlines(keepends=True):
        if not line.lstrip().startswith("#"):
            for shipped, value in site.shipped_values().items():
                counts[shipped] += line.count(shipped)
                line = line.replace(shipped, value)
        lines.append(line)
    missing = [shipped for shipped, count in counts.items() if count != 1]
    if missing:
        raise AssertionError(
            f"{source} no longer has exactly one active {missing}: update tests/support/nginx.py"
        )
    return "".join(lines)


@dataclass
class NginxHarness:
    """A minimal nginx.conf under `directory` that includes a kiln.conf into its http context."""

    directory: Path
    binary: str

    @property
    def conf(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def write(self, kiln_conf: Path) -> Path:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / temp).mkdir(exist_ok=True)
        # Run as root (CI), nginx's workers would drop to `nobody` and could not read pytest's 0700
        # temp dirs; as another user the directive is ignored with a warning.
        user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
        mime = f"    include {MIME_TYPES};\n" if MIME_TYPES.exists() else ""
        self.conf.write_text(
            f"{user}worker_processes 1;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {self.error_log} warn;\n"
            "daemon off;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"{mime}"
            "    default_type application/octet-stream;\n"
            f"    access_log {d}/access.log;\n"
            f"    client_body_temp_path {d}/client_body;\n"
            f"    proxy_temp_path {d}/proxy;\n"
            f"    fastcgi_temp_path {d}/fastcgi;\n"
            f"    uwsgi_temp_path {d}/uwsgi;\n"
            f"    scgi_temp_path {d}/scgi;\n"
            f"    include {kiln_conf};\n"
            "}\n"
        )
        return self.conf

    def command(self, *extra: str) -> list[str]:
        # -e: the error log before the configuration is read (the compiled-in one is /var/log/nginx).
        return [
            self.binary,
            "-p",
            f"{self.directory}/",
            "-e",
            str(self.error_log),
            "-c",
            str(self.conf),
            *extra,
        ]

    def test_config(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self, port: int) -> subprocess.Popen:
        """nginx in the foreground (`daemon off`), so the pid we hold is its master's."""
        log = open(self.directory / "nginx.out", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"nginx exited with {process.returncode}: {self.error_log.read_text()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        try:
            wait_for(listening, timeout=10, what=f"nginx to listen on 127.0.0.1:{port}")
        except BaseException:
            self.stop(process)
            raise
        return process

    @staticmethod
    def stop(process: subprocess.Popen) -> None:
        """QUIT is nginx's graceful stop; KILL only if it does not go."""
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
