from __future__ import annotations

from datetime import timedelta

from purge.progress import progress_estimate


def test_the_time_left_is_what_is_left_at_the_rate_so_far() -> None:
    progress = progress_estimate(covered=250, scope=1000, estimated=False, elapsed=timedelta(minutes=1))
    assert progress.fraction == 0.25
    assert progress.seconds_left == 180


def test_an_unknown_total_gives_neither_a_share_nor_a_time_left() -> None:
    progress = progress_estimate(covered=12345, scope=None, estimated=False, elapsed=timedelta(minutes=1))
    assert (progress.fraction, progress.seconds_left) == (None, None)


def test_a_run_past_its_estimated_total_no_longer_claims_a_share() -> None:
    within = progress_estimate(covered=80, scope=100, estimated=True, elapsed=timedelta(seconds=8))
    assert (within.fraction, within.seconds_left) == (0.8, 2)
    past = progress_estimate(covered=120, scope=100, estimated=True, elapsed=timedelta(seconds=8))
    assert (past.fraction, past.seconds_left) == (None, None)


def test_nothing_covered_yet_gives_no_time_left_and_an_empty_scope_is_complete() -> None:
    starting = progress_estimate(covered=0, scope=1000, estimated=False, elapsed=timedelta(seconds=3))
    assert (starting.fraction, starting.seconds_left) == (0, None)
    empty = progress_estimate(covered=0, scope=0, estimated=False, elapsed=None)
    assert empty.fraction == 1.0
