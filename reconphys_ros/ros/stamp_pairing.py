"""Pairs images with masks by header stamp (message_filters is not on PyPI; masks keep their image's header)."""
from __future__ import annotations

from collections import OrderedDict


class StampPairer:
    """add('image' | 'mask', stamp_ns, item) -> list of (stamp_ns, image, mask) pairs completed, oldest first.

    At most `window` unpaired items per side are kept; items older than the last pair are dropped (their partner
    was lost), so memory stays bounded and pairs come out in stamp order."""

    SIDES = ("image", "mask")

    def __init__(self, window: int = 30):
        if int(window) < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = int(window)
        self._pending = {side: OrderedDict() for side in self.SIDES}
        self._last_paired: int | None = None
        self.unpaired_dropped = 0

    def add(self, side: str, stamp_ns: int, item) -> list[tuple[int, object, object]]:
        if side not in self.SIDES:
            raise ValueError(f"side must be one of {self.SIDES}, got {side!r}")
        if self._last_paired is not None and stamp_ns <= self._last_paired:
            self.unpaired_dropped += 1
            return []
        own, other = self._pending[side], self._pending["mask" if side == "image" else "image"]
        if stamp_ns not in other:
            own[stamp_ns] = item
            while len(own) > self.window:
                own.popitem(last=False)
                self.unpaired_dropped += 1
            return []
        partner = other.pop(stamp_ns)
        self._last_paired = stamp_ns
        for queue in self._pending.values():  # older unpaired items can no longer pair in order
            for stale in [s for s in queue if s < stamp_ns]:
                del queue[stale]
                self.unpaired_dropped += 1
        image, mask = (item, partner) if side == "image" else (partner, item)
        return [(stamp_ns, image, mask)]
