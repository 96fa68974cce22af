from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack, running_stack

ADMIN_PASSWORD = "kiln-integration-admin"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running stack (`manage.py kiln run`) shared by the end-to-end tests of this folder."""
    with running_stack(
        tmp_path_factory.mktemp("e2e") / "var", DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD
    ) as stack:
        stack.wait_until_running()
        yield stack
