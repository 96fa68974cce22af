"""/healthz and /metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app
from jobs.models import Job

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_healthz_answers_200_when_database_and_broker_answer(client, app_broker) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_answers_503_naming_the_broker_when_it_is_down(client) -> None:
    response = client.get("/healthz")  # the test process's default broker is a socket that does not exist
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")
    assert response.json()["database"] == "ok"


def test_metrics_refuse_other_addresses_and_proxied_requests_without_the_token(client, settings) -> None:
    settings.KILN_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert (
        client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    )
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    )


def test_metrics_parse_and_carry_the_queue_depth_and_job_histograms(client, settings, app_broker) -> None:
    settings.KILN_METRICS_TOKEN = "s3cret"
    with app.connection_for_write(app_broker.url) as connection:
        for n in range(3):
            app.send_task(
                "probe.record", args=[f"m{n}", 0.0], queue="high", connection=connection, ignore_result=True
            )
    now = timezone.now()
    Job.objects.create(
        task_id="done-1", task_name="thumbnails.tasks.rendition_generate", queue="high", state="succeeded",
        published_at=now - timedelta(seconds=4), started_at=now - timedelta(seconds=3), finished_at=now,
    )  # fmt: skip
    Job.objects.create(
        task_id="bad-1", task_name="purge.tasks.purge_run", queue="default", state="failed", finished_at=now
    )

    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret")
    assert response.status_code == 200
    found = samples(response.content.decode())
    assert found[("kiln_queue_depth", (("queue", "high"),))] == 3
    assert found[("kiln_queue_depth", (("queue", "default"),))] == 0
    assert found[("kiln_broker_up", ())] == 1
    assert found[("kiln_failed_jobs", ())] == 1
    assert found[("kiln_queue_oldest_wait_seconds", (("queue", "high"),))] >= 0
    assert (
        found[("kiln_jobs", (("queue", "default"), ("state", "failed"), ("task", "purge.tasks.purge_run")))]
        == 1
    )
    # One job ran 3 s after waiting 1 s: in the 5 s run bucket, not the 2 s one; in the 1 s wait bucket.
    assert found[("kiln_job_run_seconds_bucket", (("le", "2.0"), ("queue", "high")))] == 0
    assert found[("kiln_job_run_seconds_bucket", (("le", "5.0"), ("queue", "high")))] == 1
    assert found[("kiln_job_wait_seconds_bucket", (("le", "1.0"), ("queue", "high")))] == 1
    assert found[("kiln_job_run_seconds_gsum", (("queue", "high"),))] == pytest.approx(3.0)
    # No worker is running: both queues are critical for lack of workers once jobs wait.
    assert found[("kiln_queue_health", (("queue", "high"),))] == 2


def test_metrics_answer_an_allowed_address_without_a_token(client, app_broker) -> None:
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_metrics_carry_each_beat_entrys_last_run_last_start_and_lateness(client, monkeypatch) -> None:
    from django_celery_beat.models import PeriodicTask

    from jobs import selectors
    from tests.jobs.test_selectors import beat_entry, job

    PeriodicTask.objects.update(last_run_at=timezone.now())  # the nightly purge: just sent
    silent = beat_entry("probe: beat silent", sent_ago=600, task="probe.silent")
    job("silent-1", "probe.silent", 600, started=True)
    beat_entry("probe: disabled", sent_ago=None, enabled=False)
    monkeypatch.setattr(selectors, "_last", None)  # another test's cached snapshot must not answer
    found = samples(client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode())
    label = (("schedule", "probe: beat silent"),)
    assert found[("kiln_schedule_late", label)] == 1
    assert found[("kiln_schedule_late", (("schedule", "purge: nightly"),))] == 0
    assert ("kiln_schedule_late", (("schedule", "probe: disabled"),)) not in found, "not watched, no figure"
    silent.refresh_from_db()
    assert found[("kiln_schedule_last_run_timestamp_seconds", label)] == pytest.approx(
        silent.last_run_at.timestamp()
    )
    assert found[("kiln_schedule_last_start_timestamp_seconds", label)] == pytest.approx(
        silent.last_run_at.timestamp() + 0.1, abs=0.05
    )
