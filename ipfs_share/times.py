"""Times as a person reads them: ISO 8601, UTC, to the second.

Every time a message or a listing shows a person is written by :func:`iso`, never as Unix
seconds; machine output (``--json``, ``to_json()``) keeps Unix seconds as integers. The
form round-trips: what :func:`iso` prints is accepted wherever a time is read (``--until``,
``--not-before``, ``--not-after``).

>>> iso(1_800_000_000)
'2027-01-15T08:00:00Z'
>>> iso(None), iso(None, never="-")
('never', '-')
>>> iso(2**63)   # beyond any calendar: said plainly, never a crash
'the year 10000 or later'
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["LAST_SECOND", "iso"]

# 9999-12-31T23:59:59Z: the last second a calendar date can name (datetime's limit).
LAST_SECOND = 253_402_300_799


def iso(ts: int | float | None, *, never: str = "never") -> str:
    """``ts`` (Unix seconds) as ``YYYY-MM-DDTHH:MM:SSZ``; ``never`` for None."""
    if ts is None:
        return never
    if ts > LAST_SECOND:
        return "the year 10000 or later"
    if ts < 0:
        return "before 1970"
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
