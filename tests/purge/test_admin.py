from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from purge import services
from purge.models import PurgeRun, RetentionPolicy

pytestmark = [pytest.mark.database, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(services, "purge_run_enqueue", lambda *, run_id, countdown=None: calls.append(run_id))
    return calls


def staff(*codenames: str, username: str = "staff") -> Client:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only", is_staff=True)
    view = ["view_retentionpolicy", "change_retentionpolicy", "view_purgerun"]
    user.user_permissions.set(Permission.objects.filter(codename__in=[*view, *codenames]))
    client = Client()
    client.force_login(user)
    return client


def post_action(client: Client, action: str) -> None:
    ids = list(RetentionPolicy.objects.filter(target="report_history").values_list("pk", flat=True))
    client.post("/admin/purge/retentionpolicy/", {"action": action, "_selected_action": ids})


def test_the_policy_list_shows_what_each_policy_purges_and_its_last_run() -> None:
    page = staff().get("/admin/purge/retentionpolicy/").content.decode()
    # Where each looks, beside its name (not the name twice).
    assert "files under MEDIA_ROOT except originals/, renditions/" in page
    assert "files under MEDIA_ROOT/renditions/" in page
    assert "jobs by finished_at, where state in succeeded, cleared, revoked" in page
    assert "report history records by rendered_at" in page
    assert "never" in page


def test_each_action_needs_its_own_permission(enqueued) -> None:
    nothing = staff()
    page = nothing.get("/admin/purge/retentionpolicy/").content.decode()
    assert "run_now" not in page
    assert "dry_run" not in page
    post_action(nothing, "run_now")
    assert not PurgeRun.objects.exists()

    dry_only = staff("dry_run_policy", username="dry")
    page = dry_only.get("/admin/purge/retentionpolicy/").content.decode()
    assert 'value="dry_run"' in page
    assert 'value="run_now"' not in page
    post_action(dry_only, "run_now")
    assert not PurgeRun.objects.exists()
    post_action(dry_only, "dry_run")
    run = PurgeRun.objects.get()
    assert (run.dry_run, run.trigger, run.triggered_by.username, run.state) == (
        True,
        "admin",
        "dry",
        "queued",
    )
    assert enqueued == [run.pk]


def test_run_now_queues_a_real_run_and_the_run_list_refreshes_while_it_is_active(enqueued) -> None:
    client = staff("run_policy")
    post_action(client, "run_now")
    run = PurgeRun.objects.get()
    assert run.dry_run is False
    assert '<meta http-equiv="refresh"' in client.get("/admin/purge/purgerun/").content.decode()
    PurgeRun.objects.update(state=PurgeRun.State.DONE)
    assert '<meta http-equiv="refresh"' not in client.get("/admin/purge/purgerun/").content.decode()


def test_admin_actions_are_csrf_protected(enqueued) -> None:
    user = get_user_model().objects.create_superuser("root", "root@localhost", "pw-for-tests-only")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    ids = list(RetentionPolicy.objects.values_list("pk", flat=True))
    response = client.post("/admin/purge/retentionpolicy/", {"action": "run_now", "_selected_action": ids})
    assert response.status_code == 403
    assert not PurgeRun.objects.exists()


def test_runs_say_real_or_dry_in_words_and_their_durations_as_people_do() -> None:
    policy = RetentionPolicy.objects.get(target="report_history")
    started = timezone.now() - timedelta(hours=1)
    real = PurgeRun.objects.create(
        policy=policy, dry_run=False, state=PurgeRun.State.DONE, started_at=started,
        finished_at=started + timedelta(seconds=252),
    )  # fmt: skip
    PurgeRun.objects.create(policy=policy, dry_run=True, state=PurgeRun.State.QUEUED)
    client = staff()
    listing = client.get("/admin/purge/purgerun/").content.decode()
    assert "real run" in listing and "dry run" in listing  # noqa: PT018
    assert "4 min 12 s" in listing
    assert "icon-no.svg" not in listing  # no red cross on a run that went well
    detail = client.get(f"/admin/purge/purgerun/{real.pk}/change/").content.decode()
    assert "4 min 12 s" in detail and "0:04:12" not in detail  # noqa: PT018


@pytest.fixture
def frozen() -> Iterator[None]:
    """The clock stands still: a run started a minute ago is a minute old when the page is drawn."""
    with time_machine.travel(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), tick=False):
        yield


