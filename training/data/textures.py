"""Procedural solid (3D) textures: colour as a function of the object-frame position.

Solid textures need no UV map, so every procedural shape and every untextured mesh gets a pattern
that makes its motion and deformation visible to the camera.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TEXTURE_KINDS = ("solid", "stripes", "checkers", "noise", "patches")


@dataclass(frozen=True)
class Texture:
    """A texture recipe; `colors` (k, 3) in [0, 1], `frequency` in cycles per object size."""

    kind: str
    colors: np.ndarray  # (k, 3)
    frequency: float = 3.0
    direction: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))  # (3,) unit
    seed: int = 0

    def as_dict(self) -> dict:
        return {"kind": self.kind, "colors": np.round(self.colors, 6).tolist(), "frequency": float(self.frequency),
                "direction": np.round(self.direction, 6).tolist(), "seed": int(self.seed)}


def _random_palette(rng: np.random.Generator, count: int) -> np.ndarray:
    # Saturated, well separated hues so the pattern is visible against any background.
    hues = (rng.uniform() + np.arange(count) / count + rng.uniform(-0.08, 0.08, count)) % 1.0
    sat = rng.uniform(0.55, 1.0, count)
    val = rng.uniform(0.45, 1.0, count)
    h6 = hues * 6.0
    c = val * sat
    x = c * (1 - np.abs(h6 % 2 - 1))
    zeros = np.zeros_like(c)
    sector = np.floor(h6).astype(int) % 6
    table = [(c, x, zeros), (x, c, zeros), (zeros, c, x), (zeros, x, c), (x, zeros, c), (c, zeros, x)]
    rgb = np.stack([np.choose(sector, [t[i] for t in table]) for i in range(3)], axis=1)
    return (rgb + (val - c)[:, None]).astype(np.float32)


def random_texture(rng: np.random.Generator, kind: str | None = None) -> Texture:
    """Draw a texture recipe (kind uniformly from TEXTURE_KINDS unless given)."""
    kind = kind if kind is not None else TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))]
    if kind not in TEXTURE_KINDS:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {TEXTURE_KINDS}")
    count = {"solid": 1, "stripes": 2, "checkers": 2, "noise": 2, "patches": int(rng.integers(3, 7))}[kind]
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    return Texture(kind=kind, colors=_random_palette(rng, count), frequency=float(rng.uniform(2.0, 5.0)),
                   direction=direction, seed=int(rng.integers(2**31)))


def texture_colors(texture: Texture, points: np.ndarray, size: float) -> np.ndarray:
    """Colours (N, 3) float32 of object-frame `points` (N, 3) for an object of characteristic `size` (m)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")
    p = points / size * texture.frequency  # in pattern cycles
    colors = np.asarray(texture.colors, dtype=np.float32)
    if texture.kind == "solid":
        return np.repeat(colors[:1], len(points), axis=0)
    if texture.kind == "stripes":
        phase = p @ texture.direction
        return colors[(np.floor(phase * 2) % 2).astype(int)]
    if texture.kind == "checkers":
        cells = np.floor(p * 2).astype(int).sum(axis=1) % 2
        return colors[cells]
    rng = np.random.default_rng(texture.seed)
    if texture.kind == "noise":
        # Sum of random plane waves: smooth, isotropic-looking value noise without a lattice.
        waves = rng.normal(size=(8, 3)) * 2.0
        phases = rng.uniform(0, 2 * np.pi, 8)
        value = np.sin(p @ waves.T + phases).sum(axis=1) / np.sqrt(8)
        blend = (1.0 / (1.0 + np.exp(-3.0 * value)))[:, None].astype(np.float32)
        return colors[0] * blend + colors[1] * (1 - blend)
    if texture.kind == "patches":
        # Voronoi cells with random seeds inside the unit pattern box.
        seeds = rng.uniform(-0.5, 0.5, size=(4 * len(colors), 3)) * texture.frequency
        nearest = np.argmin(((p[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
        return colors[nearest % len(colors)]
    raise ValueError(f"unknown texture kind {texture.kind!r}; expected one of {TEXTURE_KINDS}")
