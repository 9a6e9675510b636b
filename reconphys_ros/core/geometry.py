"""Rigid transforms: unit quaternions (w, x, y, z), rotation matrices and 4x4 poses, float64 numpy."""
from __future__ import annotations

import numpy as np

__all__ = ["MIN_QUATERNION_NORM", "unit_quaternion", "quat_to_matrix", "pose_matrix"]

# A quaternion shorter than this is an unset orientation (all zeros) sent by mistake, not a rotation.
MIN_QUATERNION_NORM = 1e-6


def unit_quaternion(q, name: str = "orientation") -> np.ndarray:
    """(w, x, y, z) -> the same rotation as a unit quaternion, float64.

    Divides by the largest |component| before taking the norm: the norm of a finite quaternion with a component
    above ~1e154 overflows to inf, and q / inf = 0 would pass as a rotation. Raises ValueError for a wrong shape,
    NaN / Inf or a zero-length quaternion."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,) or not np.isfinite(q).all():
        raise ValueError(f"{name} must be 4 finite numbers (w, x, y, z), got {q.tolist()}")
    largest = float(np.abs(q).max())
    scaled = q / largest if largest > 0.0 else q
    if largest * float(np.linalg.norm(scaled)) < MIN_QUATERNION_NORM:
        raise ValueError(f"{name} is a zero-length quaternion {q.tolist()}")
    return scaled / np.linalg.norm(scaled)


def quat_to_matrix(q) -> np.ndarray:
    """Quaternion (w, x, y, z), normalised here -> rotation matrix (3, 3). Raises ValueError like unit_quaternion."""
    w, x, y, z = unit_quaternion(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pose_matrix(position, quat_wxyz) -> np.ndarray:
    """(4, 4) transform of a pose: position (3,) and orientation (w, x, y, z) of a frame in its parent (a camera
    optical frame in the world gives camera -> world)."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(quat_wxyz)
    m[:3, 3] = position
    return m
