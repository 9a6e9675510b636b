"""Where the object is along the camera rays at frame 0: the metric depth that fixes a monocular reconstruction's scale.

Choosing the depth (`DepthPrior`, first option that is set wins):
1. `depth`: the camera-frame depth (m, along the optical axis) of the object's centre, when known;
2. `object_size`: the object's largest extent in metres: depth = focal x size / largest bbox side (px);
3. `fall_track`: mask centroids of a free fall over several frames: the depth at which gravity (9.81 m/s^2)
   explains the observed pixel acceleration (`depth_from_free_fall`) -- the best choice for drop videos;
4. `ground_contact=True`: the silhouette's lowest point touches the ground plane z = 0 (object at rest);
5. otherwise: the object hangs above the scene origin: the depth where the ray through the silhouette's
   centroid passes closest to the world z axis (the drop rigs and dataset cameras all look at it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics.params import GRAVITY_MAGNITUDE
from ..render.camera import Camera

__all__ = ["DepthPrior", "FallTrack", "estimate_depth", "depth_from_free_fall", "camera_arrays", "pixel_rays"]

# Free-fall depth fit: the shortest usable track; a longer prefix is accepted while its fit error stays within
# FALL_FIT_GROWTH x the first fit's (the centroid noise of this track), at least MAX_FALL_FIT_PX. Looser bounds
# (0.5 px) let the first frames after the impact in and under-estimated the depth by up to 2x (test splits).
MIN_FALL_FRAMES = 5
MIN_FALL_PX = 3.0
MAX_FALL_FIT_PX = 0.1
FALL_FIT_GROWTH = 3.0
# A first fit worse than this (px RMS) is a failed fit (a local minimum), not centroid noise: it may not set
# the tolerance of the prefix growth. Depths are searched within this range (metres).
MAX_FIRST_FIT_PX = 1.5
DEPTH_RANGE = (0.05, 200.0)


@dataclass(frozen=True)
class FallTrack:
    """Image positions of a falling object's mask centroid over time."""

    centroids: np.ndarray  # (T, 2) pixel coordinates (u, v), pixel centres at +0.5 (Camera convention)
    stamps: np.ndarray  # (T,) seconds
    # (T, 2) lowest silhouette point (u, bottom edge v) per frame, or None: with it the fit stops at the impact
    bottoms: np.ndarray | None = None

    def __post_init__(self) -> None:
        centroids = np.asarray(self.centroids, dtype=np.float64)
        stamps = np.asarray(self.stamps, dtype=np.float64)
        if self.bottoms is not None:
            bottoms = np.asarray(self.bottoms, dtype=np.float64)
            if bottoms.shape != centroids.shape or not np.isfinite(bottoms).all():
                raise ValueError(f"FallTrack.bottoms must be finite with the centroids' shape {centroids.shape}, "
                                 f"got {bottoms.shape}")
            object.__setattr__(self, "bottoms", bottoms)
        if centroids.ndim != 2 or centroids.shape[1] != 2 or stamps.shape != (centroids.shape[0],):
            raise ValueError(f"FallTrack needs centroids (T, 2) and stamps (T,), got {centroids.shape}, {stamps.shape}")
        if centroids.shape[0] < 3:
            raise ValueError(f"FallTrack needs at least 3 frames to see an acceleration, got {centroids.shape[0]}")
        if not (np.isfinite(centroids).all() and np.isfinite(stamps).all()):
            raise ValueError("FallTrack has non-finite centroids or stamps")
        if np.any(np.diff(stamps) <= 0):
            raise ValueError("FallTrack stamps must increase")
        object.__setattr__(self, "centroids", centroids)
        object.__setattr__(self, "stamps", stamps)

    @staticmethod
    def from_masks(masks: np.ndarray, stamps: np.ndarray) -> "FallTrack":
        """Centroids of (T, H, W) masks (object > 0); frames with an empty mask are skipped."""
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (T, H, W), got {masks.shape}")
        stamps = np.asarray(stamps, dtype=np.float64)
        if stamps.shape != (masks.shape[0],):
            raise ValueError(f"need one stamp per mask: {stamps.shape} stamps for {masks.shape[0]} masks")
        points, lows, times = [], [], []
        for mask, stamp in zip(masks, stamps):
            ys, xs = np.nonzero(mask)
            if xs.size:
                points.append((xs.mean() + 0.5, ys.mean() + 0.5))
                low = ys.max()
                lows.append((xs[ys == low].mean() + 0.5, low + 1.0))
                times.append(stamp)
        return FallTrack(np.array(points).reshape(-1, 2), np.array(times), np.array(lows).reshape(-1, 2))


