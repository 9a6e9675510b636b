"""Frame-0 state of a dropped or tossed object from one calibrated camera: depth, velocity and spin in one fit.

A monocular reconstruction knows the object's shape up to its distance: moving its frame-0 points P (N, 3) along
the camera rays by a factor s about the camera centre C keeps every projection. Before the object touches the
ground it flies freely, so at time t (world z up, ground z = 0, gravity g known in metres)

    X_i(t) = c + v t + g t^2 / 2 + R(w t) s (P_i - P_mean),        c = C + s (P_mean - C)

and the fit finds s (the depth), v (3,) and w (3,) from the mask track, every cue in one least-squares problem
(robust loss, px-like units):
- centroid path: its ballistic curvature fixes the scale (gravity is known in metres);
- apparent size (1/4 ln det of the mask's 2D covariance: the log of its radius, scaled to px of radius): looming,
  i.e. motion along the optical axis, which the centroid alone cannot tell from vertical motion when the camera
  looks down;
- shape (the covariance's normalised anisotropy, as px): the mask's rotation and shape change, i.e. spin;
- the ground: no point below z = 0 in the fitted frames (a hinge).
Each image cue is compared as a change from frame 0: a filled silhouette and projected volume points differ in
their 2D moments by a nearly constant factor (exactly 4/5 in covariance for an ellipsoid at any orientation),
which the difference cancels; so does the offset between the mask centroid and the projected 3D centroid.

Only frames before the ground impact count: the fit predicts when the lowest point reaches z = 0, refits on the
frames before it and repeats. Every estimate carries a standard deviation from the fit's Gauss-Newton covariance.
Nothing pins a velocity component; weak ridges only keep unobservable directions (a sphere's spin) at zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..clip_timing import frame_times
from ..geometry import rigid_velocity
from ..physics.params import GRAVITY
from ..render.camera import Camera

__all__ = ["InitialState", "MaskMoments", "fit_initial_state", "rotation_matrices", "MIN_FIT_FRAMES"]

MIN_FIT_FRAMES = 3  # fewer frames than this before the impact: the state cannot be fitted (velocity + curvature)
MAX_FIT_FRAMES = 20
SCALE_RANGE = (0.2, 5.0)  # the fit may move the object along its rays by these factors
RESIDUAL_SCALE_PX = 0.5  # robust loss: residuals beyond this many px count linearly (impact frames, segmentation)
NOISE_FLOOR_PX = 0.25  # smallest per-residual noise assumed for the uncertainties
GROUND_WEIGHT = 3.0  # px of residual per px of the object sunk below z = 0
VELOCITY_RIDGE = 0.02  # px per m/s
SPIN_RIDGE = 1.0  # px per rad/s: an unobservable spin (a sphere's, a cylinder's about its axis) stays at zero
SPIN_STARTS = (2.0, 6.0, 12.0)  # rad/s magnitudes tried along +-x, +-y, +-z (and zero)
SPIN_FITS = 2  # full fits from the best of those starts
MAX_EVALUATIONS = 60  # per least-squares fit: an ill-posed spin (few frames, a symmetric body) stops here
TRUST_REL_DEPTH_STD = 0.25  # a fitted depth less certain than this (std / depth) is not used
TRUST_RMS_PX = 2.0  # nor is one whose residuals are this large (RMS over the image cues)


@dataclass(frozen=True)
class MaskMoments:
    """Per-frame 2D moments of a mask track (frames with an empty mask are invalid)."""

    centroids: np.ndarray  # (T, 2) px, pixel centres at +0.5
    log_radius: np.ndarray  # (T,) 1/4 ln det of the 2D covariance (ln px)
    anisotropy: np.ndarray  # (T, 2) ((sxx - syy) / 2, sxy) / sqrt(det)
    valid: np.ndarray  # (T,) bool: the mask has pixels
    clipped: np.ndarray  # (T,) bool: the mask touches the image border (the object leaves the view: moments biased)

    @staticmethod
    def from_masks(masks: np.ndarray) -> "MaskMoments":
        masks = np.asarray(masks)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (T, H, W), got shape {masks.shape}")
        T = masks.shape[0]
        cents, logr, aniso, valid = np.zeros((T, 2)), np.zeros(T), np.zeros((T, 2)), np.zeros(T, bool)
        clipped = np.zeros(T, bool)
        for t, mask in enumerate(masks):
            ys, xs = np.nonzero(mask > 0)
            if xs.size < 3:
                continue
            clipped[t] = xs.min() == 0 or ys.min() == 0 or xs.max() == mask.shape[1] - 1 or ys.max() == mask.shape[0] - 1
            pts = np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float64)  # (M, 2)
            cents[t] = pts.mean(0)
            d = pts - cents[t]
            # + 1/12: a pixel is a unit square, not a point (keeps 1-pixel-wide masks non-degenerate)
            logr[t], aniso[t] = _moment_shape((d[:, 0] ** 2).mean() + 1 / 12, (d[:, 1] ** 2).mean() + 1 / 12,
                                              (d[:, 0] * d[:, 1]).mean())
            valid[t] = True
        return MaskMoments(cents, logr, aniso, valid, clipped)


def _moment_shape(sxx, syy, sxy) -> tuple[np.ndarray, np.ndarray]:
    """2D covariance entries (...) -> 1/4 ln det (...) (the log of the spread's radius) and the normalised
    anisotropy ((sxx - syy) / 2, sxy) / sqrt(det) (..., 2): the size and shape cues of masks and projections alike."""
    det = np.maximum(sxx * syy - sxy**2, 1e-12)
    return 0.25 * np.log(det), np.stack([0.5 * (sxx - syy), sxy], -1) / np.sqrt(det)[..., None]


def _shapes(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Projected points (..., M, 2) -> centroids (..., 2), 1/4 ln det (...,), anisotropy (..., 2) of their
    covariance."""
    mean = uv.mean(-2)
    d = uv - mean[..., None, :]
    return (mean, *_moment_shape((d[..., 0] ** 2).mean(-1), (d[..., 1] ** 2).mean(-1),
                                 (d[..., 0] * d[..., 1]).mean(-1)))


def rotation_matrices(rotvecs: np.ndarray) -> np.ndarray:
    """Rotation vectors (F, 3) (axis x angle, rad) -> rotation matrices (F, 3, 3) (Rodrigues)."""
    rotvecs = np.asarray(rotvecs, np.float64).reshape(-1, 3)
    theta = np.linalg.norm(rotvecs, axis=1)  # (F,)
    safe = np.where(theta > 1e-12, theta, 1.0)
    k = rotvecs / safe[:, None]
    K = np.zeros((len(k), 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K[:, 1, 0], K[:, 2, 0], K[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    small = (theta < 1e-12)[:, None, None]
    return np.where(small, np.eye(3), np.eye(3) + s * K + (1 - c) * (K @ K))


@dataclass(frozen=True)
class InitialState:
    """The object's state at frame 0 (world frame, SI), each estimate with its standard deviation."""

    scale: float  # factor the fit moved the given frame-0 points along their rays (about the camera centre)
    depth: float  # camera-frame depth (m, along the optical axis) of the points' centroid after that move
    centre: np.ndarray  # (3,) the points' centroid after the move, m
    velocity: np.ndarray  # (3,) m/s of that centroid
    angular_velocity: np.ndarray  # (3,) rad/s about it
    depth_std: float  # m
    velocity_std: np.ndarray  # (3,) m/s
    angular_velocity_std: np.ndarray  # (3,) rad/s
    impact_frame: int | None  # first frame at or after the predicted ground contact (None: not within the clip)
    fit_frames: int  # frames before the impact that the fit used
    rms_px: float  # RMS of the image residuals at the fit
    trusted: bool  # the depth passed the checks (TRUST_*); otherwise `scale` is 1 and `notes` say why
    notes: list = field(default_factory=list)

    def velocity_at(self, point) -> np.ndarray:
        """(3,) velocity (m/s) at a world point of the rigid motion (v + w x (point - centre))."""
        return rigid_velocity(np.reshape(point, (1, 3)), self.velocity, self.angular_velocity, self.centre)[0]


def _hull_vertices(offsets: np.ndarray) -> np.ndarray:
    """(H, 3) convex-hull vertices of points (N, 3) (all points when they span no volume)."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return offsets[ConvexHull(offsets).vertices]
    except (QhullError, ValueError):
        return offsets


class _Problem:
    """The residuals of one fit: the mask moments of the given frames against the moved, flying, spinning object.

    The object enters through its 3D centroid and covariance: the image cues use the unscented transform of its
    six sigma points (the projected mean and covariance, exact for an affine camera and correct to second order
    under perspective), the ground hinge its convex hull's vertices."""

    def __init__(self, points: np.ndarray, moments: MaskMoments, camera: Camera, times: np.ndarray):
        K = camera.K.detach().cpu().double().numpy()
        w2c = camera.world_to_cam.detach().cpu().double().numpy()
        self.K, self.rot, self.trans = K, w2c[:3, :3], w2c[:3, 3]
        self.eye = -self.rot.T @ self.trans  # (3,) camera centre in the world
        self.mean = points.mean(0)
        offsets = points - self.mean  # (N, 3)
        evals, evecs = np.linalg.eigh(np.cov(offsets.T, bias=True))
        axes = evecs * np.sqrt(3.0 * np.clip(evals, 0.0, None))  # (3, 3) columns: sigma-point offsets
        self.sigma = np.concatenate([axes.T, -axes.T])  # (6, 3)
        self.hull = _hull_vertices(offsets)  # (H, 3)
        self.moments, self.times = moments, times
        self.gravity = np.asarray(GRAVITY, np.float64)
        depth = float((self.rot @ self.mean + self.trans)[2])
        self.px_per_m = float(K[0, 0]) / max(depth, 1e-6)  # at scale 1
        self.radius_px = 2.0 * math.exp(float(moments.log_radius[0]))  # image cues in px of the object's radius

    def _motion(self, thetas: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """thetas (B, 7) of (ln s, v (3,), w (3,)) -> scale (B,), centre path (B, F, 3), rotations (B, F, 3, 3)."""
        s, v, w = np.exp(thetas[:, 0]), thetas[:, 1:4], thetas[:, 4:7]
        centre = self.eye + s[:, None] * (self.mean - self.eye)  # (B, 3)
        B, F = len(thetas), len(times)
        if np.any(w):
            rot = rotation_matrices((times[None, :, None] * w[:, None, :]).reshape(-1, 3)).reshape(B, F, 3, 3)
        else:
            rot = np.broadcast_to(np.eye(3), (B, F, 3, 3))
        path = (centre[:, None] + times[None, :, None] * v[:, None]
                + 0.5 * (times**2)[None, :, None] * self.gravity)  # (B, F, 3)
        return s, path, rot

    @staticmethod
    def positions(offsets: np.ndarray, motion) -> np.ndarray:
        """World points (B, F, M, 3) of body `offsets` (M, 3) under `motion` (_motion's scale, path, rotations)."""
        s, path, rot = motion
        body = (rot @ offsets.T).transpose(0, 1, 3, 2) * s[:, None, None, None]  # (B, F, M, 3)
        return path[:, :, None, :] + body

    def lowest(self, thetas: np.ndarray, times: np.ndarray, motion=None) -> np.ndarray:
        """(B, F) height of the object's lowest point (its hull's) above the ground."""
        s, path, rot = self._motion(thetas, times) if motion is None else motion
        return path[..., 2] + s[:, None] * (rot[:, :, 2, :] @ self.hull.T).min(-1)

    def project(self, world: np.ndarray) -> np.ndarray:
        cam = world @ self.rot.T + self.trans
        uv = cam @ self.K.T
        return uv[..., :2] / np.maximum(uv[..., 2:3], 1e-6)

    def batch_residuals(self, thetas: np.ndarray, frames: np.ndarray, spin: bool = True) -> np.ndarray:
        """Residuals (B, R) of thetas (B, 7): image cues (px) of `frames` (F,) relative to frame 0 (F x 5: centroid,
        size, anisotropy; the anisotropy only with `spin`), the ground hinge (F + 1) and the ridges."""
        if not spin:
            thetas = np.concatenate([thetas[:, :4], np.zeros((len(thetas), 3))], 1)
        times = self.times[np.concatenate([[0], frames])]
        motion = self._motion(thetas, times)
        cents, logr, aniso = _shapes(self.project(self.positions(self.sigma, motion)))
        m = self.moments
        image = [
            (cents[:, 1:] - cents[:, :1]) - (m.centroids[frames] - m.centroids[0]),
            self.radius_px * ((logr[:, 1:] - logr[:, :1]) - (m.log_radius[frames] - m.log_radius[0]))[..., None],
        ]
        if spin:
            image.append(self.radius_px * ((aniso[:, 1:] - aniso[:, :1]) - (m.anisotropy[frames] - m.anisotropy[0])))
        B = len(thetas)
        sunk = np.maximum(-self.lowest(thetas, times, motion), 0.0)  # (B, F + 1) m below the ground
        parts = [np.concatenate(image, -1).reshape(B, -1), GROUND_WEIGHT * self.px_per_m * sunk,
                 VELOCITY_RIDGE * thetas[:, 1:4]]
        if spin:
            parts.append(SPIN_RIDGE * thetas[:, 4:7])
        return np.concatenate(parts, 1)

    def residuals(self, theta: np.ndarray, frames: np.ndarray, spin: bool = True) -> np.ndarray:
        return self.batch_residuals(np.asarray(theta, np.float64)[None], frames, spin)[0]

    def image_rms(self, theta: np.ndarray, frames: np.ndarray) -> float:
        n_image = 5 * len(frames)
        return float(np.sqrt(np.mean(self.residuals(theta, frames)[:n_image] ** 2)))

    def impact_time(self, theta: np.ndarray, horizon: float) -> float | None:
        """First time (s) within [0, horizon] at which the lowest point reaches z = 0 (None: not before)."""
        times = np.linspace(0.0, horizon, max(int(horizon * 240), 2) + 1)
        low = self.lowest(np.asarray(theta)[None], times)[0]  # (F,)
        below = np.nonzero(low <= 0.0)[0]
        if below.size == 0:
            return None
        i = int(below[0])
        if i == 0:
            return 0.0
        return float(times[i - 1] + (times[i] - times[i - 1]) * low[i - 1] / (low[i - 1] - low[i]))


def _least_squares(problem: _Problem, theta0: np.ndarray, frames: np.ndarray, spin: bool, fixed_scale: bool):
    from scipy.optimize import least_squares

    lo = np.full(7, -np.inf)
    hi = np.full(7, np.inf)
    lo[0], hi[0] = math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])
    free = np.arange(1 if fixed_scale else 0, 7 if spin else 4)

    def fun(x: np.ndarray) -> np.ndarray:
        theta = theta0.copy()
        theta[free] = x
        return problem.residuals(theta, frames, spin)

    def jac(x: np.ndarray) -> np.ndarray:  # forward differences, all parameters in one batched evaluation
        thetas = np.repeat(theta0[None], len(free) + 1, 0)
        thetas[:, free] = x
        steps = 1e-7 * np.maximum(np.abs(x), 1.0)
        thetas[1 + np.arange(len(free)), free] += steps
        r = problem.batch_residuals(thetas, frames, spin)
        return ((r[1:] - r[0]) / steps[:, None]).T

    x0 = np.clip(theta0[free], lo[free] + 1e-9, hi[free] - 1e-9)
    fit = least_squares(fun, x0, jac=jac, bounds=(lo[free], hi[free]), loss="soft_l1", f_scale=RESIDUAL_SCALE_PX,
                        x_scale=np.where(free == 0, 0.1, 1.0), max_nfev=MAX_EVALUATIONS)
    theta = theta0.copy()
    theta[free] = fit.x
    return theta, fit, free


def _fit_once(problem: _Problem, theta_guess: np.ndarray, frames: np.ndarray, fixed_scale: bool,
              explore: bool = True, wide: bool = False) -> tuple:
    """Translational fit (multi-start in scale when `wide`: no velocity guess) then the spin (multi-start in w) ->
    (theta, fit, free); without `explore`, one fit of everything from `theta_guess` (a refit on other frames)."""
    if not explore:
        return _least_squares(problem, theta_guess, frames, spin=True, fixed_scale=fixed_scale)
    scales = [theta_guess[0]] if fixed_scale or not wide else [theta_guess[0], theta_guess[0] + math.log(0.6),
                                                               theta_guess[0] + math.log(1.6)]
    best = None
    for ln_s in scales:
        start = theta_guess.copy()
        start[0], start[4:] = ln_s, 0.0
        theta, fit, _ = _least_squares(problem, start, frames, spin=False, fixed_scale=fixed_scale)
        if best is None or fit.cost < best[1].cost:
            best = (theta, fit)
    theta = best[0]
    # Spin: the cost of each start (cheap), then a full fit from the two best
    starts = [np.zeros(3)] + [sign * mag * axis for axis in np.eye(3) for sign in (1.0, -1.0) for mag in SPIN_STARTS]
    if np.any(theta_guess[4:]):
        starts.append(theta_guess[4:].copy())

    trials = np.repeat(theta[None], len(starts), 0)
    trials[:, 4:] = starts
    costs = np.sum(np.minimum(problem.batch_residuals(trials, frames) ** 2, 25.0), 1)  # (S,)
    ranked = [starts[i] for i in np.argsort(costs)[:SPIN_FITS]]
    best = None
    for w in ranked:
        start = theta.copy()
        start[4:] = w
        result = _least_squares(problem, start, frames, spin=True, fixed_scale=fixed_scale)
        if best is None or result[1].cost < best[1].cost:
            best = result
    return best


def _stds(fit, free: np.ndarray) -> np.ndarray:
    """(7,) standard deviations of theta from the fit's Gauss-Newton covariance ((robust-loss) Jacobian at the fit);
    NaN for the parameters it held fixed."""
    J = fit.jac
    dof = max(J.shape[0] - len(free), 1)
    sigma2 = max(2.0 * fit.cost / dof, NOISE_FLOOR_PX**2)
    try:
        variances = np.diag(sigma2 * np.linalg.pinv(J.T @ J))
    except np.linalg.LinAlgError:
        variances = np.full(len(free), np.inf)
    std = np.full(7, np.nan)
    std[free] = np.sqrt(np.clip(variances, 0.0, None))
    return std


def fit_initial_state(points: np.ndarray, masks: np.ndarray, camera: Camera, fps: float,
                      velocity_guess=None, max_frames: int = MAX_FIT_FRAMES, trust_depth: bool = True,
                      depth_near: bool = False, times=None) -> InitialState:
    """Joint fit of the frame-0 state (module docstring).

    points: (N, 3) world frame-0 reconstruction (e.g. Gaussian centres) at its current depth; masks: (T, H, W) the
    observed masks (object > 0, frame 0 non-empty); camera: the view that took them; fps: frames per second;
    velocity_guess: (3,) m/s to start from (e.g. the free-fall depth fit's); trust_depth=False keeps the points'
    depth (a known depth) and fits the motion only; depth_near: the points' depth is already close (a free-fall fit
    placed them), so the depth is searched from there only, not also from 0.6x and 1.6x. times: (T,) seconds of each
    mask since frame 0 when the frames are not evenly spaced (a stream that dropped frames); default t / fps."""
    points = np.asarray(points, np.float64).reshape(-1, 3)
    if points.shape[0] < 4 or not np.isfinite(points).all():
        raise ValueError("points must be >= 4 finite 3D points")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps}")
    moments = MaskMoments.from_masks(masks)
    if not moments.valid[0]:
        raise ValueError("the first mask is empty: the object must be visible at frame 0")
    times = frame_times(masks.shape[0], fps, times)
    problem = _Problem(points, moments, camera, times)
    notes: list[str] = []
    seen = moments.valid & ~moments.clipped
    seen[0] = True
    usable = np.nonzero(seen[:max_frames])[0][1:]
    if usable.size and (moments.clipped[1:usable[-1]]).any():
        notes.append(f"{int(moments.clipped[1:usable[-1]].sum())} frame(s) where the object touches the image border "
                     "were left out of the initial-state fit")
    if usable.size < MIN_FIT_FRAMES - 1:
        raise ValueError(f"need at least {MIN_FIT_FRAMES} frames whose mask is non-empty and inside the image to fit "
                         "the initial state")

    theta = np.zeros(7)
    if velocity_guess is not None:
        guess = np.asarray(velocity_guess, np.float64).reshape(-1)
        if guess.shape != (3,) or not np.isfinite(guess).all():
            raise ValueError(f"velocity_guess must be 3 finite numbers, got {velocity_guess!r}")
        theta[1:4] = guess
    frames = usable[: MIN_FIT_FRAMES + 2]
    fit = free = None
    horizon = float(times[-1]) + 1.0 / fps
    impact = None
    # Fit on the frames before the predicted impact; the impact moves with the fit, so repeat until it settles.
    for attempt in range(4):
        fitted = frames
        theta, fit, free = _fit_once(problem, theta, frames, fixed_scale=not trust_depth, explore=attempt < 2,
                                     wide=velocity_guess is None and not depth_near and attempt == 0)
        impact = problem.impact_time(theta, horizon)
        before = usable if impact is None else usable[times[usable] < impact - 1e-9]
        if before.size < MIN_FIT_FRAMES - 1:
            before = usable[: MIN_FIT_FRAMES - 1]
        # Drop trailing frames the fit does not explain (an impact the fit places too late, a bounce)
        if before.size > MIN_FIT_FRAMES - 1:
            per_frame = np.abs(problem.residuals(theta, before)[: 5 * before.size].reshape(before.size, 5)).max(1)
            bad = per_frame > 3.0 * max(np.median(per_frame), RESIDUAL_SCALE_PX)
            while before.size > MIN_FIT_FRAMES - 1 and bad[before.size - 1]:
                before, bad = before[:-1], bad[:-1]
        if np.array_equal(before, frames):
            break
        frames = before
    frames = fitted

    std = _stds(fit, free)
    if not trust_depth:
        std[0] = 0.0
    rms = problem.image_rms(theta, frames)
    trusted = True
    if trust_depth:
        reasons = []
        if not (np.isfinite(std[0]) and std[0] <= TRUST_REL_DEPTH_STD):
            reasons.append(f"the depth is uncertain (+-{100 * std[0]:.0f}%)")
        if rms > TRUST_RMS_PX:
            reasons.append(f"the flight model leaves {rms:.1f} px RMS")
        if not SCALE_RANGE[0] * 1.01 < math.exp(theta[0]) < SCALE_RANGE[1] / 1.01:
            reasons.append("the depth ran into the search range's edge")
        if reasons:
            trusted = False
            notes.append("initial-state depth not trusted (" + "; ".join(reasons) + "): the given depth is kept")
            at_given = theta.copy()
            at_given[0] = 0.0
            theta, fit, free = _fit_once(problem, at_given, frames, fixed_scale=True)
            std = _stds(fit, free)
            std[0] = TRUST_REL_DEPTH_STD
            rms = problem.image_rms(theta, frames)
            impact = problem.impact_time(theta, horizon)
    scale = math.exp(theta[0])
    centre = problem.eye + scale * (problem.mean - problem.eye)
    depth = float((problem.rot @ centre + problem.trans)[2])
    # the first frame at or after the impact
    impact_frame = None if impact is None else int(np.searchsorted(times, impact - 1e-9))
    if impact_frame is not None and impact_frame >= masks.shape[0]:
        impact_frame = None
    return InitialState(scale, depth, centre, theta[1:4].copy(), theta[4:7].copy(), depth * float(std[0]),
                        std[1:4].copy(), std[4:7].copy(), impact_frame, int(frames.size + 1), rms, trusted, notes)
