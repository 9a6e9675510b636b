"""Reader of the clip format written by `training.data` (one folder per sample; see training/data/storage.py).

Folder contents: rgb_v{v}.png (T*H, W, 3) uint8 frames stacked vertically, alpha_v{v}.png (T*H, W) uint8,
depth_v{v}.png (T*H, W) uint16 millimetres (0 = no object), arrays.npz (anchors (T, N_A, 3), gaussian_means
(T, N, 3), rest Gaussians, K (V, 3, 3), world_to_cam (V, 4, 4)) and meta.json (params, ids, hashes).
"""
from __future__ import annotations

import hashlib
import json
import os

import cv2
import numpy as np

FORMAT_VERSION = 1
ARRAY_FILE = "arrays.npz"
META_FILE = "meta.json"
DEPTH_SCALE = 1000.0  # depth PNG units per metre


class CorruptSampleError(ValueError):
    """A sample file is missing, unreadable, has the wrong shape or fails its hash; `.path` names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"corrupt sample file {path}: {reason}")
        self.path, self.reason = path, reason


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_png(path: str, expected_shape: tuple | None = None, dtype=np.uint8) -> np.ndarray:
    if not os.path.exists(path):
        raise CorruptSampleError(path, "file is missing")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise CorruptSampleError(path, "not a readable PNG")
    if image.ndim == 3:
        image = image[..., ::-1]
    if image.dtype != dtype or (expected_shape is not None and image.shape != tuple(expected_shape)):
        raise CorruptSampleError(path, f"expected {np.dtype(dtype).name} {expected_shape}, got {image.dtype} {image.shape}")
    return image


def read_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise CorruptSampleError(path, "file is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zip/format errors come in many types; all mean the same to the caller
        raise CorruptSampleError(path, f"not a readable npz ({type(exc).__name__}: {exc})") from None


def read_meta(sample_dir: str) -> dict:
    path = os.path.join(sample_dir, META_FILE)
    if not os.path.exists(path):
        raise CorruptSampleError(path, "file is missing (sample not finished?)")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise CorruptSampleError(path, f"not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION or "files" not in meta:
        raise CorruptSampleError(path, f"not a format-{FORMAT_VERSION} sample meta file")
    return meta


def _meta_sizes(sample_dir: str, meta: dict) -> tuple[int, int, int, int]:
    """(num_views, num_frames, height, width) of meta.json as positive integers, else CorruptSampleError."""
    sizes = []
    for key in ("num_views", "num_frames", "height", "width"):
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CorruptSampleError(os.path.join(sample_dir, META_FILE), f"{key} must be a positive integer, "
                                     f"got {value!r}")
        sizes.append(value)
    return tuple(sizes)


def check_sample_geometry(sample_dir: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Raise CorruptSampleError unless meta.json's sizes agree with arrays.npz (one K and world_to_cam per view, one
    anchor frame and stamp per frame) and every view's camera is real: K a plausible pinhole matrix for the image
    size (render.check_intrinsics) and world_to_cam a rigid transform. Catches zero / NaN geometry and a meta.json
    whose frame count and height were swapped (the stacked PNGs have the same size either way)."""
    V, T, H, W = _meta_sizes(sample_dir, meta)
    from reconphys_ros.core.geometry import check_rigid_transform
    from reconphys_ros.core.render.camera import check_intrinsics
    path = os.path.join(sample_dir, ARRAY_FILE)
    for key, shape in (("K", (V, 3, 3)), ("world_to_cam", (V, 4, 4))):
        if key in arrays and arrays[key].shape != shape:
            raise CorruptSampleError(path, f"{key} has shape {arrays[key].shape}, meta.json says {shape}")
    for key in ("anchors", "gaussian_means"):
        if key in arrays and arrays[key].ndim == 3 and arrays[key].shape[0] != T:
            raise CorruptSampleError(path, f"{key} holds {arrays[key].shape[0]} frames, meta.json says num_frames "
                                     f"= {T} (height {H}): frame count and height swapped?")
    if "stamps" in meta and len(meta["stamps"]) != T:
        raise CorruptSampleError(os.path.join(sample_dir, META_FILE),
                                 f"{len(meta['stamps'])} stamps for num_frames = {T}")
    for v in range(V):
        try:
            if "K" in arrays:
                check_intrinsics(arrays["K"][v], W, H, f"K of view {v}")
            if "world_to_cam" in arrays:
                check_rigid_transform(arrays["world_to_cam"][v], f"world_to_cam of view {v}")
        except ValueError as exc:
            raise CorruptSampleError(path, str(exc)) from None


def read_sample_arrays(sample_dir: str, meta: dict) -> dict[str, np.ndarray]:
    """arrays.npz of a sample, checked against meta.json by check_sample_geometry."""
    arrays = read_npz(os.path.join(sample_dir, ARRAY_FILE))
    check_sample_geometry(sample_dir, meta, arrays)
    return arrays


def read_sample_frames(sample_dir: str, meta: dict, view: int, frames: slice | None = None):
    """Decoded frames of one view: rgb (T, H, W, 3) uint8, alpha (T, H, W) uint8, depth (T, H, W) float32 metres."""
    _, T, H, W = _meta_sizes(sample_dir, meta)
    if not 0 <= view < meta["num_views"]:
        raise ValueError(f"view {view} out of range [0, {meta['num_views']})")
    frames = frames if frames is not None else slice(0, T)
    rgb = read_png(os.path.join(sample_dir, f"rgb_v{view}.png"), (T * H, W, 3)).reshape(T, H, W, 3)[frames]
    alpha = read_png(os.path.join(sample_dir, f"alpha_v{view}.png"), (T * H, W)).reshape(T, H, W)[frames]
    depth = read_png(os.path.join(sample_dir, f"depth_v{view}.png"), (T * H, W), np.uint16).reshape(T, H, W)[frames]
    return rgb, alpha, depth.astype(np.float32) / DEPTH_SCALE
