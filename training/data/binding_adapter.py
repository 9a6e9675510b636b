"""Gaussian centres following the simulated anchors, via the core IDW binding (reconphys_ros.core.binding)."""
from __future__ import annotations

import numpy as np
import torch

from reconphys_ros.core.binding import apply_binding, compute_binding

BINDING_NEIGHBORS = 8  # n_b
BINDING_POWER = 2.0  # p_b


def bind_trajectory(points: np.ndarray, anchor_traj: np.ndarray) -> np.ndarray:
    """Gaussian centres (T, N, 3) for rest centres `points` (N, 3) and anchor positions (T, N_A, 3),
    both in the world frame, with anchor_traj[0] the rest pose of the anchors."""
    points = np.asarray(points, np.float32)
    anchor_traj = np.asarray(anchor_traj, np.float32)
    if points.ndim != 2 or points.shape[1] != 3 or anchor_traj.ndim != 3 or anchor_traj.shape[2] != 3:
        raise ValueError(f"expected points (N, 3) and anchor_traj (T, N_A, 3), got {points.shape}, {anchor_traj.shape}")
    rest_anchors = torch.from_numpy(anchor_traj[0])
    rest_means = torch.from_numpy(points)
    binding = compute_binding(rest_means, rest_anchors, BINDING_NEIGHBORS, BINDING_POWER)
    with torch.no_grad():
        return apply_binding(binding, torch.from_numpy(anchor_traj), rest_anchors, rest_means).numpy()
