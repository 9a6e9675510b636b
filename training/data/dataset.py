"""`SyntheticDataset`: the training reader of data sets written by `training.data.generate`.

Each item is a dict of tensors (float32 unless noted). With `views` a list of V view indices and a frame
window of T frames (images channels-first, as torch expects):

    rgb            (V, T, 3, H, W)  composited colour in [0, 1]
    alpha          (V, T, 1, H, W)  rendered object opacity in [0, 1]
    mask           (V, T, 1, H, W)  bool, alpha >= 0.5
    depth          (V, T, 1, H, W)  object depth along the camera z axis in metres, 0 where no object
    K              (V, 3, 3)        intrinsics (OpenCV)
    world_to_cam   (V, 4, 4)        extrinsics (world z up, camera x right / y down / z forward)
    anchors        (T, N_A, 3)      simulated anchor positions (world, metres)
    gaussian_means (T, N, 3)        Gaussian centres following the anchors (world, metres)
    gaussians      dict of the object's Gaussians at t = 0: means (N, 3), log_scales (N, 3), quats (N, 4) wxyz,
                   colors (N, 3), opacity_logits (N,)
    params         (4,)             m, k, d, f in the paper convention (the simulator's metric input)
    object_size    float            the object's size L (m, diameter of its rest anchors: params.object_size); the
                                    size-independent truth is PhysicsParams.size_independent(object_size)
    fps            float            frame rate of the clip (1/s)
    frame_index    (T,) int64       frame numbers of the window (30 fps)
    sample_id, object_id            str

Samples of other engines (`training.data.cross_engine`) have no Gaussians and no parameter truth: there
`gaussians` and `gaussian_means` are None, `params` is None (meta["params"] is null), `anchors` are the engine's
nodes, and the item has one more key,

    background     (V, H, W, 3)     uint8 numpy array: each view rendered without the object

With `views` an int the V dimension is dropped (single view). Corrupt files raise `CorruptSampleError`
naming the file, as do a camera that is not real (K not a plausible pinhole matrix, world_to_cam not a rigid
transform) and sizes in meta.json that disagree with arrays.npz; `verify=True` also checks every file's sha256
against meta.json when an item is read.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from reconphys_ros.core.physics.params import object_size
from training.data.storage import (ARRAY_FILE, MANIFEST_FILE, CorruptSampleError, read_meta, read_sample_arrays,
                                   read_sample_frames, verify_sample)

GAUSSIAN_FIELDS = ("means", "log_scales", "quats", "colors", "opacity_logits")
PARAM_ORDER = ("mass", "stiffness", "damping", "friction")


def list_samples(root: str, split: str | None = None) -> list[dict]:
    """Manifest entries (sorted by sample id), optionally of one split."""
    path = os.path.join(root, MANIFEST_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: generate a data set with `python -m training.data.generate`")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except ValueError as exc:
        raise CorruptSampleError(path, f"not readable JSON ({exc})") from None
    entries = [e for e in manifest["samples"] if split is None or e["split"] == split]
    return sorted(entries, key=lambda e: e["sample_id"])


def _object_size(meta: dict, anchors: np.ndarray) -> float:
    """The recorded object size (m), else the diameter of the first frame's anchors, else NaN (clips cut from bags
    without anchors)."""
    if meta.get("object_size") is not None:
        return float(meta["object_size"])
    return object_size(anchors[0]) if anchors.ndim == 3 and anchors.shape[1] >= 2 else float("nan")


class SyntheticDataset(torch.utils.data.Dataset):
    """Samples of one split. `frames` picks the window (slice or (start, stop)), default all 30 frames."""

    def __init__(self, root: str, split: str | None = "train", views=(0, 1, 2, 3), frames=None,
                 with_depth: bool = True, verify: bool = False):
        self.root = str(root)
        self.entries = list_samples(self.root, split)
        if not self.entries:
            raise ValueError(f"no samples of split {split!r} in {self.root}")
        self.single_view = isinstance(views, (int, np.integer))
        self.views = [int(views)] if self.single_view else [int(v) for v in views]
        if not self.views:
            raise ValueError("views must name at least one view")
        if isinstance(frames, tuple):
            frames = slice(*frames)
        if frames is not None and not isinstance(frames, slice):
            raise ValueError(f"frames must be a slice or a (start, stop) tuple, got {frames!r}")
        self.frames = frames if frames is not None else slice(None)
        self.with_depth = with_depth
        self.verify = verify

    def __len__(self) -> int:
        return len(self.entries)

    def sample_dir(self, index: int) -> str:
        return os.path.join(self.root, "samples", self.entries[index]["sample_id"])

    def __getitem__(self, index: int) -> dict:
        sample_dir = self.sample_dir(index)
        meta = verify_sample(sample_dir) if self.verify else read_meta(sample_dir)
        # sizes and camera geometry are checked on every load (hashes only with verify): a zero or NaN K, a pose
        # that is no rigid transform or a meta.json with frame count and height swapped is a CorruptSampleError
        arrays = read_sample_arrays(sample_dir, meta)
        frame_index = np.arange(meta["num_frames"])[self.frames]
        if len(frame_index) == 0:
            raise ValueError(f"frame window {self.frames} is empty for {meta['num_frames']} frames")
        rgb, alpha, depth = [], [], []
        for v in self.views:
            r, a, d = read_sample_frames(sample_dir, meta, v, self.frames)
            rgb.append(r)
            alpha.append(a)
            depth.append(d)
        gaussian_keys = ("gaussian_means",) + tuple("rest_" + f for f in GAUSSIAN_FIELDS)
        # Samples of other engines (meta["engine"]) may come without Gaussians; the project's own must have them.
        has_gaussians = "engine" not in meta or "gaussian_means" in arrays
        required = ("anchors", "K", "world_to_cam") + (gaussian_keys if has_gaussians else ())
        missing = [k for k in required if k not in arrays]
        if missing:
            raise CorruptSampleError(os.path.join(sample_dir, ARRAY_FILE), f"missing arrays {missing}")
        rgb_t = torch.from_numpy(np.stack(rgb)).permute(0, 1, 4, 2, 3).float() / 255.0  # (V, T, 3, H, W)
        alpha_t = torch.from_numpy(np.stack(alpha)).unsqueeze(2).float() / 255.0  # (V, T, 1, H, W)
        item = {
            "rgb": rgb_t,
            "alpha": alpha_t,
            "mask": alpha_t >= 0.5,
            "K": torch.from_numpy(arrays["K"][self.views]).float(),
            "world_to_cam": torch.from_numpy(arrays["world_to_cam"][self.views]).float(),
            "anchors": torch.from_numpy(arrays["anchors"][self.frames]).float(),
            "gaussian_means": (torch.from_numpy(arrays["gaussian_means"][self.frames].astype(np.float32))
                               if has_gaussians else None),
            "gaussians": ({f: torch.from_numpy(arrays["rest_" + f]).float() for f in GAUSSIAN_FIELDS}
                          if has_gaussians else None),
            "params": (torch.tensor([meta["params"][n] for n in PARAM_ORDER], dtype=torch.float32)
                       if meta["params"] is not None else None),
            "object_size": _object_size(meta, arrays["anchors"]),
            "fps": float(meta.get("fps", 30.0)),
            "frame_index": torch.from_numpy(frame_index.astype(np.int64)),
            "sample_id": meta["sample_id"],
            "object_id": meta["object_id"],
        }
        if self.with_depth:
            item["depth"] = torch.from_numpy(np.stack(depth)).unsqueeze(2)
        if "background_rgb" in arrays:
            item["background"] = arrays["background_rgb"][self.views]  # (V, H, W, 3) uint8
        if self.single_view:
            for key in ("rgb", "alpha", "mask", "depth", "K", "world_to_cam", "background"):
                if key in item:
                    item[key] = item[key][0]
        return item

    def meta(self, index: int) -> dict:
        return read_meta(self.sample_dir(index))
