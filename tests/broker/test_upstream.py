"""The canary: every private member of kombu, Celery and redis-py that broker/ relies on is still there, with
the signature it was written against. An upgrade that changes one fails here, naming it, before it breaks
recovery in production."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re

import pytest

import broker as broker_package
from broker.upstream import CHECKED_WITH, MEMBERS, Member


def owner_object(owner: str) -> object:
    module_name, _, attribute = owner.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def defined_in_source(owner: object, name: str) -> bool:
    """An instance attribute: assigned (`self.name =`, `obj.name =`) in the module of the owner or of one
    of its bases (a module's source is always at hand; a class's is not, under some metaclasses)."""
    classes = inspect.getmro(owner) if inspect.isclass(owner) else (owner,)
    pattern = re.compile(rf"\.{re.escape(name)}\s*=[^=]")
    modules = {inspect.getmodule(cls) for cls in classes} - {None}
    return any(
        pattern.search(inspect.getsource(module)) for module in modules if module.__name__ != "builtins"
    )


@pytest.mark.parametrize("member", MEMBERS, ids=lambda member: f"{member.owner}.{member.name}")
def test_each_private_member_broker_relies_on_is_still_there(member: Member) -> None:
    owner = owner_object(member.owner)
    found = hasattr(owner, member.name) or defined_in_source(owner, member.name)
    assert found, (
        f"{member.owner} has no {member.name} any more: broker/ relies on it (checked with {CHECKED_WITH}); "
        "read the library's change and adapt broker/ before upgrading"
    )
    if member.signature is not None:
        signature = str(inspect.signature(getattr(owner, member.name)))
        assert signature == member.signature, (
            f"{member.owner}.{member.name} is now {signature}, broker/ was written against "
            f"{member.signature} (checked with {CHECKED_WITH})"
        )
    if member.value is not None:
        assert getattr(owner, member.name) == member.value, (
            f"{member.owner}.{member.name} is {getattr(owner, member.name)!r}, broker/ hard-codes {member.value!r}"
        )


def test_the_versions_checked_are_the_versions_installed() -> None:
    installed = {name: importlib.metadata.version(name) for name in CHECKED_WITH}
    assert installed == CHECKED_WITH, (
        "a library broker/ reaches into was upgraded: run this file's other tests, then update CHECKED_WITH "
        "in broker/upstream.py and the versions in broker/__init__.py's docstring"
    )


def test_the_docstring_lists_every_member_and_the_versions() -> None:
    doc = broker_package.__doc__ or ""
    missing = sorted(
        {member.name for member in MEMBERS if not re.search(rf"[`.]{re.escape(member.name)}\b", doc)}
    )
    assert missing == [], f"broker/__init__.py's docstring does not name: {', '.join(missing)}"
    for name, version in CHECKED_WITH.items():
        assert re.search(rf"{version}", doc), (
            f"the docstring does not say which {name} it was checked against"
        )


def test_the_cancel_warning_kiln_silences_still_reads_as_the_filter_expects() -> None:
    from celery.worker.consumer.consumer import CANCEL_TASKS_BY_DEFAULT

    assert re.match(r"\s*In Celery 5\.1 we introduced", CANCEL_TASKS_BY_DEFAULT)
