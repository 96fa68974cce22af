"""The in-memory tally: rolled up into minutes, hours and all time; buckets and quantiles."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from metrics.tally import BOUNDS, EPOCH, HOUR, MINUTE, TOTAL, Tally, bucket_of, quantile

T0 = datetime(2026, 12, 4, 10, 17, 42, tzinfo=UTC)


def test_the_buckets_run_from_20_ms_to_hours_growing_by_half() -> None:
    assert BOUNDS[0] == 0.02
    assert all(
        later / earlier == pytest.approx(1.5, rel=1e-3) for earlier, later in itertools.pairwise(BOUNDS)
    )
    # Sidekiq's 26 run-time buckets end at 335 s: ours reach that at the 25th bound, and go on for waits.
    assert BOUNDS[24] == pytest.approx(336.68, abs=0.01)
    assert BOUNDS[-1] > 3 * 3600


def test_a_time_falls_in_the_first_bucket_whose_bound_holds_it() -> None:
    assert bucket_of(0) == 0
    assert bucket_of(0.02) == 0
    assert bucket_of(0.021) == 1
    assert bucket_of(-3) == 0  # clocks of two hosts a little apart
    assert bucket_of(10**6) == len(BOUNDS)


def test_one_event_is_counted_in_its_minute_its_hour_and_for_all_time_with_the_host_only_there() -> None:
    tally = Tally()
    tally.job_counted("succeeded", at=T0, queue="high", task_name="t", hostname="high@a", run=1.0)
    rows = {
        (key.span, key.period, key.hostname, key.measure, key.label): value
        for key, value in tally.values.items()
    }
    assert rows[(MINUTE, datetime(2026, 12, 4, 10, 17, tzinfo=UTC), "", "succeeded", "")] == 1
    assert rows[(HOUR, datetime(2026, 12, 4, 10, 0, tzinfo=UTC), "", "succeeded", "")] == 1
    assert rows[(TOTAL, EPOCH, "high@a", "succeeded", "")] == 1
    assert (
        rows[(MINUTE, datetime(2026, 12, 4, 10, 17, tzinfo=UTC), "", "run_bucket", str(bucket_of(1.0)))] == 1
    )
    assert rows[(MINUTE, datetime(2026, 12, 4, 10, 17, tzinfo=UTC), "", "run_seconds", "")] == 1.0
    assert len(rows) == 9


def test_a_failure_is_counted_under_its_exception_type() -> None:
    tally = Tally()
    for exception in ("OSError", "OSError", "ValueError"):
        tally.job_counted("failed", at=T0, queue="high", task_name="t", exception=exception)
    failed = {key.label: value for key, value in tally.values.items() if key.span == MINUTE}
    assert failed == {"OSError": 2, "ValueError": 1}


def test_counts_add_up_and_gauges_keep_their_highest_sample() -> None:
    tally, other = Tally(), Tally()
    for target, depth in ((tally, 40), (other, 7)):
        target.add("depth", at=T0, queue="high", task_name="", value=depth)
        target.job_counted("sent", at=T0, queue="high", task_name="t")
    tally.merge(other)
    by_measure = {key.measure: value for key, value in tally.values.items() if key.span == MINUTE}
    assert by_measure == {"depth": 40, "sent": 2}


def test_taking_a_tally_leaves_it_empty() -> None:
    tally = Tally()
    tally.job_counted("sent", at=T0, queue="high", task_name="t")
    taken = tally.take()
    assert len(taken) == 3
    assert len(tally) == 0


def test_an_unknown_measure_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown measure"):
        Tally().add("sucess", at=T0, queue="high", task_name="t")


def test_a_quantile_is_interpolated_inside_its_bucket() -> None:
    one_second = bucket_of(1.0)  # bounds 0.7594 .. 1.1391
    lower, upper = BOUNDS[one_second - 1], BOUNDS[one_second]
    assert quantile({one_second: 100}, 0.5) == pytest.approx((lower + upper) / 2)
    assert quantile({0: 99, one_second: 1}, 0.5) == pytest.approx(0.02 * 50 / 99)
    assert quantile({0: 99, one_second: 1}, 0.999) > lower
    assert quantile({}, 0.5) is None
    assert quantile({len(BOUNDS): 5}, 0.99) == BOUNDS[-1]
