"""Anchor sampling through an object's volume, seeded by a stable hash of the object id."""
from __future__ import annotations

import hashlib

import numpy as np
from scipy import ndimage


def object_seed(object_id: str) -> int:
    """Stable 64-bit seed from the object id (blake2b; Python's hash() is salted per process)."""
    digest = hashlib.blake2b(str(object_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _points_from_input(points_or_mesh) -> tuple[np.ndarray, object]:
    """Return (points (M,3) float64, mesh or None)."""
    if hasattr(points_or_mesh, "vertices") and hasattr(points_or_mesh, "faces"):
        mesh = points_or_mesh
        return np.asarray(mesh.vertices, dtype=np.float64), mesh
    if hasattr(points_or_mesh, "detach"):  # torch tensor
        points_or_mesh = points_or_mesh.detach().cpu().numpy()
    pts = np.asarray(points_or_mesh, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"sample_anchors: expected points of shape (M, 3) or a trimesh mesh, got shape {pts.shape}")
    return pts, None


def _filled_voxels(points: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Occupancy grid of the points' volume: mark voxels, close small gaps, fill the interior."""
    lo = points.min(0)
    extent = float((points.max(0) - lo).max())
    voxel = max(extent, 1e-6) / resolution
    grow = 2  # voxels: closes gaps between surface samples up to ~4 voxels wide
    pad = grow + 2
    origin = lo - pad * voxel
    idx = np.floor((points - origin) / voxel).astype(np.int64)
    shape = idx.max(0) + pad + 1
    grid = np.zeros(shape, dtype=bool)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    # Thicken the shell until watertight, fill the inside, then peel the added layers off again.
    cube = np.ones((3, 3, 3), bool)
    filled = ndimage.binary_fill_holes(ndimage.binary_dilation(grid, cube, iterations=grow))
    filled = ndimage.binary_erosion(filled, cube, iterations=grow, border_value=0) | grid
    return filled, origin, voxel


def _volume_candidates(points, mesh, num: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform samples inside the voxelised, hole-filled volume of the points (or mesh surface samples)."""
    if mesh is not None:
        surface = np.asarray(mesh.sample(20000, seed=int(rng.integers(2**31))), dtype=np.float64)
        points = np.concatenate([points, surface])
    # voxels about two samples wide per surface sample spacing, so the shell closes
    resolution = int(np.clip(np.sqrt(len(points) / 4.0), 8, 48))
    filled, origin, voxel = _filled_voxels(points, resolution)
    cells = np.argwhere(filled)
    pick = rng.integers(0, len(cells), size=num)
    samples = origin + (cells[pick] + rng.uniform(0.0, 1.0, size=(num, 3))) * voxel
    return np.clip(samples, points.min(0), points.max(0))  # boundary voxels stick out of the object


def farthest_point_sampling(candidates: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy FPS: evenly spread picks (Poisson-disk-like spacing). Returns indices (num,)."""
    n = len(candidates)
    chosen = np.empty(num, dtype=np.int64)
    chosen[0] = rng.integers(n)
    dist = np.full(n, np.inf)
    for i in range(1, num):
        d = np.sum((candidates - candidates[chosen[i - 1]]) ** 2, axis=1)
        np.minimum(dist, d, out=dist)
        chosen[i] = int(np.argmax(dist))
    return chosen


def sample_anchors(points_or_mesh, num_anchors: int, object_id: str, oversample: int = 8) -> np.ndarray:
    """Sample `num_anchors` anchors evenly through the volume of a point set (e.g. Gaussian centres) or a
    trimesh mesh. The same object id always yields the same anchors. Returns (N_A, 3) float32."""
    if int(num_anchors) < 2:
        raise ValueError(f"sample_anchors: num_anchors must be >= 2, got {num_anchors}")
    points, mesh = _points_from_input(points_or_mesh)
    if len(points) == 0:
        raise ValueError("sample_anchors: empty point set")
    if not np.all(np.isfinite(points)):
        raise ValueError("sample_anchors: points contain NaN or Inf")
    rng = np.random.default_rng(object_seed(object_id))
    candidates = _volume_candidates(points, mesh, max(num_anchors * oversample, 4096), rng)
    chosen = farthest_point_sampling(candidates, num_anchors, rng)
    return candidates[chosen].astype(np.float32)
