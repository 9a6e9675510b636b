"""Frame sources for the video_source node: a video file, an image folder or a dataset clip (no rclpy here).

A dataset clip is a sample folder of the training data format (reconphys_ros/examples/clip_format.py); it also
knows its camera (K, world->camera) and ground-truth masks. The other sources know only their frame size; their
intrinsics come from a field of view.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from reconphys_ros.examples import DEFAULT_EXAMPLE, clip_format, example_path, list_examples

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
CLIP_FPS = 30.0  # dataset clips are 30 fps (DESIGN.md)


@dataclass
class FrameSource:
    """Frames in RGB order. frames() restarts from the first frame on every call."""

    name: str
    fps: float
    width: int
    height: int
    K: np.ndarray | None = None  # (3, 3) float64, None = unknown (derive from a field of view)
    world_to_cam: np.ndarray | None = None  # (4, 4) float64, None = unknown
    masks: np.ndarray | None = None  # (T, H, W) uint8 ground truth (dataset clips)
    _frames: np.ndarray | None = None  # (T, H, W, 3) uint8, in memory
    _video_path: str | None = None
    _resize: bool = False  # frames are resized to (width, height) as they are read

    def resized(self, width: int, height: int) -> "FrameSource":
        """The same source delivered at width x height (e.g. a 128^2 clip as a 512^2 camera): frames resized as
        they are read, K scaled with them (pixel centres at i + 0.5, so K' = diag(sx, sy, 1) K), masks resized
        with nearest neighbour."""
        if width < 8 or height < 8:
            raise ValueError(f"output size must be at least 8x8, got {width}x{height}")
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        k = None if self.K is None else np.diag([sx, sy, 1.0]) @ self.K
        masks = None if self.masks is None else np.stack(
            [cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in self.masks])
        return replace(self, width=width, height=height, K=k, masks=masks, _resize=True)

    def frames(self) -> Iterator[np.ndarray]:
        for frame in self._native_frames():
            if self._resize and frame.shape[:2] != (self.height, self.width):
                shrink = frame.shape[0] * frame.shape[1] > self.width * self.height
                frame = cv2.resize(frame, (self.width, self.height),
                                   interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            yield frame

    def _native_frames(self) -> Iterator[np.ndarray]:
        if self._frames is not None:
            yield from self._frames
            return
        capture = cv2.VideoCapture(self._video_path)
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield np.ascontiguousarray(bgr[:, :, ::-1])
        finally:
            capture.release()


def embedded_example_dir(name: str = DEFAULT_EXAMPLE) -> Path:
    """The sample folder of a clip shipped in reconphys_ros/examples."""
    return Path(example_path(name))


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """Square pixels, principal point at the image centre, horizontal field of view fov_deg."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must lie in (0, 180) degrees, got {fov_deg}")
    f = 0.5 * width / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def load_dataset_clip(sample_dir: str | os.PathLike, view: int = 0) -> FrameSource:
    sample_dir = os.fspath(sample_dir)
    meta = clip_format.read_meta(sample_dir)
    arrays = clip_format.read_sample_arrays(sample_dir, meta)  # geometry and sizes checked against meta.json
    rgb, alpha, _ = clip_format.read_sample_frames(sample_dir, meta, int(view))
    K = np.asarray(arrays["K"][view], np.float64) if "K" in arrays else None
    w2c = np.asarray(arrays["world_to_cam"][view], np.float64) if "world_to_cam" in arrays else None
    masks = np.where(alpha >= 128, 255, 0).astype(np.uint8)
    return FrameSource(f"{meta.get('sample_id', os.path.basename(sample_dir))}_v{view}", CLIP_FPS,
                       int(meta["width"]), int(meta["height"]), K, w2c, masks, _frames=np.ascontiguousarray(rgb))


def load_image_folder(folder: str | os.PathLike, fps: float) -> FrameSource:
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"image folder {folder} has no {'/'.join(IMAGE_SUFFIXES)} files")
    frames = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        if frames and bgr.shape != frames[0].shape:
            raise ValueError(f"image {path} has size {bgr.shape[:2]}, the first image {frames[0].shape[:2]}")
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    stack = np.stack(frames)
    return FrameSource(Path(folder).name, float(fps), stack.shape[2], stack.shape[1], _frames=stack)


def load_video_file(path: str | os.PathLike, fps: float | None = None) -> FrameSource:
    capture = cv2.VideoCapture(os.fspath(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"cannot open video file {path}")
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        file_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise ValueError(f"video file {path} reports no frame size")
    rate = fps if fps else (file_fps if file_fps > 0 else CLIP_FPS)
    return FrameSource(Path(path).stem, rate, width, height, _video_path=os.fspath(path))


def open_source(source: str, view: int = 0, fps: float = 0.0) -> FrameSource:
    """'' = the default embedded example clip; the name of a shipped example; a folder with meta.json = dataset clip; another folder = images; a file =
    video. fps > 0 overrides the source's own rate."""
    if not source:
        clip = load_dataset_clip(embedded_example_dir(), view)
    elif source in list_examples():
        clip = load_dataset_clip(embedded_example_dir(source), view)
    elif os.path.isdir(source):
        clip = (load_dataset_clip(source, view) if os.path.isfile(os.path.join(source, clip_format.META_FILE))
                else load_image_folder(source, fps or CLIP_FPS))
    elif os.path.isfile(source):
        clip = load_video_file(source, fps or None)
    else:
        raise ValueError(f"video source {source!r} is neither a file nor a folder")
    if fps:
        clip.fps = float(fps)
    return clip
