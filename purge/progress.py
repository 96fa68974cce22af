"""How far a purge run has got and how long it may still take: arithmetic on what the run recorded, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Progress:
    covered: int  # keys (row runs) or files (file runs) covered so far
    scope: int | None  # how many there are in all; None when not known
    estimated: bool  # the scope is a guess (a file run takes the last run's count)
    fraction: float | None  # None: the total is not known, or the run went past an estimated one
    seconds_left: float | None  # None: nothing covered yet, or the total is not known


def progress_estimate(
    *, covered: int, scope: int | None, estimated: bool, elapsed: timedelta | None
) -> Progress:
    """The fraction covered, and the time left at the rate so far (what is left, at the speed of what is done).

    An estimated scope that the run has gone past says nothing any more: the fraction becomes unknown rather
    than stay at 100 % for as long as the run goes on.
    """
    if scope is None or (estimated and covered > scope):
        fraction = None
    elif scope == 0:
        fraction = 1.0
    else:
        fraction = min(covered / scope, 1.0)
    seconds_left = None
    if fraction is not None and scope is not None and elapsed is not None and covered > 0:
        seconds_left = elapsed.total_seconds() * max(scope - covered, 0) / covered
    return Progress(
        covered=covered, scope=scope, estimated=estimated, fraction=fraction, seconds_left=seconds_left
    )
