"""Compositing rendered objects into camera frames: the static background a clip shows behind its object, and a
premultiplied render over it (the demo's and the evaluation's predicted frames)."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .images import to_uint8

__all__ = ["estimate_background", "composite"]


def estimate_background(frames: np.ndarray, masks: np.ndarray, dilate_px: int = 2) -> np.ndarray:
    """Static background (H, W, 3) uint8 from frames (T, H, W, 3) uint8 and object masks (T, H, W): per-pixel
    mean over the frames where the (dilated) mask is off; pixels covered in every frame are inpainted."""
    frames, masks = np.asarray(frames), np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got shape {frames.shape}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be (T, H, W) = {frames.shape[:3]}, got shape {masks.shape}")
    kernel = np.ones((2 * dilate_px + 1, 2 * dilate_px + 1), np.uint8)
    covered = np.stack([cv2.dilate((m > 0).astype(np.uint8), kernel) > 0 for m in masks])  # (T, H, W)
    free = (~covered).astype(np.float64)[..., None]  # (T, H, W, 1)
    count = free.sum(0)  # (H, W, 1)
    mean = (frames.astype(np.float64) * free).sum(0) / np.maximum(count, 1)
    background = np.clip(mean + 0.5, 0, 255).astype(np.uint8)
    holes = (count[..., 0] == 0).astype(np.uint8)
    if holes.all():
        raise ValueError("the object covers every pixel in every frame: no background to estimate")
    if holes.any():  # always-covered pixels: fill from their surroundings
        background = cv2.inpaint(background, holes, 3, cv2.INPAINT_TELEA)
    return background


def composite(color: torch.Tensor, alpha: torch.Tensor, background: np.ndarray) -> np.ndarray:
    """Premultiplied render colour (T, H, W, 3) + alpha (T, H, W) over a background (H, W, 3) uint8 -> uint8."""
    bg = torch.as_tensor(background, dtype=torch.float32, device=color.device) / 255.0
    rgb = color + (1.0 - alpha)[..., None] * bg
    return to_uint8(rgb)
