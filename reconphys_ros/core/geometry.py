"""Rigid transforms: unit quaternions (w, x, y, z), rotation matrices and 4x4 poses, float64 numpy."""
from __future__ import annotations

import numpy as np

__all__ = ["MIN_QUATERNION_NORM", "unit_quaternion", "quat_to_matrix", "pose_matrix", "check_rigid_transform",
           "rigid_velocity"]

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
    optical frame in the world gives camera -> world). Raises ValueError for a non-finite position and for the
    quaternions unit_quaternion refuses."""
    position = np.asarray(position, dtype=np.float64)
    if position.shape != (3,) or not np.isfinite(position).all():
        raise ValueError(f"position must be 3 finite numbers (x, y, z), got {position.tolist()}")
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(quat_wxyz)
    m[:3, 3] = position
    return m


def check_rigid_transform(matrix, name: str = "transform", atol: float = 1e-4) -> np.ndarray:
    """Return `matrix` as a float64 (4, 4) rigid transform (rotation + translation), or raise ValueError naming
    `name`: finite, bottom row [0, 0, 0, 1], an orthonormal rotation block with determinant +1 (within `atol`,
    so float32 storage passes). Refuses the all-zero and NaN matrices a bad camera pose turns into."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise ValueError(f"{name} must be a finite 4x4 matrix, got shape {m.shape}"
                         + ("" if m.shape != (4, 4) else f" with non-finite entries {m.tolist()}"))
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=1e-6):
        raise ValueError(f"{name} is not a rigid transform: bottom row {m[3].tolist()} (must be [0, 0, 0, 1])")
    rot = m[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), rtol=0.0, atol=atol) or np.linalg.det(rot) <= 0.0:
        raise ValueError(f"{name} is not a rigid transform: its rotation block {rot.tolist()} is not a rotation "
                         "(orthonormal, determinant +1)")
    return m


def rigid_velocity(points, velocity, angular_velocity, centre) -> np.ndarray:
    """(M, 3) float64 velocities of points (M, 3) of a rigid body whose point `centre` (3,) moves with `velocity`
    (3,) while it spins at `angular_velocity` (3,) rad/s: v + w x (p - centre)."""
    points = np.asarray(points, np.float64)
    return np.asarray(velocity, np.float64) + np.cross(np.asarray(angular_velocity, np.float64),
                                                       points - np.asarray(centre, np.float64))
