"""Backgrounds composited behind the rendered object: plain colour, textured ground plane, random noise image.

The object is rendered on black with its alpha, then composited: rgb = object_rgb + (1 - alpha) * background.
The ground plane is drawn by intersecting each pixel's ray with z = 0, so it is consistent across the 4 views.
"""
from __future__ import annotations

import cv2
import numpy as np

BACKGROUND_KINDS = ("plain", "ground", "noise")


def random_background_spec(rng: np.random.Generator, kinds=BACKGROUND_KINDS) -> dict:
    """A JSON-able background recipe."""
    kinds = tuple(kinds)
    if not kinds or any(k not in BACKGROUND_KINDS for k in kinds):
        raise ValueError(f"background kinds must be a non-empty subset of {BACKGROUND_KINDS}, got {kinds}")
    kind = kinds[int(rng.integers(len(kinds)))]
    spec = {"kind": kind, "seed": int(rng.integers(2**31))}
    if kind == "plain":
        spec["color"] = rng.uniform(0.15, 0.9, 3).round(4).tolist()
    elif kind == "ground":
        base = rng.uniform(0.2, 0.8, 3)
        spec.update(color_a=base.round(4).tolist(), color_b=(base * rng.uniform(0.5, 0.8)).round(4).tolist(),
                    sky=rng.uniform(0.6, 0.95, 3).round(4).tolist(), tile=float(rng.uniform(0.1, 0.4)))
    return spec


def render_background(spec: dict, K: np.ndarray, world_to_cam: np.ndarray, width: int, height: int,
                      view_index: int = 0) -> np.ndarray:
    """Background image (H, W, 3) float32 in [0, 1] for one camera (K (3, 3), world_to_cam (4, 4))."""
    kind = spec.get("kind")
    if kind == "plain":
        return np.broadcast_to(np.asarray(spec["color"], np.float32), (height, width, 3)).copy()
    if kind == "noise":
        # Multi-scale smooth colour noise: textured clutter for segmentation robustness.
        rng = np.random.default_rng(spec["seed"] + 7919 * view_index)
        img = np.zeros((height, width, 3), np.float32)
        for cells, weight in ((4, 0.5), (12, 0.3), (40, 0.2)):
            coarse = rng.uniform(0, 1, (cells, cells, 3)).astype(np.float32)
            img += weight * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        return np.clip(img, 0, 1)
    if kind == "ground":
        K = np.asarray(K, np.float64)
        w2c = np.asarray(world_to_cam, np.float64)
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
        rot = w2c[:3, :3]
        origin = -rot.T @ w2c[:3, 3]
        rays = rays_cam @ rot  # (H, W, 3) world directions (row-vector form of R^T d)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origin[2] / rays[..., 2]
        hit = (t > 0) & np.isfinite(t)
        ground = origin[:2] + np.where(hit, t, 0)[..., None] * rays[..., :2]
        checker = (np.floor(ground / spec["tile"]).astype(np.int64).sum(-1) % 2).astype(np.float32)[..., None]
        ground_rgb = checker * np.asarray(spec["color_a"], np.float32) + (1 - checker) * np.asarray(spec["color_b"], np.float32)
        # Fade far ground towards the sky colour (a cheap horizon haze that hides aliasing).
        haze = np.clip(np.where(hit, t, 1e9) / 12.0, 0, 1)[..., None].astype(np.float32)
        sky = np.asarray(spec["sky"], np.float32)
        return np.where(hit[..., None], ground_rgb * (1 - haze) + sky * haze, sky).astype(np.float32)
    raise ValueError(f"unknown background kind {kind!r}; expected one of {BACKGROUND_KINDS}")
