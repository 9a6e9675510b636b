"""Offline evaluation of the demo's reconstruction against the example clip (no rclpy).

The pipeline saw the clip's frames [start, start + observed) through the nodes; the rest are held back. Here the
asset is re-simulated from its reconstructed frame-0 state for the clip's remaining length, rendered from the
clip's camera and composited over a background estimated from the OBSERVED frames only (object pixels removed,
holes inpainted), then compared with the held-back frames: PSNR of the whole image and inside the object masks,
next to two baselines that need no physics (hold the last observed frame; one constant colour).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from reconphys_ros.core.asset import SimAsset
from reconphys_ros.core.compositing import composite, estimate_background
from reconphys_ros.core.metrics import psnr
from reconphys_ros.core.pipeline import predict_future
from reconphys_ros.core.render import Camera, render_sequence

__all__ = ["ClipComparison", "evaluate_prediction", "centroid_heights"]


def centroid_heights(anchors: np.ndarray) -> np.ndarray:
    """Anchor trajectory (T, N_A, 3) -> centroid height z (T,)."""
    anchors = np.asarray(anchors)
    if anchors.ndim != 3 or anchors.shape[-1] != 3:
        raise ValueError(f"anchors must be (T, N_A, 3), got shape {anchors.shape}")
    return anchors[..., 2].mean(1)


@dataclass
class ClipComparison:
    start: int  # clip index of the asset's frame 0
    observed: int  # frames the pipeline reconstructed from
    predicted: np.ndarray  # (T, H, W, 3) uint8 re-simulated (first `observed`) then future frames
    predicted_masks: np.ndarray  # (T, H, W) bool, rendered alpha > 0.5
    truth: np.ndarray  # (T, H, W, 3) uint8 clip frames start .. start + T
    truth_masks: np.ndarray  # (T, H, W) bool
    background: np.ndarray  # (H, W, 3) uint8 estimated from the observed frames
    predicted_heights: np.ndarray  # (T,) centroid height of the re-simulated anchors, m
    true_heights: np.ndarray | None  # (T,) from the clip's ground-truth anchors, m
    psnr: dict = field(default_factory=dict)  # see evaluate_prediction

    @property
    def num_future(self) -> int:
        return self.predicted.shape[0] - self.observed


def _psnr_table(pred: np.ndarray, truth: np.ndarray, masks: np.ndarray) -> dict:
    return {"full": psnr(pred, truth), "in_mask": psnr(pred, truth, masks) if masks.any() else float("nan")}


def evaluate_prediction(asset: SimAsset, initial_velocity, camera: Camera, clip_rgb: np.ndarray,
                        clip_masks: np.ndarray, start: int, observed: int, observed_masks: np.ndarray,
                        fps: float, true_anchors: np.ndarray | None = None, substeps: int = 30,
                        device: str = "cpu", angular_velocity=(0.0, 0.0, 0.0)) -> ClipComparison:
    """Re-simulate `asset` over clip frames [start, T_clip) and compare with the clip.

    clip_rgb (T_clip, H, W, 3) uint8 and clip_masks (T_clip, H, W) are the whole clip (one view, the camera's);
    frames [start, start + observed) are the ones the pipeline saw, observed_masks (observed, H, W) the masks it
    used (they shape the background estimate). initial_velocity (3,) m/s and angular_velocity (3,) rad/s: the state
    at the asset's first frame (PipelineResult's). true_anchors (T_clip, N_A, 3) gives the true centroid heights.
    PSNR keys: future (frames after the observed window) with prediction, hold_last_frame and constant_image
    entries, resimulated (inside the window) with prediction; each {"full", "in_mask"} (mask = true OR predicted
    object pixels).
    """
    clip_rgb, clip_masks = np.asarray(clip_rgb), np.asarray(clip_masks) > 0
    total = clip_rgb.shape[0]
    if clip_rgb.ndim != 4 or clip_masks.shape != clip_rgb.shape[:3]:
        raise ValueError(f"clip_rgb (T, H, W, 3) and clip_masks (T, H, W) must match, got {clip_rgb.shape} and "
                         f"{clip_masks.shape}")
    if not (0 <= start and observed >= 1 and start + observed < total):
        raise ValueError(f"need 0 <= start and start + observed < clip length {total} (frames left to predict), "
                         f"got start={start}, observed={observed}")
    if (camera.width, camera.height) != (clip_rgb.shape[2], clip_rgb.shape[1]):
        raise ValueError(f"camera is {camera.width}x{camera.height} but the clip is "
                         f"{clip_rgb.shape[2]}x{clip_rgb.shape[1]}")
    num = total - start
    truth, truth_masks = clip_rgb[start:], clip_masks[start:]
    background = estimate_background(truth[:observed], np.asarray(observed_masks)[:observed])

    prediction = predict_future(asset, initial_velocity, num_frames=num, camera=None, fps=fps,
                                substeps=substeps, device=device, angular_velocity=angular_velocity)
    gaussians = asset.gaussians.to(device)
    with torch.no_grad():
        out = render_sequence(gaussians, torch.as_tensor(prediction.gaussian_means, device=device),
                              camera.to(device), background=(0.0, 0.0, 0.0))
    predicted = composite(out.rgb, out.alpha, background)  # black background: out.rgb is premultiplied colour
    predicted_masks = out.alpha.cpu().numpy() > 0.5

    last = np.repeat(truth[observed - 1:observed], num, axis=0)  # (T, H, W, 3)
    mean_colour = truth[:observed].reshape(-1, 3).mean(0)
    constant = np.full_like(truth, 0) + (mean_colour + 0.5).astype(np.uint8)  # (T, H, W, 3) one colour
    masks = truth_masks | predicted_masks
    future = slice(observed, num)
    table = {"future": {name: _psnr_table(images[future], truth[future], masks[future])
                        for name, images in (("prediction", predicted), ("hold_last_frame", last),
                                             ("constant_image", constant))},
             # the baselines only exist after the observed window
             "resimulated": {"prediction": _psnr_table(predicted[:observed], truth[:observed], masks[:observed])}}
    true_heights = None
    if true_anchors is not None:
        true_heights = centroid_heights(true_anchors)[start:]
    return ClipComparison(start, observed, predicted, predicted_masks, truth, truth_masks, background,
                          centroid_heights(prediction.anchors), true_heights, table)
