"""The republish schedule: every 4 hours (Kubo's own cadence), and at start if the last
successful run is older than that; a failed run is retried with a backoff and reported
(log, event, status), never dropped silently.

A DHT drops value records nobody re-put within 48 hours, and no node republishes records
signed outside its keystore, so somebody must: the agent, which calls a republish
callable (``Callable[[], Awaitable[Report]]``) on schedule, by default
``mesh.republish`` (every record this home keeps put again byte for byte, keyless; its
own near their end of validity re-signed with the keys the agent holds). What a run
returns is kept in the agent's log, shortened (:func:`summary`): the counts, and the
records it did more than put again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ipfs_share.errors import IpfsShareError
from ipfs_share.local.agentdb import RepublishLog, RepublishRun

__all__ = ["DEFAULT_EVERY", "Report", "Republish", "RepublishSchedule", "summary"]

log = logging.getLogger("ipfs_share.agent")

DEFAULT_EVERY = 4 * 3600.0
RETRY_MIN = 30.0  # the first retry after a failed run; doubling up to the interval


class Report(Protocol):
    """What a republish run returns: whether everything it tried was done, and a JSON
    account of it (per record, for the status and the log)."""

    @property
    def ok(self) -> bool: ...

    def to_json(self) -> dict[str, Any]: ...


Republish = Callable[[], Awaitable[Report]]


SUMMARY_RECORDS = 50  # records kept in a run's summary (failed first)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What the agent keeps of a run's JSON: everything but the per-record list, and of
    that only the records not simply put again (failed, re-signed, skipped for a reason),
    failed first, at most :data:`SUMMARY_RECORDS`.

    >>> summary({"counts": {"reput": 2}, "records": [
    ...     {"name": "a", "action": "reput"}, {"name": "b", "action": "failed"}]})
    {'counts': {'reput': 2}, 'records': [{'name': 'b', 'action': 'failed'}], 'more': 0}
    """
    records = report.get("records")
    if not isinstance(records, list):
        return report
    rank = {"failed": 0, "resigned": 1, "skipped": 2}
    notable = sorted(
        (r for r in records if r.get("action") in rank), key=lambda r: rank[r["action"]]
    )
    kept = {k: v for k, v in report.items() if k != "records"}
    kept["records"] = notable[:SUMMARY_RECORDS]
    kept["more"] = max(0, len(notable) - SUMMARY_RECORDS)
    return kept


@dataclass
class ScheduleState:
    every: float
    next_at: float | None = None
    running: bool = False
    last: RepublishRun | None = None
    last_ok: RepublishRun | None = None
    retry_in: float | None = None  # after a failure: the backoff before the next try
    runs: int = 0
    failures: int = field(default=0)

    def to_json(self) -> dict[str, object]:
        return {
            "every": self.every,
            "next_at": None if self.next_at is None else int(self.next_at),
            "running": self.running,
            "runs": self.runs,
            "failures": self.failures,
            "retry_in": self.retry_in,
            "last": None if self.last is None else self.last.to_json(),
            "last_ok_at": None if self.last_ok is None else self.last_ok.finished,
        }


class RepublishSchedule:
    """Run ``republish`` every ``every`` seconds (a failure: again after ``retry_min``,
    doubling up to ``every``), logging each run in ``runs``."""

    def __init__(
        self,
        republish: Republish,
        runs: RepublishLog,
        *,
        every: float = DEFAULT_EVERY,
        retry_min: float = RETRY_MIN,
        on_run: Callable[[RepublishRun], None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._republish = republish
        self._runs = runs
        self._retry_min = min(retry_min, every)
        self._on_run = on_run
        self._now = now
        self._wake = asyncio.Event()
        self.state = ScheduleState(every, last=runs.last(), last_ok=runs.last(ok=True))

    def run_now(self) -> None:
        """Start a run without waiting for the schedule (``ipfs-share republish`` via the
        agent, or a node that came back after a failed run)."""
        self.state.next_at = self._now()
        self._wake.set()

    async def run(self) -> None:
        state = self.state
        last_ok = state.last_ok
        # At start: due now if the last good run is older than the interval.
        state.next_at = self._now() if last_ok is None else last_ok.finished + state.every
        retry = self._retry_min
        while True:
            wait = max(0.0, (state.next_at or self._now()) - self._now())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            if state.next_at is not None and self._now() < state.next_at:
                continue  # woken early without a request
            run = await self._once()
            if run.ok:
                state.next_at, state.retry_in, retry = (
                    run.finished + state.every,
                    None,
                    self._retry_min,
                )
            else:
                state.next_at, state.retry_in = self._now() + retry, retry
                log.warning(
                    "republish failed (%s); retrying in %.0f s",
                    _why(run.report),
                    retry,
                )
                retry = min(retry * 2, state.every)

    async def _once(self) -> RepublishRun:
        state = self.state
        state.running = True
        started = self._now()
        try:
            report = await self._republish()
            ok, body = report.ok, summary(report.to_json())
        except IpfsShareError as exc:
            ok, body = False, {"error": {"code": exc.code, "message": exc.message}}
        except Exception as exc:  # a bug must not end the schedule; it is reported
            log.exception("republish crashed")
            ok, body = False, {"error": {"code": "internal_error", "message": repr(exc)}}
        finally:
            state.running = False
        run = RepublishRun(int(started), int(self._now()), ok, body)
        self._runs.record(run)
        state.last, state.runs = run, state.runs + 1
        if ok:
            state.last_ok = run
            log.info("republish done in %.1f s", self._now() - started)
        else:
            state.failures += 1
        if self._on_run is not None:
            self._on_run(run)
        return run


def _why(report: dict[str, Any]) -> str:
    error = report.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    failed = [r for r in report.get("records") or [] if r.get("action") == "failed"]
    if failed:
        count = (report.get("counts") or {}).get("failed", len(failed))
        first = failed[0].get("error") or {}
        return f"{count} record(s) failed, first {first.get('code')}: {first.get('message')}"
    return "not ok"
