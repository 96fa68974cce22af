from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import time_machine
from celery.exceptions import SoftTimeLimitExceeded
from django.db.models.signals import post_delete
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from purge import services
from purge.models import PurgeRun, RetentionPolicy
from purge.schedule import NIGHTLY_NAME
from purge.services import RunOutcome
from purge.tasks import purge_run_task
from reports.models import PrintTask, Report, ReportHistoryRecord

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def enqueued(monkeypatch) -> list[tuple[int, float | None]]:
    """Runs handed to the broker (the real publishing is covered by the integration tests)."""
    calls: list[tuple[int, float | None]] = []
    monkeypatch.setattr(
        services, "purge_run_enqueue", lambda *, run_id, countdown=None: calls.append((run_id, countdown))
    )
    return calls


def policy(target: str, **changes) -> RetentionPolicy:
    row = RetentionPolicy.objects.get(target=target)
    for name, value in changes.items():
        setattr(row, name, value)
    row.save()
    return row


def history(report: Report, days_ago: float, count: int = 1) -> None:
    when = timezone.now() - timedelta(days=days_ago)
    ReportHistoryRecord.objects.bulk_create(
        [ReportHistoryRecord(report=report, rendered_at=when) for _ in range(count)]
    )


def run_to_the_end(run: PurgeRun, enqueued: list, budget: float = 60) -> PurgeRun:
    """The run's task, and every follow-up it enqueues, as the worker would pick them up."""
    with override_settings(KILN_PURGE_TASK_BUDGET_SECONDS=budget):
        purge_run_task(run.pk)
        while enqueued:
            run_id, _ = enqueued.pop(0)
            purge_run_task(run_id)
    run.refresh_from_db()
    return run


def request(target: str, *, dry_run: bool = False, **policy_changes) -> PurgeRun:
    return services.purge_run_request(
        policy=policy(target, **policy_changes), dry_run=dry_run, trigger=PurgeRun.Trigger.COMMAND
    )


def test_migrate_installs_one_policy_per_target_and_the_nightly_entry_on_default_at_midnight(
    settings,
) -> None:
    assert set(RetentionPolicy.objects.values_list("target", "max_age_days")) == {
        ("report_history", 90),
        ("print_tasks", 30),
        ("orphan_media", 1),
        ("unused_originals", 1),
        ("stale_renditions", 1),
        ("job_history_done", 1),
        ("job_history_failed", 7),
        ("job_history_unfinished", 7),
        ("input_rejections", 30),
        ("metrics_minutes", 2),
        ("metrics_hours", 90),
        ("outbox_published", 7),
    }
    nightly = PeriodicTask.objects.get(name=NIGHTLY_NAME)
    assert (nightly.task, nightly.queue, nightly.enabled) == ("purge.tasks.purge_nightly", "default", True)
    crontab = nightly.crontab
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("0", "0", settings.TIME_ZONE)


def test_installing_again_keeps_what_an_admin_edited() -> None:
    policy("report_history", max_age_days=7)
    PeriodicTask.objects.filter(name=NIGHTLY_NAME).update(enabled=False)
    from purge.apps import install_defaults

    install_defaults(sender=None)
    assert RetentionPolicy.objects.get(target="report_history").max_age_days == 7
    assert PeriodicTask.objects.get(name=NIGHTLY_NAME).enabled is False


def test_a_policy_still_named_after_its_targets_former_label_takes_the_new_one_and_a_chosen_name_stays() -> (
    None
):
    policy("stale_renditions", name="Rendition files of deleted images")
    policy("orphan_media", name="Stray files (ours)")
    services.policies_install()
    services.policies_install()
    assert RetentionPolicy.objects.get(target="stale_renditions").name == (
        "Rendition files that no image references (deleted images, outdated renditions)"
    )
    assert RetentionPolicy.objects.get(target="orphan_media").name == "Stray files (ours)"
    assert RetentionPolicy.objects.filter(target="unused_originals").count() == 1


def test_a_run_removes_only_rows_older_than_the_policy_in_small_batches(enqueued) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=100, count=23)
    history(report, days_ago=89, count=5)
    run = run_to_the_end(request("report_history", batch_size=5), enqueued)
    assert (run.state, run.removed, run.examined, run.batches) == ("done", 23, 23, 5)
    assert ReportHistoryRecord.objects.count() == 5
    assert run.started_at <= run.finished_at
    assert RetentionPolicy.objects.get(target="report_history").locked_by is None


