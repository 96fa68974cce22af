"""KILN_MEDIA_STORAGE, read into Django's STORAGES["default"]. Pure: no network, no Django settings.

    unset or ""                                   files under MEDIA_ROOT (one host, or a shared mount)
    s3://bucket[/prefix][?endpoint=URL&region=R&url_expiry=S&addressing=path|virtual]

Keys never go in the URL (it is shown by `kiln check` and in errors): KILN_S3_ACCESS_KEY_ID and
KILN_S3_SECRET_ACCESS_KEY, or boto3's own chain (AWS_* variables, an instance role) when both are unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

VARIABLE = "KILN_MEDIA_STORAGE"
FILESYSTEM_BACKEND = "django.core.files.storage.FileSystemStorage"
S3_BACKEND = "storages.backends.s3.S3Storage"
# An S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit.
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
OPTIONS = {"endpoint", "region", "url_expiry", "addressing"}
# Signed rendition URLs live this long by default: a page left open an hour still shows its thumbnails.
DEFAULT_URL_EXPIRY = 3600


@dataclass(frozen=True)
class MediaLocation:
    """Where media goes, without any secret: safe to show in `kiln check`, a log line or an error."""

    kind: str  # "filesystem" or "s3"
    bucket: str = ""
    prefix: str = ""
    endpoint: str = ""
    region: str = ""
    url_expiry: int = DEFAULT_URL_EXPIRY
    addressing: str = ""

    def describe(self, media_root: object = "") -> str:
        if self.kind == "filesystem":
            return f"files under {media_root}" if media_root else "files under MEDIA_ROOT"
        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return where + (f" at {self.endpoint}" if self.endpoint else "")

    def url_origins(self) -> list[str]:
        """Where a browser fetches signed rendition URLs from: the Content-Security-Policy's img-src must allow it."""
        if self.kind == "filesystem":
            return []
        if self.endpoint:
            endpoint = urlsplit(self.endpoint)
            host = endpoint.netloc if self.addressing != "virtual" else f"{self.bucket}.{endpoint.netloc}"
            return [f"{endpoint.scheme}://{host}"]
        # boto3 addresses AWS buckets by host name, with or without the region in it.
        origins = [f"https://{self.bucket}.s3.amazonaws.com"]
        if self.region:
            origins.append(f"https://{self.bucket}.s3.{self.region}.amazonaws.com")
        return origins


def _fail(problem: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{VARIABLE}: {problem}")


def media_location(value: str) -> MediaLocation:
    value = value.strip()
    if not value:
        return MediaLocation(kind="filesystem")
    parts = urlsplit(value)
    if parts.scheme != "s3":
        raise _fail(
            f"must be empty (files under MEDIA_ROOT) or s3://bucket/prefix, not a {parts.scheme or 'plain'} value"
        )
    if parts.username or parts.password:
        raise _fail("keys do not belong in the URL: set KILN_S3_ACCESS_KEY_ID and KILN_S3_SECRET_ACCESS_KEY")
    bucket = parts.hostname or ""
    if not BUCKET.match(bucket) or ".." in bucket:
        raise _fail(f"{bucket!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")
    prefix = parts.path.strip("/")
    if "//" in prefix or any(part in {".", ".."} for part in prefix.split("/")):
        raise _fail(f"the prefix {prefix!r} must be a plain folder path")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - OPTIONS)
    if unknown:
        raise _fail(f"unknown option {unknown[0]!r} (known: {', '.join(sorted(OPTIONS))})")
    single = {}
    for name, values in query.items():
        if len(values) != 1 or not values[0]:
            raise _fail(f"option {name!r} needs exactly one value")
        single[name] = values[0]
    endpoint = single.get("endpoint", "")
    if endpoint:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in {"http", "https"} or not endpoint_parts.hostname:
            raise _fail(f"endpoint {endpoint!r} must be an http:// or https:// address")
        if endpoint_parts.username or endpoint_parts.password:
            raise _fail(
                "keys do not belong in the endpoint: set KILN_S3_ACCESS_KEY_ID and KILN_S3_SECRET_ACCESS_KEY"
            )
    try:
        url_expiry = int(single.get("url_expiry", DEFAULT_URL_EXPIRY))
    except ValueError:
        raise _fail(f"url_expiry {single['url_expiry']!r} is not a number of seconds") from None
    if not 60 <= url_expiry <= 7 * 24 * 3600:
        raise _fail(f"url_expiry {url_expiry} s is outside 60 s to 7 days (S3's limit for a signed URL)")
    addressing = single.get("addressing", "path" if endpoint else "")
    if addressing not in {"", "path", "virtual"}:
        raise _fail(f"addressing {addressing!r} must be path or virtual")
    return MediaLocation(
        kind="s3",
        bucket=bucket,
        prefix=prefix,
        endpoint=endpoint.rstrip("/"),
        region=single.get("region", ""),
        url_expiry=url_expiry,
        addressing=addressing,
    )


def storage_setting(location: MediaLocation, environ: Mapping[str, str]) -> dict:
    """STORAGES["default"] for `location`; the keys come from `environ` (never from the URL)."""
    if location.kind == "filesystem":
        # No options: the storage follows MEDIA_ROOT (and a test's change of it).
        return {"BACKEND": FILESYSTEM_BACKEND}
    access_key = environ.get("KILN_S3_ACCESS_KEY_ID", "")
    secret_key = environ.get("KILN_S3_SECRET_ACCESS_KEY", "")
    if bool(access_key) != bool(secret_key):
        missing = "KILN_S3_SECRET_ACCESS_KEY" if access_key else "KILN_S3_ACCESS_KEY_ID"
        raise ImproperlyConfigured(f"{missing}: set it too, or unset both to use boto3's own credentials")
    options: dict = {
        "bucket_name": location.bucket,
        "location": location.prefix,
        # Content-addressed names: the same name always holds the same bytes, so writing it again is safe.
        "file_overwrite": True,
        # Private: originals are never served; renditions are served by signed URLs (querystring_auth).
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": location.url_expiry,
        "signature_version": "s3v4",
        # Renditions never change under their name.
        "object_parameters": {"CacheControl": "private, max-age=31536000, immutable"},
        # botocore.config.Config arguments (settings stays free of botocore; mediastore.store builds the Config):
        # fail fast enough that an upload answers 503 rather than hang on a store that is down.
        "client_config": {
            "connect_timeout": 3,
            "read_timeout": 20,
            "retries": {"max_attempts": 2, "mode": "standard"},
        },
    }
    if location.endpoint:
        options["endpoint_url"] = location.endpoint
    if location.region:
        options["region_name"] = location.region
    if location.addressing:
        options["addressing_style"] = location.addressing
    if access_key:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
    return {"BACKEND": "mediastore.store.KilnS3Storage", "OPTIONS": options}
