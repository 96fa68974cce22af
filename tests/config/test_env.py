from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_int_map, env_list, env_path, env_port, env_str


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("False", False), ("1", True), ("off", False)])
def test_env_bool_reads_the_usual_spellings(raw: str, expected: bool) -> None:
    assert env_bool({"DEBUG": raw}, "DEBUG", default=not expected) is expected


def test_env_bool_falls_back_to_its_default_when_unset_or_blank() -> None:
    assert env_bool({}, "DEBUG", default=True) is True
    assert env_bool({"DEBUG": " "}, "DEBUG", default=False) is False


def test_env_bool_refuses_anything_else_naming_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG must be true or false, got 'ture'"):
        env_bool({"DEBUG": "ture"}, "DEBUG", default=False)


def test_env_str_without_default_names_the_missing_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        env_str({"SECRET_KEY": ""}, "SECRET_KEY")


def test_env_int_refuses_text_and_out_of_range_values() -> None:
    with pytest.raises(ImproperlyConfigured, match="KILN_WEB_WORKERS must be an integer, got 'three'"):
        env_int({"KILN_WEB_WORKERS": "three"}, "KILN_WEB_WORKERS", 3)
    with pytest.raises(ImproperlyConfigured, match="KILN_WEB_WORKERS must be at least 1, got 0"):
        env_int({"KILN_WEB_WORKERS": "0"}, "KILN_WEB_WORKERS", 3, minimum=1)
    assert env_int({}, "KILN_WEB_WORKERS", 3) == 3


def test_env_port_refuses_a_port_outside_the_tcp_range() -> None:
    with pytest.raises(ImproperlyConfigured, match="KILN_PORT must be at most 65535"):
        env_port({"KILN_PORT": "70000"}, "KILN_PORT", 8000)


def test_env_list_splits_on_commas_and_requires_a_value_without_default() -> None:
    assert env_list({"ALLOWED_HOSTS": "a.example, b.example,,"}, "ALLOWED_HOSTS") == [
        "a.example",
        "b.example",
    ]
    with pytest.raises(ImproperlyConfigured, match="ALLOWED_HOSTS must be set"):
        env_list({}, "ALLOWED_HOSTS")


def test_env_path_requires_an_absolute_path() -> None:
    assert env_path({}, "KILN_VAR_DIR", Path("/srv/var")) == Path("/srv/var")
    with pytest.raises(ImproperlyConfigured, match="KILN_VAR_DIR must be an absolute path"):
        env_path({"KILN_VAR_DIR": "var"}, "KILN_VAR_DIR", Path("/srv/var"))


def test_env_int_map_takes_keys_with_spaces_and_colons_and_refuses_values_below_the_minimum() -> None:
    environ = {"KILN_SCHEDULE_GRACE": "purge: nightly=1800, jobs: alert check=300"}
    assert env_int_map(environ, "KILN_SCHEDULE_GRACE", {}, minimum=1) == {
        "purge: nightly": 1800,
        "jobs: alert check": 300,
    }
    with pytest.raises(
        ImproperlyConfigured, match="KILN_SCHEDULE_GRACE must give 'purge: nightly' at least 1"
    ):
        env_int_map({"KILN_SCHEDULE_GRACE": "purge: nightly=0"}, "KILN_SCHEDULE_GRACE", {}, minimum=1)
    with pytest.raises(ImproperlyConfigured, match="KILN_SCHEDULE_GRACE must look like a=1, got 'nightly'"):
        env_int_map({"KILN_SCHEDULE_GRACE": "nightly"}, "KILN_SCHEDULE_GRACE", {}, example="a=1")
