"""On-disk format of the synthetic data set (one folder per sample) with hashes and a manifest.

Layout of a data set root::

    manifest.json                  config + one entry per finished sample (params, split, meta hash)
    samples/<sample_id>/
        rgb_v{v}.png               (T*H, W, 3) uint8: the T frames of view v stacked vertically, composited on the background
        alpha_v{v}.png             (T*H, W) uint8: rendered object opacity (mask = alpha >= 128)
        depth_v{v}.png             (T*H, W) uint16: object depth along the camera z axis in millimetres, 0 = no object
        arrays.npz                 anchors (T, N_A, 3) f32, gaussian_means (T, N, 3) f16, rest Gaussians
                                   (means, log_scales, quats, colors, opacity_logits), K (V, 3, 3), world_to_cam (V, 4, 4)
        meta.json                  ids, seed, params (paper convention), lattice, initial state, background,
                                   statistics, and the sha256 of every file above (written last: marks the sample done)

All writers are byte-deterministic: fixed PNG compression, zip entries with a fixed timestamp, sorted JSON keys.
"""
from __future__ import annotations

import io
import json
import os
import zipfile

import cv2
import numpy as np

from reconphys_ros.core.files import atomic_write_bytes
# The read side lives in the ROS package so the shipped example clips load without `training`.
from reconphys_ros.examples.clip_format import (ARRAY_FILE, DEPTH_SCALE, FORMAT_VERSION, META_FILE,  # noqa: F401
                                                CorruptSampleError, check_sample_geometry, read_meta, read_npz,
                                                read_png, read_sample_arrays, read_sample_frames, sha256_file)

PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
MANIFEST_FILE = "manifest.json"


def write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Deterministic compressed .npz (np.savez stamps the current time into the zip)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            body = io.BytesIO()
            np.lib.format.write_array(body, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, body.getvalue())
    atomic_write_bytes(path, buf.getvalue())


def write_png(path: str, image: np.ndarray) -> None:
    """uint8 gray/RGB or uint16 gray; RGB given in RGB order."""
    if image.ndim == 3:
        image = image[..., ::-1]  # OpenCV writes BGR
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image), PNG_PARAMS)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    atomic_write_bytes(path, encoded.tobytes())


def write_sample(sample_dir: str, rgb: np.ndarray, alpha: np.ndarray, depth: np.ndarray,
                 arrays: dict[str, np.ndarray], meta: dict) -> dict:
    """Write one sample. rgb (V, T, H, W, 3) float [0, 1]; alpha (V, T, H, W) float; depth (V, T, H, W) metres.

    meta.json is written last with the files' hashes, so a folder without it is an unfinished sample.
    Returns the meta dict as written.
    """
    V, T, H, W = alpha.shape
    if rgb.shape != (V, T, H, W, 3) or depth.shape != (V, T, H, W):
        raise ValueError(f"rgb {rgb.shape} / depth {depth.shape} do not match alpha {alpha.shape}")
    try:  # the geometry the loaders check, refused before anything is written
        check_sample_geometry(sample_dir, dict(meta, num_views=V, num_frames=T, height=H, width=W), arrays)
    except CorruptSampleError as exc:
        raise ValueError(f"refusing to write sample {sample_dir}: {exc.reason}") from None
    os.makedirs(sample_dir, exist_ok=True)
    files = {}
    for v in range(V):
        tiles = {
            f"rgb_v{v}.png": np.round(np.clip(rgb[v], 0, 1) * 255).astype(np.uint8).reshape(T * H, W, 3),
            f"alpha_v{v}.png": np.round(np.clip(alpha[v], 0, 1) * 255).astype(np.uint8).reshape(T * H, W),
            f"depth_v{v}.png": np.round(np.clip(depth[v] * DEPTH_SCALE, 0, 65535)).astype(np.uint16).reshape(T * H, W),
        }
        for name, image in tiles.items():
            write_png(os.path.join(sample_dir, name), image)
            files[name] = sha256_file(os.path.join(sample_dir, name))
    write_npz(os.path.join(sample_dir, ARRAY_FILE), arrays)
    files[ARRAY_FILE] = sha256_file(os.path.join(sample_dir, ARRAY_FILE))
    meta = dict(meta, format_version=FORMAT_VERSION, files=files,
                num_views=V, num_frames=T, height=H, width=W)
    write_json(os.path.join(sample_dir, META_FILE), meta)
    return meta


def verify_sample(sample_dir: str) -> dict:
    """Check that meta.json exists and every listed file matches its hash; return meta or raise CorruptSampleError."""
    meta = read_meta(sample_dir)
    for name, digest in sorted(meta["files"].items()):
        path = os.path.join(sample_dir, name)
        if not os.path.exists(path):
            raise CorruptSampleError(path, "file is missing")
        if sha256_file(path) != digest:
            raise CorruptSampleError(path, "sha256 does not match meta.json (file changed or truncated)")
    return meta


