"""The orphan-file purges on an S3 bucket (a real SeaweedFS server): listing page by page from the cursor,
grace by object age, batched deletes, nothing outside the prefix, dry run and real run agreeing; and a store
that goes down in the middle of a batch: the run waits with the reason, carries on from its cursor once the
store is back, fails with the reason when it stays away, and can be resumed from there."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from purge import batches, registry, services
from purge.models import PurgeRun, RetentionPolicy
from purge.services import RunOutcome
from purge.tasks import purge_run_task
from tests.support.s3 import S3Server, media_settings_use, start_s3

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]

FILE_POLICIES = ("orphan_media", "unused_originals", "stale_renditions")


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, float | None]]:
    calls: list[tuple[int, float | None]] = []
    monkeypatch.setattr(
        services, "purge_run_enqueue", lambda *, run_id, countdown=None: calls.append((run_id, countdown))
    )
    return calls


def put(server: S3Server, name: str, prefix: str | None = None) -> None:
    server.client().put_object(Bucket=server.bucket, Key=f"{prefix or server.prefix}/{name}", Body=b"12345")


def request(target: str, *, dry_run: bool = False, **changes) -> PurgeRun:
    policy = RetentionPolicy.objects.get(target=target)
    for name, value in changes.items():
        setattr(policy, name, value)
    policy.save()
    return services.purge_run_request(policy=policy, dry_run=dry_run, trigger=PurgeRun.Trigger.COMMAND)


def run_to_the_end(run: PurgeRun, enqueued: list) -> PurgeRun:
    purge_run_task(run.pk)
    while enqueued:
        run_id, _ = enqueued.pop(0)
        purge_run_task(run_id)
    run.refresh_from_db()
    return run


def test_each_policy_removes_from_the_bucket_what_its_dry_run_counted_and_nothing_outside_its_prefix(
    s3_media, enqueued
) -> None:
    from thumbnails.models import Image, Rendition

    unreferenced = {
        "unused_originals": ["originals/ab/abab"],
        "stale_renditions": ["renditions/ab/abab/thumb-400.jpg", "renditions/ab/abab/preview-2048.jpg"],
        "orphan_media": ["stray.txt", "exports/2026/old.csv", "originals-old/ab"],
    }
    for names in unreferenced.values():
        for name in names:
            put(s3_media, name)
    kept = ["originals/cd/cdcd", "renditions/cd/cdcd/thumb-400.jpg"]
    for name in kept:
        put(s3_media, name)
    # Another installation's files in the same bucket, under a prefix that only starts like ours.
    put(s3_media, "stray.txt", prefix=f"{s3_media.prefix}-neighbour")
    put(s3_media, "stray.txt", prefix="elsewhere")
    image = Image.objects.create(original=kept[0], original_name="k.jpg", content_hash="cd" * 32, byte_size=5)
    Rendition.objects.create(
        image=image, name="thumb", spec_key="k", file=kept[1], width=1, height=1, byte_size=5
    )
    time.sleep(1.1)  # LastModified counts whole seconds: every object is now older than a cutoff of "now"

    assert registry.file_scope(registry.TARGETS["stale_renditions"]).startswith(
        f"under s3://{s3_media.bucket}/{s3_media.prefix}/renditions/"
    )
    dry = {
        key: run_to_the_end(request(key, dry_run=True, batch_size=2, max_age_days=0), enqueued).removed
        for key in FILE_POLICIES
    }
    assert dry == {key: len(names) for key, names in unreferenced.items()}
    runs = {
        key: run_to_the_end(request(key, batch_size=2, max_age_days=0), enqueued) for key in FILE_POLICIES
    }
    assert {key: run.removed for key, run in runs.items()} == dry
    assert runs["orphan_media"].removed_bytes == 3 * 5
    assert s3_media.keys(s3_media.prefix + "/") == sorted(f"{s3_media.prefix}/{name}" for name in kept)
    assert s3_media.keys(f"{s3_media.prefix}-neighbour/") == [f"{s3_media.prefix}-neighbour/stray.txt"]
    assert s3_media.keys("elsewhere/") == ["elsewhere/stray.txt"]


def test_grace_is_the_objects_age_and_the_cursor_pages_through(s3_media) -> None:
    target = registry.TARGETS["unused_originals"]
    for i in range(5):
        put(s3_media, f"originals/0{i}/old")
    time.sleep(1.1)
    cutoff = datetime.now(UTC)
    time.sleep(1.1)
    put(s3_media, "originals/09/young")
    removed, cursor, pages = [], "", 0
    while True:
        batch = batches.file_batch(target, cutoff=cutoff, cursor=cursor, size=2, dry_run=False)
        pages += 1
        removed.append(batch.removed)
        cursor = batch.cursor
        if batch.done:
            break
    assert sum(removed) == 5
    assert pages == 4  # three full pages (the young one examined and spared), then an empty one: done
    assert s3_media.keys(s3_media.prefix + "/") == [f"{s3_media.prefix}/originals/09/young"]


def test_a_store_down_mid_batch_waits_resumes_from_the_cursor_fails_with_the_reason_and_resumes(
    settings, tmp_path, enqueued, monkeypatch
) -> None:
    server = start_s3(tmp_path / "s3")
    try:
        environ = server.environment("site")
        media_settings_use(settings, environ)
        server.prefix = "site"
        for i in range(6):
            put(server, f"stray/{i}")
        time.sleep(1.1)
        run = request("orphan_media", batch_size=2, max_age_days=0)
        assert enqueued == [(run.pk, None)]  # its task, which this test plays by hand below
        enqueued.clear()

        # The store goes away while the second batch decides what to delete.
        real_referenced = registry.referenced
        calls = []

        def referenced(names):
            calls.append(names)
            if len(calls) == 2:
                server.stop()
            return real_referenced(names)

        monkeypatch.setattr(registry, "referenced", referenced)
        with override_settings(KILN_PURGE_RETRY_DELAYS=(1, 2)):
            assert services.purge_run_execute(run_id=run.pk) is RunOutcome.RETRY
            run.refresh_from_db()
            assert run.state == PurgeRun.State.RUNNING
            assert (run.removed, run.cursor) == (2, "stray/1")  # the first batch stands
            assert run.error.startswith(
                "attempt 1 failed, trying again in 1 s: the media store s3://kiln-media/site"
            )
            assert "is unreachable" in run.error
            assert server.secret_key not in run.error
            assert services.retry_delay(run.pk) == 1

            # Still down: the second attempt waits longer, the third gives up with the reason.
            assert services.purge_run_execute(run_id=run.pk) is RunOutcome.RETRY
            assert services.retry_delay(run.pk) == 2
            assert services.purge_run_execute(run_id=run.pk) is RunOutcome.FAILED
            run.refresh_from_db()
            assert run.state == PurgeRun.State.FAILED
            assert "is unreachable" in run.error
            assert run.error.endswith(
                "(gave up after 3 attempts; resume the run to carry on from where it stopped)"
            )

            server.start()
            assert services.purge_run_resume(run=run)
            assert enqueued == [(run.pk, None)]
            assert not services.purge_run_resume(run=run)  # running again: nothing to resume
            enqueued.clear()
            run = run_to_the_end(run, enqueued)
        assert run.state == PurgeRun.State.DONE
        assert (run.removed, run.examined, run.error, run.failures) == (6, 6, "", 0)
        assert server.keys("site/") == []
    finally:
        server.stop()
