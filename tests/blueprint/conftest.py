"""Helpers of the deploy checks' tests: a copy of deploy/ to break, and the findings on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blueprint.checks import check_deploy_dir
from tests.support.processes import REPO

SHIPPED = REPO / "deploy"
GOOD_SECRET = "kiln-deploy-check-test-secret-0123456789-abcdefghijklmnop"


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    copy = tmp_path / "deploy"
    shutil.copytree(SHIPPED, copy)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new))


def edit_section(path: Path, section: str, old: str, new: str) -> None:
    """Replace `old` only inside one [section] of an ini-style file."""
    text = path.read_text()
    start = text.index(f"[{section}]")
    end = text.find("\n[", start + 1)
    end = len(text) if end == -1 else end
    body = text[start:end]
    assert old in body, f"{old!r} is not in [{section}] of {path}"
    path.write_text(text[:start] + body.replace(old, new) + text[end:])


def findings(deploy: Path, settings) -> list[str]:
    return [str(finding) for finding in check_deploy_dir(deploy, settings)]
