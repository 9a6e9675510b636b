"""Image strips (PNG) and videos (MP4) of observed vs predicted frames and of the gripper interaction."""
from __future__ import annotations

import os

import cv2
import numpy as np

__all__ = ["label", "mask_overlay", "over_background", "comparison_strip", "comparison_frames", "interaction_strip", "write_png",
           "write_mp4", "draw_marker"]

RESIM_COLOUR = (70, 130, 230)  # RGB frame border: re-simulated (observed window)
FUTURE_COLOUR = (240, 140, 30)  # RGB frame border: predicted future


def _check_rgb(name: str, image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def label(image: np.ndarray, text: str, band: int = 14, scale: float = 0.35) -> np.ndarray:
    """The image with a white text band on top."""
    image = _check_rgb("image", image)
    out = np.full((image.shape[0] + band, image.shape[1], 3), 255, np.uint8)
    out[band:] = image
    cv2.putText(out, text, (2, band - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _border(image: np.ndarray, colour, width: int = 2) -> np.ndarray:
    out = image.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def mask_overlay(image: np.ndarray, true_mask: np.ndarray, predicted_mask: np.ndarray) -> np.ndarray:
    """Outlines on a dimmed image: true mask green, predicted mask red."""
    out = (_check_rgb("image", image).astype(np.float32) * 0.5 + 64).astype(np.uint8)
    for mask, colour in ((true_mask, (0, 200, 0)), (predicted_mask, (230, 0, 0))):
        contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, 1)
    return out


def _rows(truth, predicted, truth_masks, predicted_masks, index: int, observed: int, start: int) -> list:
    kind = "resim" if index < observed else "future"
    colour = RESIM_COLOUR if index < observed else FUTURE_COLOUR
    number = start + index + 1  # 1-based clip frame number, as in the paper
    return [label(truth[index], f"frame {number} obs"),
            label(_border(predicted[index], colour), f"{number} {kind}"),
            label(mask_overlay(truth[index], truth_masks[index], predicted_masks[index]), f"{number} masks")]


def _pick_frames(total: int, observed: int, columns: int) -> np.ndarray:
    """Frame indices spread over the observed window and over the future, in proportion, both ends included."""
    observed = min(max(observed, 0), total)
    n_obs = min(observed, max(1, round(columns * observed / total)))
    n_fut = min(total - observed, max(1, columns - n_obs)) if observed < total else 0
    picks = [np.linspace(0, observed - 1, n_obs), np.linspace(observed, total - 1, n_fut)]
    return np.unique(np.concatenate(picks).round().astype(int))


def comparison_strip(truth: np.ndarray, predicted: np.ndarray, truth_masks: np.ndarray,
                     predicted_masks: np.ndarray, observed: int, start: int = 0, columns: int = 10) -> np.ndarray:
    """Grid image: columns = frames spread over the clip; rows = observed, re-simulated / predicted (blue / orange
    border), mask outlines (green true, red predicted). Inputs (T, H, W, 3) uint8 and (T, H, W) masks."""
    if truth.shape != predicted.shape or len(truth) == 0:
        raise ValueError(f"truth {truth.shape} and predicted {predicted.shape} must be equal, non-empty (T, H, W, 3)")
    picks = _pick_frames(len(truth), observed, columns)
    cols = [np.concatenate(_rows(truth, predicted, truth_masks, predicted_masks, i, observed, start), 0)
            for i in picks]
    gap = np.full((cols[0].shape[0], 3, 3), 255, np.uint8)
    return np.concatenate([c for col in cols for c in (col, gap)][:-1], 1)


def comparison_frames(truth, predicted, truth_masks, predicted_masks, observed: int, start: int = 0,
                      scale: int = 3) -> list[np.ndarray]:
    """One side-by-side image per frame (observed | predicted | masks), upscaled `scale` times, for a video."""
    frames = []
    for i in range(len(truth)):
        row = np.concatenate(_rows(truth, predicted, truth_masks, predicted_masks, i, observed, start), 1)
        frames.append(cv2.resize(row, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST))
    return frames


def over_background(render: np.ndarray, background: np.ndarray, white_level: int = 250) -> np.ndarray:
    """A render made over a white background (the simulation node's sim/image) with its white pixels replaced by
    `background` (same size): the object shown in the scene. Near-white object pixels would be lost too."""
    render, background = _check_rgb("render", render), _check_rgb("background", background)
    if render.shape != background.shape:
        raise ValueError(f"render {render.shape} and background {background.shape} differ in size")
    empty = (render >= white_level).all(-1, keepdims=True)  # (H, W, 1)
    return np.where(empty, background, render)


def draw_marker(image: np.ndarray, uv, closed: bool, radius: int = 5) -> np.ndarray:
    """A gripper marker at pixel uv: filled red when closed, hollow yellow when open."""
    out = _check_rgb("image", image).copy()
    u, v = (int(round(float(c))) for c in uv)
    if closed:
        cv2.circle(out, (u, v), radius, (220, 0, 0), -1, cv2.LINE_AA)
    else:
        cv2.circle(out, (u, v), radius, (240, 200, 0), 2, cv2.LINE_AA)
    return out


def interaction_strip(frames: list[np.ndarray], captions: list[str], columns: int = 4) -> np.ndarray:
    """Grid of captioned frames (row-major)."""
    if not frames or len(frames) != len(captions):
        raise ValueError(f"need as many captions as frames (> 0), got {len(frames)} frames, {len(captions)} captions")
    tiles = [label(f, c) for f, c in zip(frames, captions)]
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[r:r + columns], 1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, 0)


def write_png(path: str, rgb: np.ndarray) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(_check_rgb("image", rgb)[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path


def write_mp4(path: str, frames: list[np.ndarray], fps: float) -> str | None:
    """MP4 (mp4v) of equal-size RGB frames; None when this OpenCV build cannot write video."""
    if not frames:
        raise ValueError("no frames to write")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        return None
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(_check_rgb("frame", frame)[..., ::-1]))
    finally:
        writer.release()
    return path if os.path.exists(path) and os.path.getsize(path) > 0 else None
