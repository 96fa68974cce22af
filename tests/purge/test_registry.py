from __future__ import annotations

import pytest

from purge import registry


@pytest.fixture
def targets(monkeypatch) -> dict[str, registry.Target]:
    """An empty registry for the test: the apps' own targets stay as they are."""
    fresh: dict[str, registry.Target] = {}
    monkeypatch.setattr(registry, "TARGETS", fresh)
    return fresh


def files(key: str, prefix: str) -> registry.FileTarget:
    return registry.FileTarget(key=key, label=key, prefix=prefix, default_days=1)


def test_a_folder_inside_another_targets_folder_is_left_to_its_own_target(targets) -> None:
    everything, images, thumbs = files("all", ""), files("images", "media/images"), files("thumbs", "thumbs")
    for target in (everything, images, thumbs):
        registry.register(target)
    assert registry.prefixes_owned_elsewhere(everything) == ("media/images", "thumbs")
    assert registry.prefixes_owned_elsewhere(images) == ()
    assert registry.file_scope(everything) == "under MEDIA_ROOT except media/images/, thumbs/"
    assert registry.file_scope(thumbs) == "under MEDIA_ROOT/thumbs/"


def test_a_folder_whose_name_only_begins_like_another_is_not_inside_it(targets) -> None:
    registry.register(files("thumbs", "thumbs"))
    registry.register(files("old", "thumbs-old"))
    assert registry.prefixes_owned_elsewhere(files("thumbs", "thumbs")) == ()


def test_two_file_targets_cannot_claim_one_folder(targets) -> None:
    registry.register(files("first", "renditions"))
    with pytest.raises(ValueError, match="each file must have exactly one policy"):
        registry.register(files("second", "renditions"))
    registry.register(files("first", "renditions"))  # the same target again replaces itself


def test_a_prefix_must_be_a_plain_folder_name() -> None:
    with pytest.raises(ValueError, match="not a plain folder name"):
        files("bad", "/renditions/")