def running_run(**fields) -> PurgeRun:
    policy = RetentionPolicy.objects.get(target="report_history")
    started = timezone.now() - timedelta(minutes=1)
    return PurgeRun.objects.create(
        policy=policy, state=PurgeRun.State.RUNNING, started_at=started, trigger="nightly", **fields
    )


def test_a_running_run_shows_a_bar_its_share_and_the_time_left_at_its_rate_so_far(frozen) -> None:
    running_run(scope=40_000, covered=10_000, examined=10_000, removed=9_876)
    listing = staff().get("/admin/purge/purgerun/").content.decode()
    assert '<progress class="purge-progress" value="0.250" max="1">' in listing
    assert "25\u00a0% · about 3 min left" in listing
    assert "9,876" in listing
    assert "nightly schedule" in listing


def test_a_run_whose_total_is_not_known_says_so_instead_of_a_share(frozen) -> None:
    running_run(scope=None, covered=12_345, examined=12_345)
    listing = staff().get("/admin/purge/purgerun/").content.decode()
    assert '<progress class="purge-progress" max="1">' in listing  # a busy bar, claiming no share
    assert "12,345 examined so far · total not known" in listing
    assert " left" not in listing


def test_a_file_runs_estimated_total_is_said_to_be_one(frozen) -> None:
    running_run(scope=1000, scope_estimated=True, covered=500, examined=500)
    listing = staff().get("/admin/purge/purgerun/").content.decode()
    assert "about 50\u00a0% · about 1 min left" in listing
    assert "compared with the 1,000 files the last run examined" in listing


def test_the_runs_page_lists_its_batches_and_the_same_facts_as_the_list() -> None:
    from purge.models import PurgeBatch

    run = running_run(scope=10, covered=10, examined=10, removed=7, dry_run=True)
    PurgeRun.objects.filter(pk=run.pk).update(state=PurgeRun.State.DONE, batches=2)
    PurgeBatch.objects.create(run=run, number=1, examined=5, removed=5, seconds=0.25)
    PurgeBatch.objects.create(run=run, number=2, examined=5, removed=2, seconds=12.4)
    page = staff().get(f"/admin/purge/purgerun/{run.pk}/change/").content.decode()
    assert 'id="purge-batches"' in page
    assert "would remove" in page
    assert "0.2 s" in page and "12 s" in page  # noqa: PT018
    assert "7 (would go)" in page and "dry run" in page  # noqa: PT018
    assert "nightly schedule" in page
    assert 'nonce="' in page and ' style="' not in page.split('id="purge-batches"')[1]  # noqa: PT018


def test_a_failed_run_is_resumed_from_its_page_by_someone_who_may_run_policies(enqueued) -> None:
    policy = RetentionPolicy.objects.get(target="orphan_media")
    run = PurgeRun.objects.create(
        policy=policy,
        trigger=PurgeRun.Trigger.ADMIN,
        state=PurgeRun.State.FAILED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        cursor="stray/41",
        examined=42,
        error="the media store s3://kiln-media/site is unreachable: could not connect (gave up after 4 attempts)",
    )
    page = f"/admin/purge/purgerun/{run.pk}/change/"
    resume = f"/admin/purge/purgerun/{run.pk}/resume/"
    viewer = staff()
    assert "Resume this run" not in viewer.get(page).content.decode()
    assert viewer.post(resume).status_code == 403
    operator = staff("run_policy", username="operator")
    assert "Resume this run" in operator.get(page).content.decode()
    assert operator.get(resume).status_code == 405

    answer = operator.post(resume, follow=True)
    run.refresh_from_db()
    assert (run.state, run.error, run.cursor, run.examined) == (PurgeRun.State.RUNNING, "", "stray/41", 42)
    assert enqueued == [run.pk]
    assert "resumed from where it stopped (42 examined so far)" in answer.content.decode()
    assert "Resume this run" not in answer.content.decode()
    # Once running, there is nothing to resume.
    again = operator.post(resume, follow=True).content.decode()
    assert "is running: only a run that failed after it started can be resumed" in again
    assert enqueued == [run.pk]


def test_resuming_is_csrf_protected(enqueued) -> None:
    run = PurgeRun.objects.create(
        policy=RetentionPolicy.objects.get(target="orphan_media"),
        trigger=PurgeRun.Trigger.ADMIN,
        state=PurgeRun.State.FAILED,
        started_at=timezone.now(),
    )
    user = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/admin/purge/purgerun/{run.pk}/resume/").status_code == 403
    assert enqueued == []
