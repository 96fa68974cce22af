"""Media files, the same way on a local folder and on an S3 bucket.

Every call speaks to Django's default storage (STORAGES["default"], from KILN_MEDIA_STORAGE). What an object
store refuses or cannot be reached for becomes `StorageUnavailable`, an OSError with a message a person can
read (never a key): thumbnail jobs retry it like any storage trouble, an upload answers 503 with it, a purge run
fails with it and resumes from its cursor.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from storages.backends.s3 import S3Storage

# S3's limit of keys in one DeleteObjects request.
DELETE_BATCH = 1000
# Object stores upload in parts above this size: spool bigger writes to disk, not memory.
SPOOL_BYTES = 8 * 1024 * 1024
# Keys sort by their UTF-8 bytes; no key inside folder/ sorts after folder/ followed by the highest code point.
AFTER_EVERYTHING = "\U0010ffff"


class StorageUnavailable(OSError):
    """The object store is down, unreachable or refuses Kiln (wrong keys, missing bucket)."""


# S3 error codes that name a fault in the configuration rather than a passing one, in words.
REFUSALS = {
    "InvalidAccessKeyId": "it does not know the access key (KILN_S3_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "the secret key does not match (KILN_S3_SECRET_ACCESS_KEY)",
    "AccessDenied": "access denied to the bucket for these keys",
    "NoSuchBucket": "the bucket does not exist",
    "AuthorizationHeaderMalformed": "it refused the request's region (the region option of KILN_MEDIA_STORAGE)",
    "PermanentRedirect": "the bucket is in another region (the region option of KILN_MEDIA_STORAGE)",
}


def explain(error: BaseException) -> str:
    """An object store's error in words, without keys or signatures."""
    where = settings.KILN_MEDIA_LOCATION.describe()
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        reason = REFUSALS.get(code) or f"it answered {code or 'an error'}" + (
            f" (HTTP {status})" if status else ""
        )
        return f"the media store {where} refused: {reason}"
    if isinstance(error, EndpointConnectionError | ConnectionClosedError):
        return f"the media store {where} is unreachable: could not connect"
    if isinstance(error, ConnectTimeoutError | ReadTimeoutError):
        return f"the media store {where} is unreachable: it did not answer in time"
    if isinstance(error, BotoCoreError):
        # botocore's messages name the endpoint and the operation, never credentials.
        return f"the media store {where} is unreachable: {error}"
    return f"the media store {where} failed: {type(error).__name__}: {error}"


