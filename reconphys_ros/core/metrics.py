"""Evaluation metrics of the paper: PSNR (optionally inside a mask), SSIM, Chamfer distance, EMD, parameter errors.

Images are float in [0, 1] or uint8, shaped (..., H, W, 3); point sets (N, 3). Chamfer distance follows the usual
point-cloud convention: mean squared nearest-neighbour distance from A to B plus from B to A. EMD is exact
(optimal one-to-one assignment, scipy linear_sum_assignment) on equal-size random subsets: the mean matched
Euclidean distance.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .physics.params import PARAM_NAMES, PhysicsParams

__all__ = ["PSNR_CAP", "psnr", "ssim", "chamfer_distance", "earth_movers_distance", "param_errors",
           "mean_param_errors"]

PSNR_CAP = 100.0  # dB reported for identical images (MSE = 0)


def _image(name: str, value) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if t.ndim < 3 or t.shape[-1] != 3:
        raise ValueError(f"{name} must be (..., H, W, 3), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return t


def psnr(prediction, target, mask=None) -> float:
    """PSNR in dB of images in [0, 1] (uint8 scaled by 1/255); with a mask (..., H, W), only pixels where
    mask > 0 count. Identical images give PSNR_CAP."""
    a, b = _image("prediction", prediction), _image("target", target)
    if a.shape != b.shape:
        raise ValueError(f"prediction {tuple(a.shape)} and target {tuple(b.shape)} differ in shape")
    err = (a - b) ** 2  # (..., H, W, 3)
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask) > 0
        if tuple(m.shape) != tuple(a.shape[:-1]):
            raise ValueError(f"mask must have shape {tuple(a.shape[:-1])}, got {tuple(m.shape)}")
        if not m.any():
            raise ValueError("mask is empty: no pixels to compare")
        mse = float(err[m].mean())
    else:
        mse = float(err.mean())
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


def ssim(prediction, target) -> float:
    """Mean SSIM (torchmetrics, Gaussian window 11, sigma 1.5) of images (..., H, W, 3) in [0, 1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _image("prediction", prediction), _image("target", target)
    if a.shape != b.shape:
        raise ValueError(f"prediction {tuple(a.shape)} and target {tuple(b.shape)} differ in shape")
    if min(a.shape[-3], a.shape[-2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {a.shape[-2]}x{a.shape[-3]}")
    a = a.reshape(-1, *a.shape[-3:]).permute(0, 3, 1, 2)
    b = b.reshape(-1, *b.shape[-3:]).permute(0, 3, 1, 2)
    return float(structural_similarity_index_measure(a, b, data_range=1.0))


def _points(name: str, value) -> np.ndarray:
    arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3), got shape {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def chamfer_distance(a, b, chunk: int = 4096) -> float:
    """mean_a min_b |a - b|^2 + mean_b min_a |a - b|^2 (m^2), exact, by chunked dense distances.

    Not scipy's cKDTree: it crashed (segfault, stack overflow) on collapsed objects whose points coincide."""
    pa = torch.as_tensor(_points("a", a), dtype=torch.float64)
    pb = torch.as_tensor(_points("b", b), dtype=torch.float64)
    min_ab = torch.empty(len(pa), dtype=torch.float64)  # (N_a,) nearest squared distance into b
    min_ba = torch.full((len(pb),), float("inf"), dtype=torch.float64)  # (N_b,)
    for start in range(0, len(pa), chunk):
        d2 = torch.cdist(pa[start:start + chunk], pb, compute_mode="donot_use_mm_for_euclid_dist") ** 2  # (chunk, N_b)
        min_ab[start:start + chunk] = d2.min(1).values
        min_ba = torch.minimum(min_ba, d2.min(0).values)
    return float(min_ab.mean() + min_ba.mean())


def earth_movers_distance(a, b, max_points: int = 1024, seed: int = 0) -> float:
    """Exact EMD (mean matched distance, m) between random subsets of min(len(a), len(b), max_points) points."""
    pa, pb = _points("a", a), _points("b", b)
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    n = min(len(pa), len(pb), int(max_points))
    rng = np.random.default_rng(seed)
    pa = pa[rng.choice(len(pa), n, replace=False)]
    pb = pb[rng.choice(len(pb), n, replace=False)]
    cost = np.linalg.norm(pa[:, None] - pb[None], axis=-1)  # (n, n)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def param_errors(predicted: PhysicsParams, truth: PhysicsParams) -> dict:
    """Absolute errors of m, k, d, f (paper convention, as the paper's Table 3) plus the identifiable ratios:
    absolute errors of k/m and d/m and their log ratios (ln(pred / true))."""
    out = {name: abs(getattr(predicted, name) - getattr(truth, name)) for name in PARAM_NAMES}
    for name in ("stiffness_per_mass", "damping_per_mass"):
        p, t = getattr(predicted, name), getattr(truth, name)
        out[name] = abs(p - t)
        out[f"log_ratio_{name}"] = math.log(p / t)
    return out


def mean_param_errors(pairs) -> dict:
    """Mean absolute error per key over (predicted, truth) pairs (log ratios averaged by magnitude)."""
    errors = [param_errors(p, t) for p, t in pairs]
    if not errors:
        raise ValueError("mean_param_errors needs at least one (predicted, truth) pair")
    return {k: float(np.mean([abs(e[k]) for e in errors])) for k in errors[0]}
