"""What may be purged. Other apps register their targets here; purge/ never imports them.

A row target names a model, the field that ages its rows and a filter (rows in a final state only). A file
target scans MEDIA_ROOT (or part of it) for files that no row references; apps say which storage names
their rows reference through `register_file_references`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.apps import apps
from django.db.models import Model, Q


@dataclass(frozen=True)
class RowTarget:
    key: str
    label: str
    model: str  # "app_label.ModelName"
    age_field: str
    default_days: int
    only: Q = field(default_factory=Q)  # rows that may go at all, e.g. final states only

    kind = "rows"

    def model_class(self) -> type[Model]:
        return apps.get_model(self.model)


@dataclass(frozen=True)
class FileTarget:
    key: str
    label: str
    prefix: str  # "" for all of MEDIA_ROOT, else a sub-directory such as "renditions"
    default_days: int

    kind = "files"


Target = RowTarget | FileTarget
TARGETS: dict[str, Target] = {}

# Each provider gets a batch of storage names and returns those its rows reference.
FileReferences = Callable[[list[str]], Iterable[str]]
FILE_REFERENCES: list[FileReferences] = []


def register(target: Target) -> None:
    TARGETS[target.key] = target


def register_file_references(provider: FileReferences) -> None:
    FILE_REFERENCES.append(provider)


def referenced(names: list[str]) -> set[str]:
    found: set[str] = set()
    for provider in FILE_REFERENCES:
        found.update(provider(names))
    return found
