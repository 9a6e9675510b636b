"""Finds the start of a drop in a stream of (image, mask, stamp) frames and returns its first moments.

A drop starts when the object's mask centroid moves DOWN the image over `confirm_frames` consecutive frames
by at least `min_drop_px` in total. The clip begins at the last frame before that downward run (the release
frame, or the frame where the object appeared already falling), so a short look-back buffer is kept. The clip is
a window in time (core/clip_timing.py): `num_frames` frames' worth at `max_rate` (0.633 s for 20 at 30 Hz), with a
faster camera strided down to that rate and dropped frames left out, so the same fall gives the same clip at 30,
60 or 120 fps. A frame fed twice (the same stamp again) is skipped. After a clip is
returned the detector re-arms once the object has been gone or still for `rearm_frames` frames (it landed, left
the view, or was picked up again), or on `reset()`. Memory is bounded by `num_frames` frames.

`StreamRestartDetector` tells when stamps jump back far enough to mean a new stream (a restarted camera, a looping
bag): then the caller starts pairing and drop detection again instead of refusing every later frame as out of order.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from reconphys_ros.core.clip_timing import MODEL_RATE_HZ, FrameGrid, stream_rate, stride, window_seconds

__all__ = ["DropClip", "DropDetector", "STREAM_RESTART_NS", "StreamRestartDetector"]


@dataclass
class DropClip:
    images: np.ndarray  # (T, H, W, 3) uint8 RGB
    masks: np.ndarray  # (T, H, W) uint8, object > 0
    stamps: np.ndarray  # (T,) float64 seconds, the frames' own stamps (irregular where frames were dropped)
    rate: float = MODEL_RATE_HZ  # Hz, the clip's frame grid (the camera's rate, strided down to max_rate)
    missing: int = 0  # grid slots no frame came for (dropped frames)
    times: np.ndarray | None = None  # (T,) s since the first frame on the timing clock; None: stamps - stamps[0]

    def __post_init__(self):
        if self.times is None:
            self.times = self.stamps - self.stamps[0]

    @property
    def num_frames(self) -> int:
        return int(self.stamps.shape[0])


@dataclass
class _Frame:
    image: np.ndarray
    mask: np.ndarray
    time: float  # s on the timing clock: the stamp, or the caller's own time
    stamp: float  # s, the frame's stamp as given
    centroid_y: float | None  # None when the object is not visible


REARM_JUMP_FRACTION = 0.15  # an upward jump of the mask centroid by this share of the image height re-arms


class DropDetector:
    """Feed frames with `feed(image, mask, stamp)`; it returns a `DropClip` once a drop's window has passed.

    Args:
        num_frames: the window, in frames at max_rate (the paper reconstructs from the first 20 at 30 fps); a slower
            camera gives fewer frames over the same time.
        max_rate: a faster camera is strided down to at most this rate (Hz; the learned physics' training rate).
        confirm_frames: consecutive downward steps needed to call it a drop.
        min_drop_px: total downward centroid motion over those steps (pixels).
        step_px: a step counts as downward when the centroid moves down by more than this (noise floor).
        min_area: masks with fewer object pixels count as "no object".
        max_missing: a drop in progress is abandoned when the object is missing this many frames in a row.
        rearm_frames: after a clip, the object must be absent or still for this many frames before the next drop.
    """

    def __init__(
        self,
        num_frames: int = 20,
        confirm_frames: int = 3,
        min_drop_px: float = 2.0,
        step_px: float = 0.25,
        min_area: int = 12,
        max_missing: int = 2,
        rearm_frames: int = 10,
        max_rate: float = MODEL_RATE_HZ,
    ) -> None:
        if int(num_frames) < 2:
            raise ValueError(f"num_frames must be >= 2, got {num_frames}")
        if not 1 <= int(confirm_frames) < int(num_frames):
            raise ValueError(f"confirm_frames must lie in [1, num_frames), got {confirm_frames}")
        for name, value in (("min_drop_px", min_drop_px), ("step_px", step_px)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if int(min_area) < 1 or int(max_missing) < 0 or int(rearm_frames) < 1:
            raise ValueError(
                f"need min_area >= 1, max_missing >= 0, rearm_frames >= 1; got {min_area}, {max_missing}, {rearm_frames}"
            )
        if not (np.isfinite(max_rate) and max_rate > 0):
            raise ValueError(f"max_rate must be a finite rate > 0 Hz, got {max_rate}")
        self.num_frames = int(num_frames)
        self.max_rate = float(max_rate)
        self.window_s = window_seconds(self.num_frames, self.max_rate)
        self.confirm_frames = int(confirm_frames)
        self.min_drop_px = float(min_drop_px)
        self.step_px = float(step_px)
        self.min_area = int(min_area)
        self.max_missing = int(max_missing)
        self.rearm_frames = int(rearm_frames)
        self.reset()

    def reset(self) -> None:
        """Drop everything buffered and wait for a new drop."""
        # Look-back before a drop is confirmed: a whole clip plus the release frame.
        self._history: deque[_Frame] = deque(maxlen=self.num_frames + 1)
        self._grid: FrameGrid[_Frame] | None = None  # the drop being recorded
        self._recording = False
        self._armed = True
        self._quiet_count = 0  # frames the object was absent or still, while disarmed
        self._missing_count = 0
        self._shape: tuple[int, int] | None = None
        self._last_time: float | None = None
        # The camera's rate from its recent frame times; frames off the max_rate grid (a faster camera's in-between
        # frames) are passed over before they are copied, so detection thresholds mean the same at any rate.
        self._recent_times: deque[float] = deque(maxlen=33)
        self._camera_rate: float | None = None
        self._phase_anchor = 0.0  # the time of the last frame taken
        self.repeats_skipped = 0  # frames fed twice (the same stamp again)

    @property
    def recording(self) -> bool:
        """True while a detected drop is being buffered."""
        return self._recording

    @property
    def armed(self) -> bool:
        """True when a new drop can start."""
        return self._armed

    def feed(self, image: np.ndarray, mask: np.ndarray, stamp: float, time: float | None = None) -> DropClip | None:
        """Add one frame; returns the clip once the drop's window has passed, else None. time: the frame's time (s)
        when the stamps do not tell it (a clip replayed slower than filmed: frame index / real fps); default stamp."""
        frame = self._validated(image, mask, stamp, time)
        if frame is None:
            return None
        if self._recording:
            return self._continue_recording(frame)
        self._history.append(frame)
        if not self._armed:
            self._update_rearm()
            return None
        start = self._drop_start()
        if start is None:
            return None
        frames = list(self._history)[start:]
        self._grid = FrameGrid(frames[0].time, self._camera_rate, self.window_s, self.max_rate)
        for f in frames:
            self._grid.offer(f.time, f)
        self._history.clear()
        self._recording = True
        self._missing_count = 0
        return self._finish_if_full(frames[-1].time)

    # ------------------------------------------------------------------ internals
    def _validated(self, image: np.ndarray, mask: np.ndarray, stamp: float, time: float | None) -> _Frame | None:
        """The frame, or None for a repeat of the last one (the same stamp again: a message delivered twice)."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"image must be a uint8 (H, W, 3) array, got {getattr(image, 'dtype', type(image).__name__)} "
                f"{getattr(image, 'shape', '')}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image is empty (shape {image.shape})")
        if not isinstance(mask, np.ndarray) or mask.ndim != 2:
            raise ValueError(f"mask must be a 2-D array, got {getattr(mask, 'shape', type(mask).__name__)}")
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image size {image.shape[:2]}")
        stamp = float(stamp)
        time = stamp if time is None else float(time)
        if not (np.isfinite(stamp) and np.isfinite(time)):
            raise ValueError(f"stamp and time must be finite, got {stamp}, {time}")
        if self._last_time is not None and time == self._last_time:
            self.repeats_skipped += 1
            return None
        if self._last_time is not None and time < self._last_time:
            raise ValueError(f"stamps must increase: got {time} after {self._last_time} (call reset() for a new video)")
        if self._shape is not None and self._shape != mask.shape:
            self.reset()  # a new stream at another resolution
        self._shape = mask.shape
        self._last_time = time
        if not self._on_rate_grid(time):
            return None
        object_pixels = mask > 0
        rows = np.nonzero(object_pixels)[0]
        centroid_y = float(rows.mean()) if rows.size >= self.min_area else None
        # Copies: callers may reuse their buffers.
        return _Frame(image.copy(), np.where(object_pixels, 255, 0).astype(np.uint8), time, stamp, centroid_y)

    def _on_rate_grid(self, time: float) -> bool:
        """True for the frames a camera at most max_rate fast would take: every stride-th frame of a faster one,
        phase-locked to the last frame taken, so a dropped frame loses its slot instead of shifting the rest."""
        self._recent_times.append(time)
        if len(self._recent_times) < 2:
            self._phase_anchor = time
            return True
        self._camera_rate = stream_rate(self._recent_times)
        periods = round((time - self._phase_anchor) * self._camera_rate)
        if periods % stride(self._camera_rate, self.max_rate) != 0:
            return False
        self._phase_anchor = time
        return True

    def _drop_start(self) -> int | None:
        """Index in the history where the drop begins, or None when the latest frames are not a drop."""
        frames = list(self._history)
        ys = [f.centroid_y for f in frames]
        if len(frames) < self.confirm_frames + 1 or any(y is None for y in ys[-self.confirm_frames - 1:]):
            return None
        recent = ys[-self.confirm_frames - 1:]
        steps = np.diff(recent)
        if np.any(steps <= self.step_px) or recent[-1] - recent[0] < self.min_drop_px:
            return None
        # Walk back over the whole downward run; include the frame before it (release / first sight).
        start = len(frames) - self.confirm_frames - 1
        while start > 0 and ys[start - 1] is not None and ys[start] - ys[start - 1] > self.step_px:
            start -= 1
        # The last still frame (the moment of release) when it is continuous with the run: not a frame far below it,
        # as the object lying on the ground before a looping video jumps back to the release (issue 19.2).
        if start > 0 and ys[start - 1] is not None and ys[start - 1] - ys[start] <= max(self.min_drop_px,
                                                                                      2 * self.step_px):
            start -= 1
        return start

    def _continue_recording(self, frame: _Frame) -> DropClip | None:
        if frame.centroid_y is None:
            self._missing_count += 1
            if self._missing_count > self.max_missing:  # lost the object: no usable clip
                self._grid = None
                self._recording = False
                self._history.clear()
                return None
        else:
            self._missing_count = 0
        self._grid.offer(frame.time, frame)
        return self._finish_if_full(frame.time)

    def _finish_if_full(self, time: float) -> DropClip | None:
        grid = self._grid
        if not grid.complete(time):
            return None
        clip_frames = [frame for _, frame in grid.filled()]
        self._grid = None
        self._recording = False
        self._armed = False
        self._quiet_count = 0
        return DropClip(
            images=np.stack([f.image for f in clip_frames]),
            masks=np.stack([f.mask for f in clip_frames]),
            stamps=np.array([f.stamp for f in clip_frames], dtype=np.float64),
            rate=grid.rate,
            missing=grid.missing,
            # rounded to 1 us: float stamps (n / fps) carry ~1e-15 s of noise that would make the same frames at
            # another point of a stream (a later loop) give a minutely different fit
            times=np.round([f.time - clip_frames[0].time for f in clip_frames], 6),
        )

    def _update_rearm(self) -> None:
        """Re-arm once the object has been absent or still (within `step_px`) for `rearm_frames` frames, or at once
        when it jumps up by more than REARM_JUMP_FRACTION of the image height (picked up and released again, or a
        looping video restarting): the history then starts at the jump so the next drop begins there."""
        frames = self._history
        latest = frames[-1].centroid_y
        previous = frames[-2].centroid_y if len(frames) >= 2 else None
        if latest is not None and previous is not None and previous - latest > REARM_JUMP_FRACTION * self._shape[0]:
            last = frames[-1]
            frames.clear()
            frames.append(last)
            self._armed = True
            self._quiet_count = 0
            return
        quiet = latest is None or (previous is not None and abs(latest - previous) <= self.step_px)
        self._quiet_count = self._quiet_count + 1 if quiet else 0
        if self._quiet_count >= self.rearm_frames:
            self._armed = True
            self._quiet_count = 0


