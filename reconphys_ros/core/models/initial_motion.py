"""Initial velocity of a dropped object from the first frames' mask centroids (one calibrated camera).

The object's centre starts at a known world point c0 (the reconstructed Gaussians' centroid) and, before it
touches the ground, moves ballistically: X(t) = c0 + v t + g t^2 / 2. We fit v (3,) so that the projections of
X(t) match the mask centroids. Motion along the optical axis is nearly invisible from one view and trades off
against the vertical speed when the camera looks down, so a strong penalty pins that component to ~0. Only frames before the predicted ground impact count:
the fit starts with the first frames, predicts when the lowest point reaches z = 0, and refits on the frames
before that time.
"""
from __future__ import annotations

import numpy as np

from ..physics.params import GRAVITY
from ..render.camera import Camera

__all__ = ["mask_centroids", "estimate_initial_velocity"]

MIN_FIT_FRAMES = 3
MAX_FIT_FRAMES = 10
RIDGE = 1e-2  # px per (m/s): weak pull of v towards 0 (regularises the fit)
AXIS_WEIGHT = 1e3  # px per (m/s): motion along the optical axis is unobservable from one view; pin it to ~0


def mask_centroids(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W) masks -> centroids (T, 2) in pixel coordinates (centres at +0.5) and a (T,) validity flag."""
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
    cents = np.zeros((masks.shape[0], 2))
    valid = np.zeros(masks.shape[0], bool)
    for t, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if xs.size:
            cents[t] = (xs.mean() + 0.5, ys.mean() + 0.5)
            valid[t] = True
    return cents, valid


def _project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """World points (M, 3) -> pixels (M, 2)."""
    w2c = camera.world_to_cam.detach().cpu().double().numpy()
    K = camera.K.detach().cpu().double().numpy()
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    uv = cam @ K.T
    return uv[:, :2] / np.maximum(uv[:, 2:3], 1e-6)


def _fit(centre: np.ndarray, cents: np.ndarray, times: np.ndarray, camera: Camera) -> np.ndarray:
    from scipy.optimize import least_squares

    g = np.asarray(GRAVITY)
    axis = camera.world_to_cam.detach().cpu().double().numpy()[2, :3]  # optical axis in world coordinates

    # Displacements relative to the first fitted frame cancel the offset between the mask centroid and the
    # projected 3D centroid (they differ for asymmetric shapes).
    start = _project(centre[None], camera)[0]
    seen = cents - cents[0]

    def residuals(v: np.ndarray) -> np.ndarray:
        dt = times - times[0]
        world = centre + np.outer(dt, v) + 0.5 * np.outer(dt**2, g)  # (M, 3)
        return np.concatenate([(_project(world, camera) - start - seen).ravel(), RIDGE * v, [AXIS_WEIGHT * float(axis @ v)]])

    return least_squares(residuals, np.zeros(3), method="lm").x


def estimate_initial_velocity(masks: np.ndarray, camera: Camera, centre: np.ndarray, bottom_height: float,
                              fps: float = 30.0) -> np.ndarray:
    """World velocity (3,) m/s of the object at frame 0.

    masks: (T, H, W) observed masks (object > 0); camera: the view that took them; centre: (3,) world centroid of
    the reconstructed object at frame 0; bottom_height: its lowest point above the ground (m)."""
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps}")
    centre = np.asarray(centre, np.float64).reshape(3)
    if not np.isfinite(centre).all():
        raise ValueError("centre must be a finite 3-vector")
    cents, valid = mask_centroids(masks)
    times = np.arange(len(cents)) / fps
    if not valid[0]:
        raise ValueError("the first mask is empty: the object must be visible at frame 0")
    use = np.nonzero(valid)[0][:MAX_FIT_FRAMES]
    if use.size < 2:
        raise ValueError("need at least 2 frames with a non-empty mask to estimate the initial velocity")
    first = use[:max(MIN_FIT_FRAMES, 2)]
    v = _fit(centre, cents[first], times[first], camera)
    # Frames before the lowest point would hit the ground under this ballistic motion.
    gz = -GRAVITY[2]
    disc = v[2] ** 2 + 2 * gz * max(float(bottom_height), 0.0)
    impact = (v[2] + np.sqrt(disc)) / gz
    before = use[times[use] < impact]
    if before.size >= max(MIN_FIT_FRAMES, 2) and before.size != first.size:
        v = _fit(centre, cents[before], times[before], camera)
    return v.astype(np.float32)
