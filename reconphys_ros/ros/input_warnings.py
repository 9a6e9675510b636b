"""Rate-limited warnings about dropped messages: one clear warning per kind, then a summary at most every period."""
from __future__ import annotations

import threading
import time


class DroppedInputLog:
    """`drop(kind, reason)` logs the first drop of each kind at once and later ones at most every `period_s`,
    with the count since the last warning. `counts` holds the totals per kind (tests and diagnostics read it)."""

    def __init__(self, logger, period_s: float = 5.0):
        self._logger = logger
        self._period_s = float(period_s)
        self._last: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def drop(self, kind: str, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self._pending[kind] = self._pending.get(kind, 0) + 1
            last = self._last.get(kind)
            if last is not None and now - last < self._period_s:
                return
            count, self._pending[kind] = self._pending[kind], 0
            self._last[kind] = now
        suffix = f" ({count} dropped since the last warning)" if last is not None else ""
        self._logger.warning(f"dropped {kind}: {reason}{suffix}")
