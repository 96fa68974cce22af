"""rows_delete: the cheapest delete that still honours a model's signals and relations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from purge.batches import rows_delete
from reports.models import Report, ReportHistoryRecord

pytestmark = [pytest.mark.database, pytest.mark.django_db]


def make_history(count: int) -> Report:
    report = Report.objects.create(name="r")
    old = timezone.now() - timedelta(days=200)
    ReportHistoryRecord.objects.bulk_create(
        [ReportHistoryRecord(report=report, rendered_at=old) for _ in range(count)]
    )
    return report


def test_pre_delete_sees_each_row_still_stored_and_post_delete_sees_it_gone() -> None:
    make_history(6)
    events: list[tuple[str, int, bool]] = []

    def before(sender, instance, **kwargs) -> None:
        events.append(("pre", instance.pk, ReportHistoryRecord.objects.filter(pk=instance.pk).exists()))

    def after(sender, instance, **kwargs) -> None:
        events.append(("post", instance.pk, ReportHistoryRecord.objects.filter(pk=instance.pk).exists()))

    pre_delete.connect(before, sender=ReportHistoryRecord)
    post_delete.connect(after, sender=ReportHistoryRecord)
    try:
        first_four = ReportHistoryRecord.objects.order_by("pk")[:4].values_list("pk", flat=True)
        removed = rows_delete(
            ReportHistoryRecord, ReportHistoryRecord.objects.filter(pk__lte=list(first_four)[-1])
        )
    finally:
        pre_delete.disconnect(before, sender=ReportHistoryRecord)
        post_delete.disconnect(after, sender=ReportHistoryRecord)
    assert removed == 4
    assert [kind for kind, _pk, _stored in events] == ["pre"] * 4 + ["post"] * 4
    assert all(stored for kind, _pk, stored in events if kind == "pre")
    assert not any(stored for kind, _pk, stored in events if kind == "post")
    assert ReportHistoryRecord.objects.count() == 2


def test_a_model_that_others_reference_goes_through_djangos_collector_and_cascades() -> None:
    report = make_history(3)
    assert rows_delete(Report, Report.objects.filter(pk=report.pk)) == 1
    assert ReportHistoryRecord.objects.count() == 0, "the history rows cascade with their report"


def test_without_signals_or_relations_nothing_is_instantiated(monkeypatch) -> None:
    make_history(5)

    def refuse(*args, **kwargs):
        raise AssertionError("a row was instantiated")

    monkeypatch.setattr(ReportHistoryRecord, "from_db", classmethod(refuse))
    assert rows_delete(ReportHistoryRecord, ReportHistoryRecord.objects.all()) == 5
