"""A drop's reconstruction window in time, not in frame count (issue 19.2, 19.3).

The learned physics was trained on clips at MODEL_RATE_HZ, 20 frames = 0.633 s. A camera at another rate, or a
stream that drops or repeats frames, must still give the pipeline that window: `FrameGrid` lays slots at
t0 + i / rate over the window and keeps, for each slot, the received frame nearest to its time (within half a
camera period). A faster camera is strided down to at most `max_rate` by a whole factor (60 -> 30, 120 -> 30,
50 -> 25 Hz) so every kept frame sits exactly on the grid; a slower one (15, 25 Hz) keeps all its frames and fills
fewer slots. Slots no frame came for (dropped frames) stay empty: the clip keeps the real stamps of the frames it
has, and the pipeline fits motion against those times. Memory is one frame per slot.
"""
from __future__ import annotations

import math
from typing import Generic, TypeVar

import numpy as np

__all__ = ["FrameGrid", "MODEL_RATE_HZ", "evenly_spaced", "frame_times", "stream_rate", "stride", "window_seconds"]

MODEL_RATE_HZ = 30.0  # the rate of the training clips: faster cameras are strided down to it

T = TypeVar("T")


def stride(camera_rate: float, max_rate: float = MODEL_RATE_HZ) -> int:
    """Every how many frames a camera at camera_rate is sampled to run at most about max_rate (60 -> 2, 50 -> 2)."""
    return max(1, round(camera_rate / max_rate))


def window_seconds(num_frames: int, rate: float = MODEL_RATE_HZ) -> float:
    """The time `num_frames` frames at `rate` span, first to last: the paper's 20 frames at 30 fps = 0.633 s."""
    return (int(num_frames) - 1) / float(rate)


def frame_times(num_frames: int, fps: float, times=None) -> np.ndarray:
    """(T,) seconds of each frame since frame 0: `times` checked (finite, starting at 0, increasing), or t / fps."""
    if times is None:
        return np.arange(num_frames) / float(fps)
    times = np.asarray(times, np.float64).reshape(-1)
    if times.shape != (num_frames,) or not np.isfinite(times).all():
        raise ValueError(f"times must be {num_frames} finite seconds (one per frame), got shape {times.shape}")
    if abs(times[0]) > 1e-9 or np.any(np.diff(times) <= 0):
        raise ValueError("times must start at 0 (frame 0) and increase")
    return times


def evenly_spaced(times, fps: float) -> np.ndarray:
    """Indices (S,) of the frame nearest to each slot i / fps over the clip's times (T,) s: an evenly spaced
    sequence for the stages that assume one (the learned physics, the simulation-based refinement). A dropped frame's
    slot repeats its nearest neighbour, so frame index and time stay in step."""
    times = np.asarray(times, np.float64)
    slots = np.arange(int(round(times[-1] * fps)) + 1) / float(fps)
    right = np.clip(np.searchsorted(times, slots), 1, len(times) - 1)
    left = right - 1
    return np.where(slots - times[left] <= times[right] - slots, left, right)


def stream_rate(stamps) -> float:
    """Frame rate (Hz) of a stream from its stamps (s): the median positive interval says how many frame periods the
    stamps span, and the span over that count averages out stamp jitter; robust to dropped and repeated frames."""
    stamps = np.asarray(stamps, np.float64)
    steps = np.diff(stamps)
    steps = steps[steps > 0]
    if steps.size == 0:
        raise ValueError(f"cannot derive a frame rate from {len(stamps)} stamps without two distinct ones")
    span = float(stamps.max() - stamps.min())
    periods = max(1, round(span / float(np.median(steps))))
    return periods / span


class FrameGrid(Generic[T]):
    """Slots at t0 + i / rate for i < num_slots, covering `window_s` seconds from the first frame (t0).

    Args:
        t0: stamp of the clip's first frame (s); it fills slot 0.
        camera_rate: the stream's frame rate (Hz), e.g. stream_rate of the frames seen so far.
        window_s: time from the first to the last slot (s).
        max_rate: slots are at most this many per second; a faster camera is strided by round(camera_rate / max_rate).
    """

    def __init__(self, t0: float, camera_rate: float, window_s: float, max_rate: float = MODEL_RATE_HZ):
        for name, value in (("t0", t0), ("camera_rate", camera_rate), ("window_s", window_s), ("max_rate", max_rate)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
        if camera_rate <= 0 or window_s <= 0 or max_rate <= 0:
            raise ValueError(f"need camera_rate, window_s, max_rate > 0; got {camera_rate}, {window_s}, {max_rate}")
        self.t0 = float(t0)
        self.camera_rate = float(camera_rate)
        self.stride = stride(camera_rate, max_rate)
        self.rate = self.camera_rate / self.stride  # Hz, slots per second
        self.num_slots = int(math.floor(window_s * self.rate + 1e-6)) + 1
        # A frame serves the slot it lies within half a camera period of (a little more for stamp jitter).
        self.tolerance = 0.55 / self.camera_rate
        self._slots: list[tuple[float, T] | None] = [None] * self.num_slots

    def slot_time(self, i: int) -> float:
        return self.t0 + i / self.rate

    def offer(self, stamp: float, frame: T) -> bool:
        """Keep `frame` when it is the nearest so far to a slot's time; True when kept."""
        i = round((stamp - self.t0) * self.rate)
        if not 0 <= i < self.num_slots:
            return False
        error = abs(stamp - self.slot_time(i))
        held = self._slots[i]
        if error > self.tolerance or (held is not None and abs(held[0] - self.slot_time(i)) <= error):
            return False
        self._slots[i] = (float(stamp), frame)
        return True

    def complete(self, stamp: float) -> bool:
        """True once a frame at `stamp` means no later frame can fill a slot: the last slot's time has passed."""
        return stamp >= self.slot_time(self.num_slots - 1) + self.tolerance or self._slots[-1] is not None

    @property
    def missing(self) -> int:
        """Slots no frame came for (dropped frames)."""
        return sum(slot is None for slot in self._slots)

    def filled(self) -> list[tuple[float, T]]:
        """(stamp, frame) of each filled slot, in time order."""
        return [slot for slot in self._slots if slot is not None]