def test_a_dry_run_counts_exactly_what_a_real_run_removes_and_removes_nothing(enqueued) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=120, count=12)
    history(report, days_ago=10, count=3)
    dry = run_to_the_end(request("report_history", dry_run=True, batch_size=5), enqueued)
    assert ReportHistoryRecord.objects.count() == 15
    real = run_to_the_end(request("report_history", batch_size=5), enqueued)
    assert dry.removed == real.removed == 12


def test_print_tasks_go_only_in_a_final_state_and_after_their_age(enqueued) -> None:
    report = Report.objects.create(name="r")
    old = timezone.now() - timedelta(days=40)
    recent = timezone.now() - timedelta(days=5)
    final_old = [
        PrintTask.objects.create(report=report, status=s, completed_at=old) for s in ("completed", "failed")
    ]
    kept = [
        PrintTask.objects.create(report=report, status="completed", completed_at=recent),
        PrintTask.objects.create(report=report, status="printing", completed_at=old),
        PrintTask.objects.create(report=report, status="queued"),
    ]
    run = run_to_the_end(request("print_tasks"), enqueued)
    assert run.removed == len(final_old)
    assert set(PrintTask.objects.values_list("pk", flat=True)) == {task.pk for task in kept}


def test_delete_signals_are_still_sent_for_every_row(enqueued) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=200, count=12)
    seen: list[int] = []

    def receiver(sender, instance, **kwargs) -> None:
        seen.append(instance.pk)

    post_delete.connect(receiver, sender=ReportHistoryRecord)
    try:
        run = run_to_the_end(request("report_history", batch_size=5), enqueued)
    finally:
        post_delete.disconnect(receiver, sender=ReportHistoryRecord)
    assert run.removed == 12
    assert len(seen) == 12


def test_a_run_out_of_time_continues_in_a_follow_up_task_and_keeps_its_cutoff(enqueued) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=100, count=10)
    run = request("report_history", batch_size=2)
    assert enqueued == [(run.pk, None)], "a request enqueues its run once it commits"
    enqueued.clear()
    assert services.purge_run_execute(run_id=run.pk, budget_seconds=0) is RunOutcome.CONTINUE
    assert enqueued == [], "the service says so; carrying on is the task's"
    with override_settings(KILN_PURGE_TASK_BUDGET_SECONDS=0):
        assert purge_run_task(run.pk) == "continue"
    assert enqueued == [(run.pk, None)]
    enqueued.clear()
    first = PurgeRun.objects.get(pk=run.pk)
    assert (first.state, first.removed, first.tasks) == ("running", 4, 2)
    run = run_to_the_end(run, enqueued, budget=0)
    assert (run.state, run.removed, run.cutoff) == ("done", 10, first.cutoff)
    assert run.tasks == 5  # five batches of two; the fifth reaches the end of the key span


def test_a_soft_time_limit_mid_batch_rolls_that_batch_back_and_the_task_carries_on(
    enqueued, monkeypatch
) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=100, count=6)
    run = request("report_history", batch_size=2)
    enqueued.clear()
    real_batch = services._next_batch
    calls = []

    def batch_then_time_limit(target, run, cursor):
        calls.append(cursor)
        if len(calls) == 2:  # the second batch: inside its transaction, after it deleted
            real_batch(target, run, cursor)
            raise SoftTimeLimitExceeded()
        return real_batch(target, run, cursor)

    monkeypatch.setattr(services, "_next_batch", batch_then_time_limit)
    assert purge_run_task(run.pk) == "continue"
    assert enqueued == [(run.pk, None)]
    cut = PurgeRun.objects.get(pk=run.pk)
    assert (cut.state, cut.removed, cut.error) == ("running", 2, ""), "not failed; the second batch undone"
    assert ReportHistoryRecord.objects.count() == 4
    monkeypatch.setattr(services, "_next_batch", real_batch)
    enqueued.clear()
    assert run_to_the_end(run, enqueued).removed == 6


def test_a_half_done_run_finding_its_policy_locked_waits_and_tries_again(enqueued) -> None:
    run = request("report_history")
    PurgeRun.objects.filter(pk=run.pk).update(state=PurgeRun.State.RUNNING)
    other = request("report_history")
    RetentionPolicy.objects.filter(target="report_history").update(
        locked_by=other, locked_until=timezone.now() + timedelta(seconds=60)
    )
    enqueued.clear()
    assert services.purge_run_execute(run_id=run.pk) is RunOutcome.WAIT
    assert purge_run_task(run.pk) == "wait"
    assert enqueued == [(run.pk, services.LOCKED_RETRY_SECONDS)]


