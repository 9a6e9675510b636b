"""Metrics and constants shared by the end-to-end (evaluate.py) and physics-only (evaluate_physics.py) evaluations."""
from __future__ import annotations

import numpy as np

from reconphys_ros.core.metrics import chamfer_distance, earth_movers_distance, psnr, ssim
from reconphys_ros.core.models.physics_predictor import Z90
from reconphys_ros.core.physics import PARAM_NAMES
from reconphys_ros.core.physics.params import RATIO_RANGES, ratios_from_paper, size_independent_from_ratios

RECON = slice(0, 20)  # 0-based frames the pipeline observes (paper: frames 1-20)
FUTURE = slice(20, 30)  # frames it predicts (paper: 21-30)
PAPER_MAE = {"stiffness": 297.3, "damping": 1.151, "mass": 1.337, "friction": 1.508}
MOVING_WIDTH_FRACTION = 64  # a clip moves late when its anchors move > width / 64 px per frame in frames 21-30
SETTLED_SIZES_PER_S = 0.05  # a centroid slower than this many object sizes per second has settled


def impact_frame(anchors: np.ndarray, size: float) -> int | None:
    """First frame whose lowest point (anchors (T, N, 3)) is within 2 mm + 1% of the object's size (m) of the ground
    (None: never)."""
    hit = np.nonzero(np.asarray(anchors)[..., 2].min(-1) <= 0.002 + 0.01 * size)[0]
    return int(hit[0]) if hit.size else None


def after_impact(anchors: np.ndarray, size: float, fps: float = 30.0, impact: int | None = None) -> dict | None:
    """What a trajectory (anchors (T, N, 3)) does after its first impact (`impact`: that frame, default its own):
    bounce (m: highest centroid after the impact above the last frame's), rest (3,): the last centroid, rollout (m:
    horizontal distance of the last centroid from the centroid at the impact), settling (s from the impact until
    the centroid last moves faster than SETTLED_SIZES_PER_S sizes per second). None without an impact."""
    impact = impact_frame(anchors, size) if impact is None else impact
    if impact is None:
        return None
    after = np.asarray(anchors, np.float64).mean(1)[impact:]  # (T - impact, 3) centroids
    speed = np.linalg.norm(np.diff(after, axis=0), axis=1) * fps  # (T - impact - 1,)
    moving = np.nonzero(speed > SETTLED_SIZES_PER_S * size)[0]
    return {"impact": int(impact), "bounce": float(max(after[:, 2].max() - after[-1, 2], 0.0)), "rest": after[-1],
            "rollout": float(np.linalg.norm(after[-1, :2] - after[0, :2])),
            "settling": float((moving[-1] + 1) / fps) if moving.size else 0.0}


def window_metrics(pred_rgb: np.ndarray, true_rgb: np.ndarray, pred_mask: np.ndarray, true_mask: np.ndarray,
                   pred_points: np.ndarray | None = None, true_points: np.ndarray | None = None,
                   emd_points: int = 256) -> dict:
    """pred/true rgb (F, H, W, 3) in [0, 1] or uint8, masks (F, H, W) bool, points (F, N, 3) -> mean metrics:
    psnr (whole frame), psnr_object (inside the union of masks), ssim, and with points cd (m^2, all points) and
    emd (m, exact on random subsets of `emd_points`)."""
    if pred_rgb.shape != true_rgb.shape or pred_mask.shape != true_mask.shape:
        raise ValueError(f"shape mismatch: {pred_rgb.shape} vs {true_rgb.shape}, {pred_mask.shape} vs {true_mask.shape}")
    if len(pred_rgb) == 0:
        raise ValueError("empty window")
    union = pred_mask | true_mask
    if pred_rgb.dtype == np.uint8:  # torchmetrics' SSIM wants floats
        pred_rgb, true_rgb = pred_rgb.astype(np.float32) / 255.0, true_rgb.astype(np.float32) / 255.0
    out = {
        "psnr": float(np.mean([psnr(p, t) for p, t in zip(pred_rgb, true_rgb)])),
        "psnr_object": float(np.mean([psnr(p, t, u) for p, t, u in zip(pred_rgb, true_rgb, union) if u.any()])),
        "ssim": ssim(pred_rgb, true_rgb),
    }
    if pred_points is not None:
        out["cd"] = float(np.mean([chamfer_distance(p, t) for p, t in zip(pred_points, true_points)]))
        out["emd"] = float(np.mean([earth_movers_distance(p, t, max_points=emd_points) for p, t in zip(pred_points, true_points)]))
    return out


def interval_coverage(mean: np.ndarray, sigma: np.ndarray, truth: np.ndarray, z: float = Z90) -> np.ndarray:
    """(S, Q) predicted means, standard deviations and truths -> (Q,) share of truths inside mean +- z sigma."""
    return np.mean(np.abs(truth - mean) <= z * sigma, axis=0)


def _train_entries(train_root: str | None) -> list[dict]:
    """Manifest entries of the training split of `train_root` ([] without one)."""
    from training.data.dataset import list_samples

    try:
        return list_samples(train_root, "train") if train_root else []
    except FileNotFoundError:
        return []


def constant_size_independent(train_root: str | None) -> np.ndarray:
    """(3,) dataset-mean size-independent values (ln k/m and ln d/m at 1 m, f; physics/params.py) of the training
    manifest; without one, the same means of the generator's draw (the centres of RATIO_RANGES, f = 0.5). Entries
    without an object_size (data sets before issue 14: 0.5-1 m objects) count as 1 m."""
    entries = _train_entries(train_root)
    if not entries:
        return np.array([0.5 * (lo + hi) for lo, hi in RATIO_RANGES.values()])
    p = np.array([[e["params"][n] for n in PARAM_NAMES] for e in entries])
    sizes = np.array([float(e.get("object_size", 1.0)) for e in entries])
    return size_independent_from_ratios(ratios_from_paper(p), sizes).mean(0)


def constant_contact_damping(train_root: str | None) -> float:
    """Dataset-mean size-independent contact damping (1/s at 1 m) of the training manifest (0 for data sets made
    before it was drawn); without one, 0 (the paper's contact)."""
    entries = _train_entries(train_root)
    return float(np.mean([float(e.get("contact_damping", 0.0)) for e in entries])) if entries else 0.0
