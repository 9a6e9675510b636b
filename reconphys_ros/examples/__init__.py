"""Example clips shipped with the package (for the demo and the ROS node tests).

Each clip is a test-split object falling onto a checkered ground plane: 30 frames at 30 fps, 128x128,
seen from 4 orthogonal views (view 0 is the single fixed camera the demo plays), with ground-truth
physics params, masks, depth and trajectories. Rebuild them with `python -m training.data.examples`.

    from reconphys_ros.examples import list_examples, load_example
    clip = load_example("falling_cylinder")
    clip["rgb"]      # (V, T, H, W, 3) uint8 RGB        clip["mask"]  (V, T, H, W) bool
    clip["alpha"]    # (V, T, H, W) float32 in [0, 1]   clip["depth"] (V, T, H, W) float32 metres, 0 = no object
    clip["K"]        # (V, 3, 3)   clip["world_to_cam"] (V, 4, 4)   clip["anchors"] (T, N_A, 3)
    clip["gaussian_means"] (T, N, 3)   clip["params"] {"mass", "stiffness", "damping", "friction"}
    clip["meta"]     # the sample's meta.json; clip["fps"] 30.0
"""
from __future__ import annotations

import os

import numpy as np

from .clip_format import CorruptSampleError, read_meta, read_sample_arrays, read_sample_frames

EXAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_EXAMPLE = "falling_cylinder"

__all__ = ["EXAMPLES_DIR", "DEFAULT_EXAMPLE", "CorruptSampleError", "example_path", "list_examples", "load_example"]


def list_examples() -> list[str]:
    """Names of the shipped clips."""
    return sorted(d for d in os.listdir(EXAMPLES_DIR) if os.path.exists(os.path.join(EXAMPLES_DIR, d, "meta.json")))


def example_path(name: str = DEFAULT_EXAMPLE) -> str:
    """Folder of clip `name`."""
    path = os.path.join(EXAMPLES_DIR, name)
    if not os.path.exists(os.path.join(path, "meta.json")):
        raise ValueError(f"unknown example {name!r}; available: {list_examples()}")
    return path


def load_example(name: str = DEFAULT_EXAMPLE, views=None) -> dict:
    """Load clip `name` (all views, or the view indices in `views`) as numpy arrays; see the module doc."""
    path = example_path(name)
    meta = read_meta(path)
    views = list(range(meta["num_views"])) if views is None else [int(v) for v in views]
    arrays = read_sample_arrays(path, meta)  # geometry and sizes checked against meta.json
    frames = [read_sample_frames(path, meta, v) for v in views]
    alpha = np.stack([f[1] for f in frames]).astype(np.float32) / 255.0
    return {
        "rgb": np.stack([f[0] for f in frames]),
        "alpha": alpha,
        "mask": alpha >= 0.5,
        "depth": np.stack([f[2] for f in frames]),
        "K": arrays["K"][views],
        "world_to_cam": arrays["world_to_cam"][views],
        "anchors": arrays["anchors"],
        "gaussian_means": arrays["gaussian_means"].astype(np.float32),
        "params": dict(meta["params"]),
        "fps": float(meta["fps"]),
        "object_id": meta["object_id"],
        "meta": meta,
    }