def test_a_second_run_of_a_locked_policy_says_so_in_its_row(enqueued) -> None:
    first = request("report_history")
    RetentionPolicy.objects.filter(target="report_history").update(
        locked_by=first, locked_until=timezone.now() + timedelta(seconds=60)
    )
    second = request("report_history")
    assert services.purge_run_execute(run_id=second.pk) is RunOutcome.SKIPPED
    second.refresh_from_db()
    assert second.state == "skipped"
    assert f"run #{first.pk} of this policy was still running" in second.error


def test_the_lock_of_a_dead_worker_expires_and_the_next_run_proceeds(enqueued) -> None:
    dead = request("report_history")
    RetentionPolicy.objects.filter(target="report_history").update(
        locked_by=dead, locked_until=timezone.now() - timedelta(seconds=1)
    )
    assert run_to_the_end(request("report_history"), enqueued).state == "done"


def test_a_redelivered_finished_run_does_nothing(enqueued) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=100, count=3)
    run = run_to_the_end(request("report_history"), enqueued)
    history(report, days_ago=100, count=3)
    assert services.purge_run_execute(run_id=run.pk) is RunOutcome.DONE
    assert ReportHistoryRecord.objects.count() == 3
    assert PurgeRun.objects.get(pk=run.pk).removed == 3


def test_the_nightly_purge_runs_each_enabled_policy_once_per_day_in_time_zone(settings, enqueued) -> None:
    settings.TIME_ZONE = "Europe/Berlin"
    policy("orphan_media", enabled=False)
    enabled = RetentionPolicy.objects.filter(enabled=True).count()
    with time_machine.travel("2026-03-01 23:30:00+00:00"):  # already 2 March in Berlin
        first = services.purge_nightly()
        again = services.purge_nightly()  # a second beat, or a restarted one
    assert len(first) == enabled == RetentionPolicy.objects.count() - 1
    assert again == []
    assert set(PurgeRun.objects.values_list("slot", flat=True)) == {date(2026, 3, 2)}
    with time_machine.travel("2026-03-02 23:30:00+00:00"):
        assert len(services.purge_nightly()) == enabled


# -- files -------------------------------------------------------------------------------------------


def make_file(root: Path, name: str, age_days: float) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_unreferenced_files_go_but_referenced_files_young_files_and_links_stay(
    media_root: Path, tmp_path: Path, enqueued
) -> None:
    from thumbnails.models import Image

    orphan = make_file(media_root, "originals/ab/orphan", age_days=3)
    young = make_file(media_root, "originals/ab/young", age_days=0.5)
    used = make_file(media_root, "originals/cd/used", age_days=30)
    Image.objects.create(
        original="originals/cd/used", original_name="u.jpg", content_hash="cd" * 32, byte_size=100
    )
    outside = make_file(tmp_path / "elsewhere", "precious.txt", age_days=30)
    (media_root / "originals/link-out").symlink_to(outside)
    (media_root / "originals/dir-out").symlink_to(outside.parent, target_is_directory=True)

    dry = run_to_the_end(request("unused_originals", dry_run=True, batch_size=2), enqueued)
    assert (dry.removed, dry.removed_bytes) == (1, 100)
    assert orphan.exists()
    run = run_to_the_end(request("unused_originals", batch_size=2), enqueued)
    assert (run.state, run.removed, run.examined) == ("done", 1, 3)
    assert not orphan.exists()
    assert young.exists()
    assert used.exists()
    assert outside.exists()
    assert (media_root / "originals/link-out").is_symlink()


FILE_POLICIES = ("orphan_media", "unused_originals", "stale_renditions")


def test_each_file_has_exactly_one_policy_and_each_dry_run_counts_what_its_real_run_then_removes(
    media_root: Path, enqueued
) -> None:
    from thumbnails.models import Image, Rendition

    unreferenced = {
        "unused_originals": ["originals/ab/abab"],
        "stale_renditions": ["renditions/ab/abab/thumb-400.jpg", "renditions/ab/abab/preview-2048.jpg"],
        # Outside the thumbnails folders, and a folder whose name only starts like one of them.
        "orphan_media": ["stray.txt", "exports/2026/old.csv", "originals-old/ab"],
    }
    for names in unreferenced.values():
        for name in names:
            make_file(media_root, name, age_days=5)
    kept = [
        make_file(media_root, "originals/cd/cdcd", age_days=5),
        make_file(media_root, "renditions/cd/cdcd/thumb-400.jpg", age_days=5),
    ]
    image = Image.objects.create(
        original="originals/cd/cdcd", original_name="k.jpg", content_hash="cd" * 32, byte_size=100
    )
    Rendition.objects.create(
        image=image, name="thumb", spec_key="k", file="renditions/cd/cdcd/thumb-400.jpg",
        width=1, height=1, byte_size=100,
    )  # fmt: skip

    # Every dry run first, then the real runs, the catch-all first: the order that once let the orphan
    # policy take the renditions that the renditions policy's dry run had counted.
    dry = {
        key: run_to_the_end(request(key, dry_run=True, batch_size=2), enqueued).removed
        for key in FILE_POLICIES
    }
    assert dry == {key: len(names) for key, names in unreferenced.items()}
    real = {key: run_to_the_end(request(key, batch_size=2), enqueued).removed for key in FILE_POLICIES}
    assert real == dry
    assert not [name for names in unreferenced.values() for name in names if (media_root / name).exists()]
    assert all(path.exists() for path in kept)


