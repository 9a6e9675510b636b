"""Rate-limited warnings about dropped messages: every distinct reason is logged once, repeats are summarised."""
from __future__ import annotations

import re
import threading
import time

# Reasons that differ only in numbers (sizes, stamps, values) are one reason: a stream of odd-sized images must
# not log a line per image.
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# Distinct reasons remembered per kind; more (a peer sending ever-new object ids) count as OTHER_REASONS, so a
# hostile peer can flood neither the log nor the memory.
MAX_REASONS_PER_KIND = 32
OTHER_REASONS = "other reasons"
# Reasons listed in one summary line (the most frequent first).
SUMMARY_REASONS = 5


def reason_key(reason: str) -> str:
    """The reason with its numbers replaced by '#': what decides whether a reason is new."""
    return _NUMBER.sub("#", reason)


class DroppedInputLog:
    """`drop(kind, reason)` counts a dropped input and warns about it without hiding why:

    - the first drop for each distinct reason of a kind is logged at once (see reason_key);
    - repeats are summarised at most every `period_s` per kind, with the count of each reason since the last
      summary.

    `counts` holds the totals per kind, `reason_counts` the totals per kind and reason key (tests and
    diagnostics read them). `message_format` words the log line (the spin loop reuses this for callback errors)."""

    message_format = "dropped {kind}: {reason}"

    def __init__(self, logger, period_s: float = 5.0):
        self._logger = logger
        self._period_s = float(period_s)
        self._last_summary: dict[str, float] = {}
        self._pending: dict[str, dict[str, int]] = {}  # kind -> reason key -> repeats since the last summary
        self.counts: dict[str, int] = {}
        self.reason_counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def drop(self, kind: str, reason: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            key, new = self._count_reason(kind, reason)
            if new:
                self._last_summary.setdefault(kind, now)
                message = self.message_format.format(kind=kind, reason=reason)
            else:
                message = self._summary_due(kind, key, reason, now)
        if message is not None:
            self._logger.warning(message)

    def _count_reason(self, kind: str, reason: str) -> tuple[str, bool]:
        """-> (the reason's key, whether it is a new reason of this kind)."""
        reasons = self.reason_counts.setdefault(kind, {})
        key = reason_key(reason)
        new = key not in reasons and len(reasons) < MAX_REASONS_PER_KIND
        if key not in reasons and not new:
            key = OTHER_REASONS
        reasons[key] = reasons.get(key, 0) + 1
        return key, new

    def _summary_due(self, kind: str, key: str, reason: str, now: float) -> str | None:
        """Record a repeated reason; -> the summary line when one is due, else None."""
        pending = self._pending.setdefault(kind, {})
        pending[key] = pending.get(key, 0) + 1
        if now - self._last_summary[kind] < self._period_s:
            return None
        self._pending[kind], self._last_summary[kind] = {}, now
        total = sum(pending.values())
        suffix = f" ({total} more since the last warning"
        if len(pending) > 1:
            ranked = sorted(pending.items(), key=lambda item: -item[1])
            listed = ", ".join(f"{count} x {name}" for name, count in ranked[:SUMMARY_REASONS])
            more = len(ranked) - SUMMARY_REASONS
            suffix += f": {listed}" + (f" and {more} more reasons" if more > 0 else "")
        return self.message_format.format(kind=kind, reason=reason) + suffix + ")"
