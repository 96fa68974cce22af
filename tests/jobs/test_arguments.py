"""jobs/arguments.py: how a job's argument values are written and what a search for one looks for."""

from __future__ import annotations

from jobs.arguments import argument_patterns, argument_texts, argument_values


def test_every_value_at_any_depth_is_kept_but_never_a_key() -> None:
    text = argument_values([12, "Photo 7.JPG"], {"image_id": 12, "ids": [3, {"deep": None}], "force": True})
    assert text == '\n12\n"photo 7.jpg"\n12\n3\nnull\ntrue\n'
    assert "image_id" not in text
    assert "deep" not in text


def test_arguments_without_values_store_nothing() -> None:
    assert argument_values([], {}) == ""
    assert argument_values(None, None) == ""


def test_a_newline_inside_a_value_cannot_split_it() -> None:
    assert argument_values(["a\n12"], {}) == '\n"a\\n12"\n'


def test_a_number_is_searched_as_the_number_and_as_its_string() -> None:
    assert argument_texts("12") == ["12", '"12"']
    assert argument_texts(" 12 ") == ["12", '"12"']
    assert argument_patterns("12") == ["\n12\n", '\n"12"\n']


def test_a_quoted_value_is_only_the_string() -> None:
    assert argument_texts('"12"') == ['"12"']


def test_text_and_literals_are_searched_lowercased() -> None:
    assert argument_texts("Photo.JPG") == ['"photo.jpg"']
    assert argument_texts("true") == ["true", '"true"']
    assert argument_texts("[1, 2]") == ['"[1, 2]"']