# A stamp this far behind the newest one starts a new stream (camera restarted, bag looped, a peer once sent a
# stamp from the far future): without the reset every later frame would be dropped as out of order, forever.
STREAM_RESTART_NS = 1_000_000_000


class StreamRestartDetector:
    """The newest stamp of each input stream ("image", "mask", ...: inputs that lag each other, such as masks
    behind their images, are kept apart so that lag is not taken for a restart). `observe(stream, stamp_ns)` returns
    None for a stamp of the current stream, or the newest stamp seen before when `stamp_ns` lies more than
    `restart_ns` behind it: a new stream, which forgets every stream's newest stamp."""

    def __init__(self, restart_ns: int = STREAM_RESTART_NS) -> None:
        if int(restart_ns) < 0:
            raise ValueError(f"restart_ns must be >= 0, got {restart_ns}")
        self.restart_ns = int(restart_ns)
        self._newest_ns: dict[str, int] = {}

    def observe(self, stream: str, stamp_ns: int) -> int | None:
        newest = self._newest_ns.get(stream)
        restarted = newest is not None and stamp_ns < newest - self.restart_ns
        if restarted:
            self._newest_ns = {}
        self._newest_ns[stream] = max(stamp_ns, self._newest_ns.get(stream, stamp_ns))
        return newest if restarted else None

    def reset(self) -> None:
        self._newest_ns = {}
