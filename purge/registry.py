"""What may be purged. Other apps register their targets here; purge/ never imports them.

A row target names a model, the field that ages its rows and a filter (rows in a final state only). A file
target scans a folder of MEDIA_ROOT for files that no row references; apps say which storage names their
rows reference through `register_file_references`.

Each file belongs to exactly one file target: the one with the longest prefix that contains it. A target
whose folder holds another target's folder (the catch-all, prefix "") leaves that folder alone, so a dry run
of one policy never counts a file that another policy removes first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db.models import Model, Q


@dataclass(frozen=True)
class RowTarget:
    key: str
    label: str
    model: str  # "app_label.ModelName"
    age_field: str
    default_days: int
    only: Q = field(default_factory=Q)  # rows that may go at all, e.g. final states only
    # Labels this target had before: an installed policy still named after one is renamed to the label.
    former_labels: tuple[str, ...] = ()

    kind = "rows"

    def model_class(self) -> type[Model]:
        return apps.get_model(self.model)


@dataclass(frozen=True)
class FileTarget:
    key: str
    label: str
    prefix: str  # "" for all of MEDIA_ROOT, else a sub-directory such as "renditions"
    default_days: int
    former_labels: tuple[str, ...] = ()

    kind = "files"

    def __post_init__(self) -> None:
        if self.prefix != self.prefix.strip("/") or "//" in self.prefix:
            raise ValueError(f"file target {self.key!r}: prefix {self.prefix!r} is not a plain folder name")


Target = RowTarget | FileTarget
TARGETS: dict[str, Target] = {}

# Each provider gets a batch of storage names and returns those its rows reference.
FileReferences = Callable[[list[str]], Iterable[str]]
FILE_REFERENCES: list[FileReferences] = []


def register(target: Target) -> None:
    if isinstance(target, FileTarget):
        for other in file_targets():
            if other.key != target.key and other.prefix == target.prefix:
                raise ValueError(
                    f"file targets {other.key!r} and {target.key!r} both claim {target.prefix or 'MEDIA_ROOT'}/: "
                    "each file must have exactly one policy"
                )
    TARGETS[target.key] = target


def file_targets() -> list[FileTarget]:
    return [target for target in TARGETS.values() if isinstance(target, FileTarget)]


def _contains(outer: str, inner: str) -> bool:
    return outer == "" or inner == outer or inner.startswith(outer + "/")


def prefixes_owned_elsewhere(target: FileTarget) -> tuple[str, ...]:
    """Folders inside `target`'s folder that other file targets own: its scan leaves them alone."""
    return tuple(
        sorted(
            other.prefix
            for other in file_targets()
            if other.prefix != target.prefix and _contains(target.prefix, other.prefix)
        )
    )


def file_scope(target: FileTarget) -> str:
    """Where a file target looks, in words: "under MEDIA_ROOT/renditions/", or "under MEDIA_ROOT except
    originals/, renditions/"."""
    location = settings.KILN_MEDIA_LOCATION
    root = "MEDIA_ROOT" if location.kind == "filesystem" else location.describe().split(" at ")[0].rstrip("/")
    where = f"under {root}/{target.prefix}/" if target.prefix else f"under {root}"
    excluded = prefixes_owned_elsewhere(target)
    if excluded:
        where += " except " + ", ".join(f"{prefix}/" for prefix in excluded)
    return where


def row_scope(target: RowTarget) -> str:
    """What a row target removes, in words: "jobs by finished_at, where state in succeeded, cleared"."""
    model = target.model_class()._meta
    where = [
        f"{lookup.replace('__in', ' in').replace('__', ' ')} "
        + (", ".join(map(str, value)) if isinstance(value, list | tuple | set) else str(value))
        for lookup, value in target.only.children
        if isinstance(lookup, str)
    ]
    return f"{model.verbose_name_plural} by {target.age_field}" + (
        f", where {'; '.join(where)}" if where else ""
    )


def register_file_references(provider: FileReferences) -> None:
    FILE_REFERENCES.append(provider)


def referenced(names: list[str]) -> set[str]:
    found: set[str] = set()
    for provider in FILE_REFERENCES:
        found.update(provider(names))
    return found
