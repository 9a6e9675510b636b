"""Inverse-distance-weighting binding: Gaussian centres follow their n_b nearest anchors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree


@dataclass
class Binding:
    indices: torch.Tensor  # (N, n_b) long, nearest anchors of each Gaussian
    weights: torch.Tensor  # (N, n_b) float32, rows sum to 1


def _as_points(name: str, value) -> np.ndarray:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr.astype(np.float64)


def compute_binding(gaussian_means, anchors, n_neighbors: int = 8, power: float = 2.0,
                    eps: float = 1e-12) -> Binding:
    """Weights w_ij = 1 / d_ij^p over the n_b nearest anchors at rest, normalised per Gaussian.

    Computed as (d_nearest / d_ij)^p, the same weights after normalisation: every term is in [0, 1] and the
    nearest is 1, so a large p or far Gaussians cannot overflow d^p into inf / inf = NaN. Distances are floored
    at eps (m): a Gaussian on an anchor follows that anchor alone."""
    means = _as_points("gaussian_means", gaussian_means)
    anc = _as_points("anchors", anchors)
    if int(n_neighbors) < 1:
        raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"power must be finite and >= 0, got {power}")
    nb = min(int(n_neighbors), len(anc))
    dist, idx = cKDTree(anc).query(means, k=nb)
    dist, idx = dist.reshape(len(means), nb), idx.reshape(len(means), nb)
    dist = np.maximum(dist, eps)
    w = (dist[:, :1] / dist) ** power  # the query sorts by distance: column 0 is the nearest anchor
    w /= w.sum(1, keepdims=True)
    device = gaussian_means.device if isinstance(gaussian_means, torch.Tensor) else "cpu"
    return Binding(torch.as_tensor(idx, dtype=torch.long, device=device),
                   torch.as_tensor(w, dtype=torch.float32, device=device))


def apply_binding(binding: Binding, anchor_positions: torch.Tensor, rest_anchors: torch.Tensor,
                  rest_means: torch.Tensor) -> torch.Tensor:
    """Deformed Gaussian centres: rest centre + IDW mix of neighbour anchor displacements.
    anchor_positions (..., N_A, 3) -> (..., N, 3). Differentiable in anchor_positions."""
    if anchor_positions.shape[-2:] != rest_anchors.shape:
        raise ValueError(f"anchor_positions (..., N_A, 3) must match rest_anchors {tuple(rest_anchors.shape)}, "
                         f"got {tuple(anchor_positions.shape)}")
    if rest_means.shape[0] != binding.indices.shape[0]:
        raise ValueError(f"rest_means has {rest_means.shape[0]} Gaussians, binding has {binding.indices.shape[0]}")
    disp = anchor_positions - rest_anchors  # (..., N_A, 3)
    neighbour_disp = disp[..., binding.indices, :]  # (..., N, n_b, 3)
    return rest_means + (binding.weights.unsqueeze(-1) * neighbour_disp).sum(-2)


def local_rotations(binding: Binding, anchor_positions: torch.Tensor, rest_anchors: torch.Tensor,
                    rest_means: torch.Tensor) -> torch.Tensor:
    """Optional: best-fit rotation (weighted Kabsch) of each Gaussian's anchor neighbourhood, (..., N, 3, 3).
    The paper keeps Gaussians unrotated; use this to turn them with the local deformation."""
    w = binding.weights.unsqueeze(-1)  # (N, n_b, 1)
    q0 = rest_anchors[binding.indices]  # (N, n_b, 3)
    q1 = anchor_positions[..., binding.indices, :]  # (..., N, n_b, 3)
    p0 = q0 - (w * q0).sum(-2, keepdim=True)  # centred on the weighted neighbourhood centroid
    p1 = q1 - (w * q1).sum(-2, keepdim=True)
    cov = torch.einsum("nk,...nki,nkj->...nij", binding.weights, p1, p0)  # (..., N, 3, 3)
    u, _, vh = torch.linalg.svd(cov)
    det = torch.det(u @ vh)
    fix = torch.ones_like(u[..., 0, :])
    fix[..., 2] = det
    return (u * fix.unsqueeze(-2)) @ vh