def translated(function):
    """Run a storage call; an object store's error leaves it as StorageUnavailable."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 and error.response.get(
                "Error", {}
            ).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                raise FileNotFoundError(
                    f"no such file in the media store: {args[1] if len(args) > 1 else ''}"
                ) from None
            raise StorageUnavailable(explain(error)) from None
        except BotoCoreError as error:
            raise StorageUnavailable(explain(error)) from None

    return call


class KilnS3Storage(S3Storage):
    """django-storages' S3 backend with Kiln's timeouts and errors: the settings give `client_config` as plain
    botocore Config arguments, every call raises StorageUnavailable (an OSError) for the store's faults, and
    opening a file downloads it at once, so a read that fails does so here, not inside an image decoder."""

    def __init__(self, **options):
        client_config = options.pop("client_config", None)
        if isinstance(client_config, dict):
            # Given a Config, S3Storage no longer adds the signature version and addressing style itself.
            s3 = (
                {"addressing_style": options["addressing_style"]} if options.get("addressing_style") else None
            )
            options["client_config"] = Config(
                **client_config, signature_version=options.get("signature_version"), s3=s3
            )
        super().__init__(**options)

    @translated
    def _open(self, name, mode="rb"):
        opened = super()._open(name, mode)
        if "r" in mode:
            opened.file  # noqa: B018 - downloads the object now
        return opened

    _save = translated(S3Storage._save)
    delete = translated(S3Storage.delete)
    exists = translated(S3Storage.exists)
    size = translated(S3Storage.size)
    get_modified_time = translated(S3Storage.get_modified_time)


def is_local() -> bool:
    return isinstance(default_storage, FileSystemStorage)


def _s3() -> KilnS3Storage:
    return default_storage  # type: ignore[return-value]


def _key(name: str) -> str:
    prefix = _s3().location.strip("/")
    return f"{prefix}/{name}" if prefix else name


def _name(key: str) -> str:
    prefix = _s3().location.strip("/")
    return key[len(prefix) + 1 :] if prefix else key


@translated
def _call(method, *args, **kwargs):
    return method(*args, **kwargs)


def write_atomic(name: str, chunks: Iterable[bytes]) -> None:
    """Write `name` so that no reader ever sees part of it.

    On the filesystem the data goes to a temporary file in the target directory and is renamed over the target
    (`os.replace` is atomic within one filesystem). An object store replaces a key in one request (or, in
    parts, at its completion), which is atomic too; the data is spooled to disk first, never held whole in
    memory.
    """
    if is_local():
        path = default_storage.path(name)
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spooled:
        for chunk in chunks:
            spooled.write(chunk)
        spooled.seek(0)
        saved = default_storage.save(name, File(spooled, name=name))
    if saved != name:
        raise OSError(f"the media store saved {name!r} as {saved!r}: it must overwrite (file_overwrite)")


def exists(name: str) -> bool:
    return default_storage.exists(name)


def url(name: str) -> str:
    return default_storage.url(name)


def open_file(name: str):
    return default_storage.open(name, "rb")


def touch(name: str) -> None:
    """Make a file look new: an orphan purge spares files inside their grace period, so a file that a new row
    is about to reference again must not be removed meanwhile. An object's age is its LastModified, which only
    a write changes: copying the object onto itself (with its metadata replaced) is that write, done inside the
    store, without downloading it."""
    if is_local():
        os.utime(default_storage.path(name))
        return
    key = _key(name)
    client = _s3().connection.meta.client
    head = _call(client.head_object, Bucket=_s3().bucket_name, Key=key)
    _call(
        client.copy_object,
        Bucket=_s3().bucket_name,
        Key=key,
        CopySource={"Bucket": _s3().bucket_name, "Key": key},
        MetadataDirective="REPLACE",
        Metadata={**head.get("Metadata", {}), "touched": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")},
        ContentType=head.get("ContentType", "binary/octet-stream"),
        **({"CacheControl": head["CacheControl"]} if head.get("CacheControl") else {}),
    )


@dataclass(frozen=True)
class Entry:
    name: str  # the storage name, relative to the media root or the bucket's prefix
    size: int
    modified: float  # seconds since the epoch


def scan(prefix: str, after: str, exclude: tuple[str, ...], limit: int) -> list[Entry]:
    """Up to `limit` files under `prefix` ("" for all media) in a stable order, strictly after the name `after`,
    outside the folders in `exclude` (storage names of folders that another purge target owns)."""
    if is_local():
        root = Path(default_storage.location).resolve()
        found = []
        for name, entry in _local_files(root, prefix, after, exclude):
            stat = entry.stat(follow_symlinks=False)
            found.append(Entry(name=name, size=stat.st_size, modified=stat.st_mtime))
            if len(found) == limit:
                break
        return found
    return _bucket_scan(prefix, after, exclude, limit)


def _bucket_scan(prefix: str, after: str, exclude: tuple[str, ...], limit: int) -> list[Entry]:
    client = _s3().connection.meta.client
    bucket = _s3().bucket_name
    list_prefix = _key(prefix + "/") if prefix else _key("")
    # The listing's own cursor: S3 returns keys in byte order, strictly after StartAfter.
    start_after = _key(after) if after else ""
    found: list[Entry] = []
    while len(found) < limit:
        page = _call(
            client.list_objects_v2,
            Bucket=bucket,
            Prefix=list_prefix,
            StartAfter=start_after,
            MaxKeys=min(1000, limit - len(found) + 1),
        )
        contents = page.get("Contents", [])
        if not contents:
            break
        for item in contents:
            key = item["Key"]
            start_after = key
            name = _name(key)
            owner = next((folder for folder in exclude if name.startswith(folder + "/")), None)
            if owner is not None:
                # Another target's folder: jump past all of it in one listing, not one page at a time.
                start_after = _key(owner + "/" + AFTER_EVERYTHING)
                break
            if name.endswith("/"):
                continue  # a folder marker some S3 tools write
            found.append(Entry(name=name, size=item["Size"], modified=item["LastModified"].timestamp()))
            if len(found) == limit:
                break
        else:
            if not page.get("IsTruncated"):
                break
    return found


def remove(names: list[str]) -> set[str]:
    """Delete these files; returns the names that existed and are gone now (a file removed meanwhile, by an
    earlier delivery of the same purge batch, is not counted twice on the filesystem)."""
    if not names:
        return set()
    if is_local():
        root = Path(default_storage.location).resolve()
        removed = set()
        for name in names:
            path = root / name
            if path.is_symlink() or not path.resolve().is_relative_to(root):
                continue  # a parent directory swapped for a link since the scan: never leave MEDIA_ROOT
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.add(name)
        return removed
    client = _s3().connection.meta.client
    removed = set()
    for start in range(0, len(names), DELETE_BATCH):
        batch = names[start : start + DELETE_BATCH]
        answer = _call(
            client.delete_objects,
            Bucket=_s3().bucket_name,
            Delete={"Objects": [{"Key": _key(name)} for name in batch], "Quiet": False},
        )
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise StorageUnavailable(
                f"the media store {settings.KILN_MEDIA_LOCATION.describe()} refused to delete "
                f"{len(errors)} of {len(batch)} files ({first.get('Code')}: {first.get('Message')})"
            )
        removed.update(_name(item["Key"]) for item in answer.get("Deleted", []))
    return removed


def _local_files(
    root: Path, prefix: str, after: str, exclude: tuple[str, ...] = ()
) -> Iterator[tuple[str, os.DirEntry]]:
    """Regular files under root/prefix in a stable order, as (storage name, entry), strictly after `after`,
    outside the folders in `exclude`.

    Symbolic links are neither followed nor yielded: one may point outside MEDIA_ROOT, and a purge removes only
    what lies inside it. Directories that sort wholly before the cursor are not even opened.
    """
    base = root / prefix if prefix else root
    after_parts = tuple(after.split("/")) if after else ()
    prefix_parts = tuple(Path(prefix).parts) if prefix else ()
    excluded = {tuple(Path(folder).parts) for folder in exclude}

    def walk(directory: str, parts: tuple[str, ...]) -> Iterator[tuple[str, os.DirEntry]]:
        try:
            with os.scandir(directory) as iterator:
                entries = sorted(iterator, key=lambda entry: entry.name)
        except FileNotFoundError:
            return
        for entry in entries:
            path = (*parts, entry.name)
            if entry.is_symlink() or path in excluded:
                continue
            if entry.is_dir(follow_symlinks=False):
                if after_parts and path < after_parts[: len(path)]:
                    continue
                yield from walk(entry.path, path)
            elif entry.is_file(follow_symlinks=False):
                if after_parts and path <= after_parts:
                    continue
                yield "/".join(path), entry

    if base.is_symlink() or not base.is_dir():
        return
    yield from walk(str(base), prefix_parts)


def problem(*, deep: bool = True) -> str:
    """Why media cannot be stored right now, in words, or "" when it can: the bucket answers a listing with these
    keys and, when `deep`, a small object can be written, read back and deleted. The deep probe is for `kiln
    check` and start-up; `jobs health` (and the dashboard, every few seconds) asks for the listing only."""
    if is_local():
        root = Path(default_storage.location)
        if root.exists() and not os.access(root, os.W_OK):
            return f"MEDIA_ROOT {root} is not writable by this user"
        return ""
    client = _s3().connection.meta.client
    probe = _key(".kiln-probe")
    try:
        # A listing, not HEAD: a refused HEAD has no body to say why.
        _call(client.list_objects_v2, Bucket=_s3().bucket_name, Prefix=probe, MaxKeys=1)
        if not deep:
            return ""
        _call(client.put_object, Bucket=_s3().bucket_name, Key=probe, Body=b"")
        _call(client.get_object, Bucket=_s3().bucket_name, Key=probe)["Body"].read()
        _call(client.delete_object, Bucket=_s3().bucket_name, Key=probe)
    except OSError as error:
        return str(error)
    return ""


@contextlib.contextmanager
def reading(name: str):
    """The file `name`, open for reading (downloaded whole first from an object store)."""
    opened = open_file(name)
    try:
        yield opened
    finally:
        opened.close()
