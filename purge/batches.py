"""One bounded batch of a purge: pick the next rows or files after a cursor, remove them (or count them, on
a dry run). Each batch is its own short transaction; nothing here loads more than one batch into memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from purge import registry


@dataclass(frozen=True)
class Batch:
    examined: int
    removed: int
    removed_bytes: int
    cursor: str
    done: bool


def row_batch(
    target: registry.RowTarget, *, cutoff: datetime, cursor: str, size: int, dry_run: bool
) -> Batch:
    """Rows older than `cutoff` (and allowed by the target's filter), by primary key after `cursor`.

    The batch is a primary-key range, (cursor, boundary], where the boundary is the `size`-th expired key: the
    database finds it by walking the primary-key index, and the delete is one statement over that index
    range, with no list of thousands of keys sent back and forth (measured: 3-7x faster than `pk IN (...)`
    on PostgreSQL, see bench/purge.py). `QuerySet.delete()` is the right depth for both kinds of model: with
    no delete signals or cascades to honour, Django issues that single DELETE and instantiates nothing; with
    some, it collects the batch's rows (at most `size`) and sends every signal.
    """
    model = target.model_class()
    expired = model._default_manager.filter(target.only, **{f"{target.age_field}__lt": cutoff})
    page = expired.filter(pk__gt=int(cursor)) if cursor else expired
    boundary = list(page.order_by("pk").values_list("pk", flat=True)[size - 1 : size])
    batch = page.filter(pk__lte=boundary[0]) if boundary else page  # no boundary: fewer than `size` left
    if dry_run:
        removed = batch.count()
    else:
        _total, per_model = batch.delete()
        removed = per_model.get(model._meta.label, 0)
    return Batch(
        examined=removed,
        removed=removed,
        removed_bytes=0,
        cursor=str(boundary[0]) if boundary else cursor,
        done=not boundary,
    )


def media_files(root: Path, prefix: str, after: str) -> Iterator[tuple[str, os.DirEntry]]:
    """Regular files under root/prefix in a stable order, as (storage name, entry), strictly after `after`.

    Symbolic links are neither followed nor yielded: one may point outside MEDIA_ROOT, and a purge removes only
    what lies inside it. Directories that sort wholly before the cursor are not even opened.
    """
    base = root / prefix if prefix else root
    after_parts = tuple(after.split("/")) if after else ()
    prefix_parts = tuple(Path(prefix).parts) if prefix else ()

    def walk(directory: str, parts: tuple[str, ...]) -> Iterator[tuple[str, os.DirEntry]]:
        try:
            with os.scandir(directory) as iterator:
                entries = sorted(iterator, key=lambda entry: entry.name)
        except FileNotFoundError:
            return
        for entry in entries:
            path = (*parts, entry.name)
            if entry.is_symlink():
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


def file_batch(
    target: registry.FileTarget, *, root: Path, cutoff: datetime, cursor: str, size: int, dry_run: bool
) -> Batch:
    """The next `size` files after `cursor`: those older than `cutoff` that no row references go."""
    root = root.resolve()
    cutoff_ts = cutoff.timestamp()
    scanned: list[tuple[str, os.DirEntry]] = []
    for item in media_files(root, target.prefix, cursor):
        scanned.append(item)
        if len(scanned) == size:
            break
    if not scanned:
        return Batch(examined=0, removed=0, removed_bytes=0, cursor=cursor, done=True)
    old = {name: entry for name, entry in scanned if entry.stat(follow_symlinks=False).st_mtime < cutoff_ts}
    keep = registry.referenced(list(old)) if old else set()
    removed = removed_bytes = 0
    for name, entry in old.items():
        if name in keep:
            continue
        path = Path(entry.path)
        if not path.resolve().is_relative_to(root):
            continue  # a parent directory swapped for a link since the scan: never leave MEDIA_ROOT
        size_bytes = entry.stat(follow_symlinks=False).st_size
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # removed by an earlier delivery of this run: not counted twice
        removed += 1
        removed_bytes += size_bytes
    return Batch(
        examined=len(scanned),
        removed=removed,
        removed_bytes=removed_bytes,
        cursor=scanned[-1][0],
        done=len(scanned) < size,
    )