@dataclass(frozen=True)
class DepthPrior:
    """How far from the camera the object is; see the module docstring for the order of precedence."""

    depth: float | None = None
    object_size: float | None = None
    fall_track: FallTrack | None = None
    ground_contact: bool = False

    def __post_init__(self) -> None:
        for name in ("depth", "object_size"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise ValueError(f"DepthPrior.{name} must be a positive number of metres, got {value}")


# ---------------------------------------------------------------------------- geometry helpers
def camera_arrays(camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 K (3, 3), rotation world->camera (3, 3), translation (3,)."""
    K = camera.K.detach().cpu().double().numpy()
    w2c = camera.world_to_cam.detach().cpu().double().numpy()
    return K, w2c[:3, :3], w2c[:3, 3]


def pixel_rays(K: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pixel coordinates (M,) -> camera-frame ray directions (M, 3) scaled to unit depth (z = 1)."""
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def _fit_free_fall(
    centroids: np.ndarray, t: np.ndarray, K: np.ndarray, rot: np.ndarray, trans: np.ndarray, gravity: float,
    start: np.ndarray | None = None,
) -> tuple[float, float, np.ndarray]:
    """Least-squares depth of the first centroid, its fit error (px RMS) and the parameters
    (log depth, velocity (3,)) for one free-fall track; `start` warm-starts from earlier parameters."""
    from scipy.optimize import least_squares

    centre = -rot.T @ trans  # (3,) camera position in the world
    ray0 = rot.T @ pixel_rays(K, centroids[:1, 0], centroids[:1, 1])[0]  # world direction, camera-z = 1

    fall = np.outer(-0.5 * gravity * t * t, [0.0, 0.0, 1.0])  # (T, 3)

    def residuals(params: np.ndarray) -> np.ndarray:
        depth, velocity = np.exp(params[0]), params[1:]
        world = centre + depth * ray0 + np.outer(t, velocity) + fall  # (T, 3)
        cam = world @ rot.T + trans
        z = np.maximum(cam[:, 2], 1e-6)
        uv = (cam @ K.T)[:, :2] / z[:, None]
        return (uv - centroids).ravel()

    # Starts: the warm start (if any); when it fails, the best depth of a coarse sweep at rest and a few fixed
    # depths: a tossed object's track is far from the at-rest sweep, and a single start can run off to 1e200 m.
    bounds = ([np.log(DEPTH_RANGE[0]), -np.inf, -np.inf, -np.inf], [np.log(DEPTH_RANGE[1]), np.inf, np.inf, np.inf])

    def fit_from(x0: np.ndarray):
        fit = least_squares(residuals, np.clip(x0, bounds[0], bounds[1]), bounds=bounds, method="trf")
        return fit if fit.success else None

    def rms(fit) -> float:  # px
        return float(np.sqrt(np.mean(fit.fun ** 2)))

    best = fit_from(start) if start is not None else None
    if best is None or rms(best) > MAX_FIRST_FIT_PX:
        candidates = np.log(np.geomspace(*DEPTH_RANGE, 80))
        swept = min(candidates, key=lambda c: float(np.sum(residuals(np.array([c, 0.0, 0.0, 0.0])) ** 2)))
        for c in (swept, np.log(0.5), np.log(2.0), np.log(8.0)):
            fit = fit_from(np.array([c, 0.0, 0.0, 0.0]))
            if fit is not None and (best is None or fit.cost < best.cost):
                best = fit
    if best is None:
        return float("nan"), float("inf"), np.zeros(4)
    if not bounds[0][0] + 1e-6 < best.x[0] < bounds[1][0] - 1e-6:
        return float("nan"), rms(best), best.x  # ran into the search range's edge
    return float(np.exp(best.x[0])), rms(best), best.x


def _impact_frames(track: FallTrack, t: np.ndarray, K, rot, trans, gravity: float, params: np.ndarray) -> int:
    """Number of frames before the predicted ground impact of a fitted flight (log depth, velocity (3,))."""
    centre = -rot.T @ trans
    depth, velocity = float(np.exp(params[0])), params[1:]
    rays = (rot.T @ pixel_rays(K, track.centroids[:1, 0], track.centroids[:1, 1]).T).T[0]
    low_ray = rot.T @ pixel_rays(K, track.bottoms[:1, 0], track.bottoms[:1, 1])[0]
    # Height of the centroid above the lowest point at frame 0 (lowest silhouette point at the object's depth).
    below = float((centre + depth * rays)[2] - (centre + depth * low_ray)[2])
    height = (centre + depth * rays)[2] + velocity[2] * t - 0.5 * gravity * t * t - max(below, 0.0)  # (T,)
    landed = np.nonzero(height <= 0.0)[0]
    return int(landed[0]) if landed.size else len(t)


def _refit_before_impact(track: FallTrack, t: np.ndarray, K, rot, trans, gravity: float, depth: float,
                         params: np.ndarray) -> float:
    """Refit on exactly the frames before the predicted impact (a few rounds: the impact moves with the depth)."""
    n_used = None
    for _ in range(4):
        n = _impact_frames(track, t, K, rot, trans, gravity, params)
        if n < MIN_FALL_FRAMES - 1 or n == n_used:
            break
        fit_depth, _, fit_params = _fit_free_fall(track.centroids[:n], t[:n], K, rot, trans, gravity, params)
        if not np.isfinite(fit_depth):
            break
        depth, params, n_used = fit_depth, fit_params, n
    return depth


def depth_from_free_fall(track: FallTrack, camera: Camera, gravity: float = GRAVITY_MAGNITUDE) -> float:
    """Camera depth of the object at the track's first frame, assuming it flies freely (any initial velocity,
    no air drag): fits depth s and initial velocity v so that projecting X(t) = C + s r0 + v t - (0, 0, g t^2 / 2)
    reproduces the centroids; gravity, known in metres, fixes the scale. Only the frames before the object
    lands or bounces are used: the prefix grows while the fit error stays small.
    Raises ValueError when no prefix shows a fall the fit explains."""
    K, rot, trans = camera_arrays(camera)
    t_all = track.stamps - track.stamps[0]  # (T,)
    total = track.centroids.shape[0]
    best, tolerance, params = None, None, None
    # Grow the prefix from the shortest usable one while the model still explains it (it stops at landing).
    for n in range(min(MIN_FALL_FRAMES, total), total + 1):
        centroids = track.centroids[:n]
        drop_px = float(np.ptp(centroids[:, 1]))
        if drop_px < MIN_FALL_PX and best is None:
            continue  # not enough fall yet to measure
        depth, rms, fit_params = _fit_free_fall(centroids, t_all[:n], K, rot, trans, gravity, params)
        plausible = bool(np.isfinite(depth) and depth > 0)  # not behind the camera, not at the search range's edge
        if tolerance is None:
            if not plausible or rms > MAX_FIRST_FIT_PX:
                continue  # no ballistic flight explains this prefix (yet): it may not set the tolerance
            tolerance = max(MAX_FALL_FIT_PX, FALL_FIT_GROWTH * rms)  # adapts to this track's centroid noise
        if not plausible or rms > tolerance:
            break  # landed: the model stops explaining the track (its rejected fit is not used further)
        best, params = depth, fit_params
    if best is not None and track.bottoms is not None:
        best = _refit_before_impact(track, t_all, K, rot, trans, gravity, best, params)
    if best is None:
        raise ValueError(
            f"the centroid track does not look like a free fall: it needs >= {MIN_FALL_PX} px of fall that a "
            "ballistic flight under gravity explains; give DepthPrior.depth or object_size instead"
        )
    return best


def estimate_depth(mask: np.ndarray, camera: Camera, prior: DepthPrior = DepthPrior()) -> float:
    """Camera-frame depth (m) of the object's mid-plane for a non-empty (H, W) mask."""
    object_pixels = np.asarray(mask) > 0
    ys, xs = np.nonzero(object_pixels)
    if xs.size == 0:
        raise ValueError("the mask is empty: no object to place")
    K, rot, trans = camera_arrays(camera)
    focal = 0.5 * (K[0, 0] + K[1, 1])
    if prior.depth is not None:
        return float(prior.depth)
    if prior.object_size is not None:
        extent_px = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        return float(focal * prior.object_size / extent_px)
    if prior.fall_track is not None:
        return depth_from_free_fall(prior.fall_track, camera)
    centre = -rot.T @ trans
    if prior.ground_contact:
        bottom = ys.max()
        u = xs[ys == bottom].mean() + 0.5
        ray = rot.T @ pixel_rays(K, np.array([u]), np.array([bottom + 1.0]))[0]  # bottom edge of that pixel
        if centre[2] <= 0 or ray[2] >= 0:
            raise ValueError(
                "ground_contact needs a camera above the ground looking down at the silhouette's lowest point "
                f"(camera z = {centre[2]:.3f} m, ray z = {ray[2]:.3f}); give DepthPrior.depth instead"
            )
        return float(-centre[2] / ray[2])  # ray has camera-z 1, so the ray parameter is the depth
    # Closest approach of the centroid ray to the world z axis (minimise the horizontal distance).
    ray = rot.T @ pixel_rays(K, np.array([xs.mean() + 0.5]), np.array([ys.mean() + 0.5]))[0]
    horizontal = ray[:2] @ ray[:2]
    depth = -(centre[:2] @ ray[:2]) / horizontal if horizontal > 1e-9 else float(trans[2])  # looking straight down
    if not depth > 0:
        raise ValueError(
            "the world z axis is behind the camera along the silhouette's ray, so the default depth guess fails; "
            "give DepthPrior.depth, object_size, fall_track or ground_contact"
        )
    return float(depth)
