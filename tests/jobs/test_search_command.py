"""`manage.py jobs search`: the job history on the command line."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from jobs.models import Job

pytestmark = [pytest.mark.database, pytest.mark.django_db]

RENDITION = "thumbnails.tasks.rendition_generate"


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def recorded(task_id: str, *, args=(), kwargs=None, ago=timedelta(minutes=1), **fields) -> Job:
    published = timezone.now() - ago
    values = {
        "task_name": RENDITION,
        "queue": "high",
        "state": Job.State.SUCCEEDED,
        "published_at": published,
        "started_at": published + timedelta(seconds=1),
        "finished_at": published + timedelta(seconds=3),
    }
    values.update(fields)
    return Job.objects.create(task_id=task_id, args=list(args), kwargs=kwargs or {}, **values)


def test_search_prints_a_line_per_job_newest_first() -> None:
    older = recorded("a", args=[12], ago=timedelta(hours=2))
    newer = recorded("b", kwargs={"image_id": 12, "force": True})
    recorded("c", args=[123])
    lines = run("search", "--arg", "12").splitlines()
    assert lines[0].split() == ["id", "published", "queue", "state", "run", "task", "arguments"]
    assert [line.split()[0] for line in lines[1:]] == [str(newer.id), str(older.id)]
    assert re.search(rf"{RENDITION}\s+force=true, image_id=12$", lines[1])
    assert re.search(r"high +succeeded +2\.0 s ", lines[1])
    assert timezone.localtime(newer.published_at).strftime("%Y-%m-%d %H:%M:%S") in lines[1]


def test_search_combines_its_filters() -> None:
    recorded("failed-now", state=Job.State.FAILED, args=[1])
    recorded("failed-before", state=Job.State.FAILED, args=[2], ago=timedelta(hours=3))
    recorded("failed-elsewhere", state=Job.State.FAILED, queue="default", task_name="purge.tasks.purge_run")
    recorded("succeeded", args=[3])
    data = json.loads(
        run("search", "--task", RENDITION, "--state", "failed", "--queue", "high", "--since", "2h", "--json")
    )
    assert [job["task_id"] for job in data] == ["failed-now"]
    until = (timezone.now() - timedelta(hours=1)).isoformat()
    data = json.loads(run("search", "--state", "failed", "--until", until, "--json"))
    assert [job["task_id"] for job in data] == ["failed-before"]


def test_search_json_gives_every_field_and_the_whole_arguments() -> None:
    job = recorded("j", args=["x" * 100], kwargs={"report_id": 5})
    (item,) = json.loads(run("search", "--json"))
    assert item["id"] == job.id
    assert (item["task"], item["queue"], item["state"]) == (RENDITION, "high", "succeeded")
    assert (item["args"], item["kwargs"]) == (["x" * 100], {"report_id": 5})
    assert (item["wait_seconds"], item["run_seconds"]) == (1.0, 2.0)
    assert item["published_at"] == job.published_at.isoformat()


def test_long_arguments_are_cut_on_the_line_and_the_limit_is_said() -> None:
    recorded("long", args=["x" * 100])
    recorded("other", args=[1])
    lines = run("search", "--limit", "1", "--arg", "x" * 100).splitlines()
    assert lines[1].endswith('"' + "x" * 58 + "…")
    assert lines[-1] == "the newest 1 shown: --limit for more, or narrow the search"
    assert run("search", "--arg", "404") == "no job matches\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--since", "soon"], "'soon' is neither a duration"),
        (["--until", "12x"], "'12x' is neither a duration"),
        (["--since", "99999999999d"], "longer than any history"),
        (["--state", "done"], "unknown state 'done': use one of queued, started"),
        (["--limit", "0"], "--limit must be 1 or more"),
    ],
)
def test_search_refuses_what_it_cannot_read_with_a_clear_message(arguments, message) -> None:
    with pytest.raises(CommandError, match=message):
        run("search", *arguments)
