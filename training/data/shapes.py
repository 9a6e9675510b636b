"""Procedural deformable shapes as signed distance functions (negative inside), in metres.

Each shape is centred at the origin of its own frame; `half_extent` bounds it so volume and surface
points can be drawn by rejection sampling inside that box.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

SHAPE_KINDS = ("ellipsoid", "rounded_box", "cylinder", "capsule", "torus", "blob", "letter")
LETTERS = "ABCDEFHKLMNPRSTUVWXZ"


@dataclass(frozen=True)
class ProceduralShape:
    """A shape recipe. `dims` holds kind-specific sizes in metres (see `sdf`)."""

    kind: str
    dims: dict = field(hash=False)

    def __post_init__(self):
        if self.kind not in SHAPE_KINDS:
            raise ValueError(f"unknown shape kind {self.kind!r}; expected one of {SHAPE_KINDS}")

    @property
    def half_extent(self) -> np.ndarray:
        """(3,) half sizes of an axis-aligned box that contains the shape."""
        d = self.dims
        if self.kind == "ellipsoid":
            return np.array(d["radii"], dtype=np.float64)
        if self.kind == "rounded_box":
            return np.array(d["half_size"], dtype=np.float64)
        if self.kind == "cylinder":
            return np.array([d["radius"], d["radius"], d["half_height"]])
        if self.kind == "capsule":
            return np.array([d["radius"], d["radius"], d["half_length"] + d["radius"]])
        if self.kind == "torus":
            return np.array([d["major"] + d["minor"], d["major"] + d["minor"], d["minor"]])
        if self.kind == "blob":
            r = d["radius"] * (1 + d["amplitude"])
            return np.array([r, r, r])
        return np.array([d["half_width"], d["half_height"], d["half_depth"]])  # letter

    def sdf(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (N,) of points (N, 3); exact or a close bound (enough for sampling)."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {p.shape}")
        d = self.dims
        if self.kind == "ellipsoid":
            r = np.asarray(d["radii"])
            k = np.linalg.norm(p / r, axis=1)
            return (k - 1.0) * r.min()
        if self.kind == "rounded_box":
            q = np.abs(p) - (np.asarray(d["half_size"]) - d["corner_radius"])
            outside = np.linalg.norm(np.maximum(q, 0), axis=1)
            return outside + np.minimum(q.max(axis=1), 0) - d["corner_radius"]
        if self.kind == "cylinder":
            radial = np.linalg.norm(p[:, :2], axis=1) - d["radius"]
            axial = np.abs(p[:, 2]) - d["half_height"]
            q = np.stack([radial, axial], axis=1)
            return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
        if self.kind == "capsule":
            z = np.clip(p[:, 2], -d["half_length"], d["half_length"])
            return np.linalg.norm(p - np.stack([0 * z, 0 * z, z], axis=1), axis=1) - d["radius"]
        if self.kind == "torus":
            ring = np.linalg.norm(p[:, :2], axis=1) - d["major"]
            return np.hypot(ring, p[:, 2]) - d["minor"]
        if self.kind == "blob":
            rng = np.random.default_rng(d["seed"])
            dirs = rng.normal(size=(6, 3))
            dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
            phases = rng.uniform(0, 2 * np.pi, 6)
            n = np.linalg.norm(p, axis=1, keepdims=True)
            u = p / np.maximum(n, 1e-12)
            bump = np.sin(3.0 * (u @ dirs.T) + phases).mean(axis=1)  # in [-1, 1], smooth on the sphere
            # Lipschitz factor 0.5 keeps it a conservative distance bound for the displaced surface.
            return 0.5 * (n[:, 0] - d["radius"] * (1.0 + d["amplitude"] * bump))
        return self._letter_sdf(p)

    @cached_property
    def _letter_field(self):
        # Rasterise the glyph once; the 2D signed distance comes from two distance transforms.
        res = 128
        img = np.zeros((res, res), np.uint8)
        (tw, th), base = cv2.getTextSize(self.dims["char"], cv2.FONT_HERSHEY_SIMPLEX, 3.0, 18)
        cv2.putText(img, self.dims["char"], ((res - tw) // 2, (res + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                    3.0, 255, 18, cv2.LINE_AA)
        ys, xs = np.nonzero(img > 127)
        if len(xs) == 0:
            raise ValueError(f"letter {self.dims['char']!r} rasterised to nothing")
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        crop = (img[y0:y1, x0:x1] > 127).astype(np.uint8)
        crop = np.pad(crop, 4)
        inside = cv2.distanceTransform(crop, cv2.DIST_L2, 5)
        outside = cv2.distanceTransform(1 - crop, cv2.DIST_L2, 5)
        return (outside - inside).astype(np.float64), crop.shape

    def _letter_sdf(self, p: np.ndarray) -> np.ndarray:
        field2d, (h, w) = self._letter_field
        hw, hh, hd = self.dims["half_width"], self.dims["half_height"], self.dims["half_depth"]
        px_per_m = (w - 8) / (2 * hw)
        col = np.clip(((p[:, 0] + hw) * px_per_m + 4).astype(int), 0, w - 1)
        row = np.clip(((hh - p[:, 1]) * px_per_m + 4).astype(int), 0, h - 1)
        planar = field2d[row, col] / px_per_m
        axial = np.abs(p[:, 2]) - hd
        q = np.stack([planar, axial], axis=1)
        return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def random_shape(rng: np.random.Generator, size: float, kind: str | None = None) -> ProceduralShape:
    """A random shape of kind `kind` (uniform if None) whose longest dimension is about `size` metres."""
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")
    kind = kind if kind is not None else SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]
    h = size / 2
    aspect = lambda: float(rng.uniform(0.45, 1.0))  # noqa: E731  (short-lived helper)
    if kind == "ellipsoid":
        dims = {"radii": [h, h * aspect(), h * aspect()]}
    elif kind == "rounded_box":
        half = [h, h * aspect(), h * aspect()]
        dims = {"half_size": half, "corner_radius": float(min(half) * rng.uniform(0.1, 0.5))}
    elif kind == "cylinder":
        dims = {"radius": h * aspect(), "half_height": h}
    elif kind == "capsule":
        radius = h * float(rng.uniform(0.3, 0.6))
        dims = {"radius": radius, "half_length": h - radius}
    elif kind == "torus":
        minor = h * float(rng.uniform(0.25, 0.45))
        dims = {"major": h - minor, "minor": minor}
    elif kind == "blob":
        amp = float(rng.uniform(0.1, 0.3))
        dims = {"radius": h / (1 + amp), "amplitude": amp, "seed": int(rng.integers(2**31))}
    elif kind == "letter":
        char = LETTERS[rng.integers(len(LETTERS))]
        dims = {"char": char, "half_width": h * 0.8, "half_height": h, "half_depth": h * float(rng.uniform(0.25, 0.5))}
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}")
    if kind == "letter":  # glyph aspect comes from the font: fit the width to it
        shape = ProceduralShape(kind, dims)
        _, (gh, gw) = shape._letter_field
        dims["half_width"] = h * (gw - 8) / (gh - 8)
    return ProceduralShape(kind, dims)
