"""Content-addressed files: the same bytes always land at the same name, written atomically.

A redelivered or repeated job rewrites identical content at an identical name, and a reader never
sees a half-written file: on the filesystem the data goes to a temporary file in the target
directory first and is renamed over the target (`os.replace` is atomic within one filesystem).
Other storages (S3 and the like) replace an object in one request, which is atomic too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage


def original_name(content_hash: str) -> str:
    return f"originals/{content_hash[:2]}/{content_hash}"


def rendition_name(content_hash: str, spec_key: str, extension: str) -> str:
    return f"renditions/{content_hash[:2]}/{content_hash}/{spec_key}.{extension}"


def write_atomic(name: str, chunks: Iterable[bytes]) -> None:
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        path = storage.path(name)
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
    # Object stores replace a key in one request; the storage must be set to overwrite (S3's
    # file_overwrite=True, FileSystemStorage's allow_overwrite) or it would pick another name.
    saved = storage.save(name, ContentFile(b"".join(chunks)))
    if saved != name:
        raise OSError(f"storage saved {name!r} as {saved!r}: configure it to overwrite")


def exists(name: str) -> bool:
    return default_storage.exists(name)


def url(name: str) -> str:
    return default_storage.url(name)


def touch(name: str) -> None:
    """Refresh a file's modification time: an orphan purge spares files inside its grace period, so a file
    that a new row is about to reference again must look new."""
    if isinstance(default_storage, FileSystemStorage):
        os.utime(default_storage.path(name))