def test_a_deleted_images_original_and_renditions_go_after_the_grace_period_unless_a_twin_uses_them(
    media_root: Path, enqueued
) -> None:
    from thumbnails.models import Image, Rendition

    digest = "ef" * 32
    original = f"originals/ef/{digest}"
    renditions = [f"renditions/ef/{digest}/thumb-400.jpg", f"renditions/ef/{digest}/preview-2048.jpg"]
    files = [make_file(media_root, name, age_days=2) for name in [original, *renditions]]
    images = []
    for _ in range(2):  # twins: the same content, so the same files
        image = Image.objects.create(
            original=original, original_name="t.jpg", content_hash=digest, byte_size=100
        )
        for name, file in zip(("thumb", "preview"), renditions, strict=True):
            Rendition.objects.create(
                image=image, name=name, spec_key="k", file=file, width=1, height=1, byte_size=100
            )
        images.append(image)

    images[0].delete()
    assert [run_to_the_end(request(key), enqueued).removed for key in FILE_POLICIES] == [0, 0, 0]
    assert all(path.exists() for path in files)

    images[1].delete()
    assert [run_to_the_end(request(key), enqueued).removed for key in FILE_POLICIES] == [0, 1, 2]
    assert not any(path.exists() for path in files)


# -- progress and batches ------------------------------------------------------------------------------


def test_a_row_run_knows_its_key_span_from_the_first_batch_and_lists_each_batch(enqueued) -> None:
    report = Report.objects.create(name="r")
    history(report, days_ago=100, count=23)
    run = run_to_the_end(request("report_history", batch_size=5), enqueued)
    assert (run.scope, run.covered, run.scope_estimated) == (23, 23, False)
    listed = list(run.batch_set.values_list("number", "removed"))
    assert listed == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 3)]
    assert all(batch.seconds >= 0 and batch.finished_at for batch in run.batch_set.all())


def test_a_file_run_takes_the_last_runs_count_as_an_estimate_of_how_many_files_it_will_walk(
    media_root: Path, enqueued
) -> None:
    for n in range(5):
        make_file(media_root, f"stray-{n}.txt", age_days=0.1)
    first = run_to_the_end(request("orphan_media", dry_run=True, batch_size=2), enqueued)
    assert (first.scope, first.covered, first.examined) == (None, 5, 5)
    assert first.progress().fraction is None  # nothing to compare with: not known, not a guess
    assert list(first.batch_set.values_list("number", "examined", "removed")) == [
        (1, 2, 0),
        (2, 2, 0),
        (3, 1, 0),
    ]

    make_file(media_root, "stray-5.txt", age_days=0.1)
    second = run_to_the_end(request("orphan_media", batch_size=2), enqueued)
    assert (second.scope, second.scope_estimated, second.covered) == (5, True, 6)


def test_a_run_jumps_over_key_ranges_with_nothing_expired(enqueued, monkeypatch) -> None:
    from purge import batches

    report = Report.objects.create(name="r")
    history(report, days_ago=100, count=3)
    history(report, days_ago=1, count=500)  # young rows between the old ones: a long empty key range
    history(report, days_ago=100, count=3)
    steps: list[str] = []
    real = batches.row_batch
    monkeypatch.setattr(batches, "row_batch", lambda *a, **k: steps.append(k["cursor"]) or real(*a, **k))
    run = run_to_the_end(request("report_history", batch_size=10), enqueued)
    assert (run.state, run.removed) == ("done", 6)
    assert len(steps) <= 3, f"walked the young keys ten at a time: {len(steps)} steps"
    assert ReportHistoryRecord.objects.count() == 500
