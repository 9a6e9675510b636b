"""Physics estimated by simulation: the whole non-learned estimator (`physics_model: simulation`, the fallback
without weights) and the test-time refinement after the learned predictor (`refine`).

From one video only k/m, d/m and f are identifiable (scaling m, k, d together gives the same motion under the
hard ground contact), so we estimate log(k/m) (and refine log(d/m), f) and take the total mass from the user
(`known_mass`, kg) or a prior (a density times the object's volume). Every range is the size-independent one
(physics/params.py: the paper's range at 1 m) converted to the object's size. The loss is the silhouette L2 between the
rendered alpha of the simulated object and the observed masks over the observed frames:

1. sweep: `sweep_points` forward rollouts log-spaced over the allowed k/m range (or around an initial guess),
   then up to 4 more at 1/3 and 2/3 of a step either side of its minimum; candidates that need similar substep
   counts run as copies of the object in one replicated model (one kernel launch per substep for all). The
   estimate is the vertex of the parabola through the minimum and its neighbours (not quantised to the grid);
2. Adam on (log k/m, log d/m, f) with truncated backprop (state detached before every frame), inside the bracket
   of the sweep's neighbours around its minimum (this keeps k/m above the collapse plateau, where the loss is
   flat and its gradients point the wrong way), for as many steps as the wall-time budget allows;
   the lowest loss seen wins. Sweep points whose loss ties the minimum (within plateau_tolerance) are a collapse
   plateau: the stiffest tie is taken.

Uncertainty (one standard deviation, reported per quantity):
- log(k/m): a parabola through the sweep's minimum and its two neighbours gives the curvature c of the loss in
  log(k/m); the near-optimal set {L <= L_min (1 + tolerance)} then has half-width sqrt(2 tolerance L_min / c),
  which we report as sigma_log. Without a usable curvature (minimum at the sweep's edge, flat loss), sigma_log is
  the half-width of the sweep points inside that set (at least one sweep step).
- d/m and f are weakly visible in a 0.67 s clip (DESIGN.md probe): their std is the prior's (log-uniform over the
  range for d/m, uniform over [0, 1] for f), not a measurement.
- mass: 0 when given, else the log-uniform prior's spread; k and d combine the ratio's and the mass's log-spreads.
  Standard deviations in linear units are value * sigma_log (first order).

Speed: estimation runs on its own small lattice (`estimation_lattice`, default 256 anchors, K = 24); parameters
are resolution independent (physics/lattice.py), so the result holds for the asset's lattice too. Rendering uses
a subset of the Gaussians at a reduced resolution. The rollout and its loss are models/silhouette_rollout.py, the
same path as the predictor's training loss (here: silhouette only, the subset's widening fitted to the first mask,
every frame_stride-th frame compared).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..asset import PhysicsEstimate
from ..gaussians import GaussianCloud
from ..geometry import rigid_velocity
from ..physics import LatticeConfig, PhysicsParams, sample_anchors
from ..physics.params import (CONTACT_DAMPING_PRIOR, CONTACT_DAMPING_RANGE, DAMPING_PER_MASS_PRIOR, FRICTION_PRIOR,
                              RATIO_RANGES, REFERENCE_NUM_ANCHORS, dissipation_from_contact_damping,
                              log_uniform_sigma, mass_prior, object_size, object_volume, paper_from_ratios,
                              ratios_from_size_independent)
from ..render import Camera
from . import silhouette_rollout as sr
from .physics_predictor import mask_statistics

__all__ = ["CONTACT_DAMPING_GRID", "CONTACT_OBJECTIVES", "ContactDampingResult", "ESTIMATION_LATTICE", "RefineConfig", "RefineResult",
           "estimate_contact_damping", "estimate_physics"]

# Small enough to be fast (rendering dominates), large enough that soft objects do not collapse on it whatever the
# anchor seed; the 0.92 correction maps it onto the coarse lattice (fit and figures: MODEL_CARD.md).
ESTIMATION_LATTICE = LatticeConfig(256, 24, name="estimation", stiffness_correction=0.92, damping_correction=0.92)


@dataclass(frozen=True)
class RefineConfig:
    """Settings of the non-learned physics estimation (see the module docstring for the method)."""

    budget_s: float = 0.6  # wall-time for sweep + Adam; the sweep always completes, Adam stops at the budget
    sweep_points: int = 11  # rollouts of the coarse sweep over log(k/m) (plus up to 4 finer ones around its minimum)
    sweep_span: float = 1.5  # with an initial guess: sweep ln-range +-span around it (else the full range)
    sweep_batch: int = 16  # at most this many candidates simulated together in one batched model
    max_adam_steps: int = 8
    learning_rate: float = 0.15  # Adam step on log-parameters
    render_size: int = 48  # longest side (px) of the silhouettes compared
    max_render_gaussians: int = 400  # Gaussians rendered for the loss (random subset, scales widened)
    frame_stride: int = 2  # compare every n-th observed frame (rendering dominates the cost)
    min_substeps: int = 10  # per frame; raised automatically where stiffness needs more for stability
    binding_neighbors: int = 8
    binding_power: float = 2.0
    tolerance: float = 0.1  # relative loss increase still called near-optimal (uncertainty)
    plateau_tolerance: float = 0.02  # sweep losses this close to the minimum count as ties (collapse plateau)
    estimation_lattice: LatticeConfig = field(default=ESTIMATION_LATTICE)

    def validate(self) -> "RefineConfig":
        checks = {
            "budget_s": self.budget_s >= 0 and math.isfinite(self.budget_s),
            "sweep_points": self.sweep_points >= 3,
            "sweep_span": self.sweep_span > 0,
            "sweep_batch": self.sweep_batch >= 1,
            "max_adam_steps": self.max_adam_steps >= 0,
            "learning_rate": self.learning_rate > 0,
            "render_size": 8 <= self.render_size <= 1024,
            "max_render_gaussians": self.max_render_gaussians >= 1,
            "frame_stride": self.frame_stride >= 1,
            "min_substeps": self.min_substeps >= 1,
            "binding_neighbors": self.binding_neighbors >= 1,
            "binding_power": self.binding_power > 0,
            "tolerance": self.tolerance > 0,
            "plateau_tolerance": self.plateau_tolerance >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"RefineConfig: invalid {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")
        self.estimation_lattice.validate()
        return self


@dataclass
class RefineResult:
    estimate: PhysicsEstimate
    loss: float  # silhouette L2 of the returned parameters
    sweep_values: np.ndarray  # (P,) k/m values of the sweep
    sweep_losses: np.ndarray  # (P,)
    adam_steps: int
    stiffness_per_mass: float  # unclamped estimates (the identifiable quantities)
    damping_per_mass: float
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)


class _SilhouetteLoss:
    """Simulate B copies of the object with given (B, 4) paper params, render their alpha, compare with masks
    (silhouette_rollout.rollout_loss)."""

    def __init__(self, gaussians: GaussianCloud, anchors: np.ndarray, masks: np.ndarray, camera: Camera,
                 velocity: np.ndarray, fps: float, config: RefineConfig, object_id: str, device: str, seed: int,
                 from_frame: int = 0):
        self.config, self.fps, self.device = config, fps, device
        self.num_frames = masks.shape[0] - 1  # simulated frames after frame 0
        cam, _ = sr.scaled_camera(camera, config.render_size)
        # Simulated frame i (0-based) is observed frame i + 1; compare every frame_stride-th, ending at the last,
        # from observed frame `from_frame` on.
        compared = np.arange(self.num_frames - 1, -1, -config.frame_stride)[::-1]
        self.compared = compared[compared + 1 >= from_frame].copy()
        self.target = torch.as_tensor(sr.resize_masks(masks[1:][self.compared], cam.width, cam.height),
                                      device=device)  # (F, h, w)
        first = torch.as_tensor(sr.resize_masks(masks[:1], cam.width, cam.height), device=device)[0]
        self.object = sr.prepare_object(object_id, gaussians, anchors, velocity, cam.to(device),
                                        config.max_render_gaussians, config.binding_neighbors, config.binding_power,
                                        device, seed, first_alpha=first)
        self._models: dict[int, object] = {}

    def model(self, batch: int):
        if batch not in self._models:
            if 1 not in self._models:
                self._models[1] = sr.build_model([self.object], self.config.estimation_lattice, self.device)
            self._models[batch] = self._models[1].replicate(batch)
        return self._models[batch]

    def substeps_needed(self, params: torch.Tensor) -> np.ndarray:
        """(B, 4) paper params -> (B,) stable substeps per frame of each candidate alone."""
        single = self.model(1)
        return np.array([max(self.config.min_substeps, single.required_substeps(self.fps, row[None]))
                         for row in params.detach()])

    def __call__(self, params: torch.Tensor, truncated: bool, dissipation: torch.Tensor | None = None,
                 track: bool = False) -> torch.Tensor:
        """params (B, 4) paper m, k, d, f (and optionally dissipation (B, 3), size-independent rates) ->
        per-candidate loss (B,): silhouette L2, or with `track` the mask track's (centroid_track_loss)."""
        batch = params.shape[0]
        model = self.model(batch) if dissipation is None else self.model(batch).with_dissipation(dissipation)
        if track:
            alpha, _, _ = sr.rollout_frames([self.object] * batch, model, params, self.num_frames,
                                            self.config.min_substeps, self.fps, truncated, self.compared)
            return centroid_track_loss(alpha, self.target)
        loss, _, _ = sr.rollout_loss([self.object] * batch, model, params, self.num_frames,
                                     self.config.min_substeps, self.fps, truncated, self.target,
                                     frames=self.compared)
        return loss


def _track(alpha: torch.Tensor) -> torch.Tensor:
    """(B, F, h, w) coverage -> (B, F, 3): centroid x, y (px) and sqrt(area) (px), from the physics predictor's
    mask statistics (centroid and area in units of the image)."""
    h, w = alpha.shape[-2:]
    stats = mask_statistics(alpha[:, :, None])  # (B, F, 5)
    return torch.stack([stats[..., 0] * w, stats[..., 1] * h, (stats[..., 2] * (h * w)).sqrt()], -1)


def centroid_track_loss(alpha: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rendered coverage (B, F, h, w) against observed masks (F, h, w) -> (B,): the mean squared difference of
    the mask track (centroid x, y and sqrt(area) per frame) in units of the observed object's mean apparent size.
    The motion cues of the object as a whole (bounce height, roll-out, settling, how flat it ends) with less weight
    on the shape's outline than the silhouette L2 (which a model mismatch of the outline dominates)."""
    track, observed = _track(alpha), _track(target[None])  # (B, F, 3), (1, F, 3)
    scale = observed[..., 2].mean().clamp_min(1.0)
    return (((track - observed) / scale) ** 2).sum(-1).mean(-1)


class _Adam:
    """Plain Adam on a small parameter vector (torch.optim's first use costs seconds of lazy imports)."""

    def __init__(self, like: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m, self.v = torch.zeros_like(like), torch.zeros_like(like)

    def step(self, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        b1, b2 = self.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat, v_hat = self.m / (1 - b1**self.t), self.v / (1 - b2**self.t)
        return theta - self.lr * m_hat / (v_hat.sqrt() + self.eps)


def _sweep_losses(loss_fn: _SilhouetteLoss, log_kpm: np.ndarray, mass: float, dpm: float, friction: float,
                  max_batch: int, device: str) -> np.ndarray:
    """Silhouette loss (P,) of each ln(k/m) value. Candidates needing similar substep counts share one batched
    rollout (one kernel launch per substep for all of them); soft ones are not slowed by the stiffest."""
    values = torch.as_tensor(log_kpm, dtype=torch.float32, device=device)
    params = paper_from_ratios(torch.stack([values, torch.full_like(values, math.log(dpm)),
                                            torch.full_like(values, friction)], 1), mass)
    needed = loss_fn.substeps_needed(params)
    losses = np.empty(len(log_kpm))
    order = np.argsort(needed, kind="stable")
    groups, current = [], []
    for i in order:
        if current and (needed[i] > 1.5 * needed[current[0]] or len(current) >= max_batch):
            groups.append(current)
            current = []
        current.append(int(i))
    if current:
        groups.append(current)
    with torch.no_grad():
        for group in groups:
            idx = torch.as_tensor(group, device=device)
            losses[group] = loss_fn(params[idx], truncated=False).cpu().numpy()
    return losses


def _stiffest_near_minimum(losses: np.ndarray, tolerance: float) -> int:
    """Index of the stiffest sweep point tied with the minimum. Below the collapse threshold every k/m gives the
    same flattened blob, so a soft object's loss has a plateau nearly as low as its true minimum; the stiffest
    tie keeps the estimate at the edge of that plateau (above the collapse threshold)."""
    tied = np.nonzero(losses <= losses.min() * (1.0 + tolerance) + 1e-12)[0]
    return int(tied.max())


def _parabola_vertex(x: np.ndarray, losses: np.ndarray, best: int) -> float:
    if best == 0 or best == len(x) - 1:
        return float(x[best])
    a, b, _ = np.polyfit(x[best - 1:best + 2], losses[best - 1:best + 2], 2)
    if not a > 0:
        return float(x[best])
    return float(np.clip(-b / (2 * a), x[best - 1], x[best + 1]))


def _curvature_sigma(x: np.ndarray, losses: np.ndarray, best: int, tolerance: float) -> float | None:
    """Half-width of the near-optimal set from a parabola through the minimum and its neighbours."""
    if best == 0 or best == len(x) - 1:
        return None
    xs, ys = x[best - 1:best + 2], losses[best - 1:best + 2]
    a = np.polyfit(xs, ys, 2)[0]
    l_min = max(float(ys.min()), 1e-12)
    if not (a > 0 and math.isfinite(a)):
        return None
    return math.sqrt(tolerance * l_min / a)  # L = L_min + a dx^2 = L_min (1 + tol)


@dataclass(frozen=True)
class _Bounds:
    """Search box in the identifiable form at the object's size: ln k/m (the sweep's span), d/m, friction, and the
    anchor mass m they scale (paper convention: total mass / 2048)."""

    ln_kpm: tuple  # (lo, hi) of the sweep
    dpm: tuple  # (lo, hi) of d/m, 1/s
    friction: tuple  # (lo, hi)
    mass: float  # kg per reference anchor
    ln_kpm_range: tuple  # (lo, hi): the whole allowed range of ln k/m at this size


def _check_inputs(masks: np.ndarray, camera: Camera, fps: float, initial_velocity, angular_velocity
                  ) -> tuple[np.ndarray, np.ndarray]:
    """-> initial velocity (3,) and spin (3,); raises ValueError naming the bad input."""
    if masks.ndim != 3 or masks.shape[0] < 3:
        raise ValueError(f"masks must be (T >= 3, H, W), got shape {masks.shape}")
    if masks.shape[1:] != (camera.height, camera.width):
        raise ValueError(f"masks are {masks.shape[2]}x{masks.shape[1]} but the camera is {camera.width}x{camera.height}")
    if not (masks.reshape(masks.shape[0], -1) > 0).any(1).all():
        raise ValueError("every observed mask must contain the object (empty mask found)")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps}")
    velocity = np.asarray(initial_velocity, np.float64).reshape(-1)
    if velocity.shape != (3,) or not np.isfinite(velocity).all():
        raise ValueError(f"initial_velocity must be 3 finite numbers, got {initial_velocity!r}")
    spin = np.asarray(angular_velocity, np.float64).reshape(-1)
    if spin.shape != (3,) or not np.isfinite(spin).all():
        raise ValueError(f"angular_velocity must be 3 finite numbers, got {angular_velocity!r}")
    return velocity, spin


def _estimation_anchors(gaussians: GaussianCloud, config: RefineConfig, object_id: str, velocity: np.ndarray,
                        spin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The estimation lattice's anchors (N_A, 3) through the Gaussians and their frame-0 velocities (N_A, 3) under
    the rigid motion (velocity of the centroid, spin about it)."""
    anchors = sample_anchors(gaussians.means.detach().cpu().numpy(), config.estimation_lattice.num_anchors, object_id)
    return anchors, rigid_velocity(anchors, velocity, spin, anchors.mean(0))


def _search_bounds(size: float, total_mass: float, initial_guess: PhysicsParams | None, span: float) -> _Bounds:
    """The size-independent ranges (RATIO_RANGES, the paper's at 1 m) at this object's size L (m); around a guess,
    +-span in ln k/m."""
    lo = ratios_from_size_independent(np.array([v[0] for v in RATIO_RANGES.values()]), size)
    hi = ratios_from_size_independent(np.array([v[1] for v in RATIO_RANGES.values()]), size)
    ln_lo, ln_hi = float(lo[0]), float(hi[0])
    full = (ln_lo, ln_hi)
    if initial_guess is not None:
        centre = math.log(initial_guess.stiffness_per_mass)
        ln_lo, ln_hi = max(ln_lo, centre - span), min(ln_hi, centre + span)
        if ln_hi <= ln_lo:
            ln_lo, ln_hi = ln_lo - 1e-3, ln_lo + 1e-3
    return _Bounds((ln_lo, ln_hi), (math.exp(lo[1]), math.exp(hi[1])), (float(lo[2]), float(hi[2])),
                   total_mass / REFERENCE_NUM_ANCHORS, full)


def _sweep(loss_fn: _SilhouetteLoss, bounds: _Bounds, dpm0: float, f0: float, config: RefineConfig, device: str,
           notes: list) -> tuple[np.ndarray, np.ndarray, int, float]:
    """A coarse log-spaced grid over ln k/m, then a finer one around its minimum -> (grid (G,) sorted, losses (G,),
    index of the estimate, coarse step)."""
    ln_lo, ln_hi = bounds.ln_kpm
    coarse = np.linspace(ln_lo, ln_hi, config.sweep_points)
    coarse_losses = _sweep_losses(loss_fn, coarse, bounds.mass, dpm0, f0, config.sweep_batch, device)
    b0 = _stiffest_near_minimum(coarse_losses, config.plateau_tolerance)
    step = float(coarse[1] - coarse[0])
    fine = coarse[b0] + step * np.array([-2.0, -1.0, 1.0, 2.0]) / 3.0
    fine = fine[(fine > ln_lo) & (fine < ln_hi)]
    fine_losses = _sweep_losses(loss_fn, fine, bounds.mass, dpm0, f0, config.sweep_batch, device)
    order = np.argsort(np.concatenate([coarse, fine]))
    grid = np.concatenate([coarse, fine])[order]
    losses = np.concatenate([coarse_losses, fine_losses])[order]
    best = _stiffest_near_minimum(losses, config.plateau_tolerance)
    if best != int(np.argmin(losses)):
        notes.append(f"loss flat below k/m = {math.exp(grid[best]):.3g} (collapse plateau): the stiffest near-tie "
                     "is reported")
    return grid, losses, best, step


def _adam_refine(loss_fn: _SilhouetteLoss, start_theta: torch.Tensor, start_loss: float, lower: torch.Tensor,
                 upper: torch.Tensor, mass: float, config: RefineConfig, deadline: float
                 ) -> tuple[torch.Tensor, float, int]:
    """Adam on (ln k/m, ln d/m, f) with truncated backprop inside [lower, upper] until `deadline`
    (perf_counter seconds) or max_adam_steps -> (best theta (3,), its loss, steps taken)."""
    best_theta, best_loss = start_theta, start_loss
    theta = start_theta.clone()
    adam = _Adam(theta, config.learning_rate)
    steps, step_time = 0, 0.0
    while steps < config.max_adam_steps and time.perf_counter() + step_time <= deadline:
        ts = time.perf_counter()
        leaf = theta.clone().requires_grad_(True)
        loss = loss_fn(paper_from_ratios(leaf[None], mass), truncated=True)[0]
        loss.backward()
        if steps == 0:
            best_loss = min(best_loss, float(loss.detach()))
        elif float(loss.detach()) < best_loss:  # the loss of the parameters before this update
            best_loss, best_theta = float(loss.detach()), theta.clone()
        theta = torch.minimum(torch.maximum(adam.step(theta, leaf.grad), lower), upper)
        steps += 1
        step_time = time.perf_counter() - ts
    return best_theta, best_loss, steps


def _estimate_with_uncertainty(theta: torch.Tensor, grid: np.ndarray, losses: np.ndarray, best: int, step: float,
                               bounds: _Bounds, mass_given: bool, size: float, config: RefineConfig, notes: list
                               ) -> PhysicsEstimate:
    """The estimate (clamped into the size-independent ranges at this size, with notes) and one std per quantity
    (module docstring)."""
    log_kpm, log_dpm, friction = (float(v) for v in theta)
    ranges = {"k/m": (log_kpm, bounds.ln_kpm_range), "d/m": (log_dpm, tuple(map(math.log, bounds.dpm))),
              "friction": (friction, bounds.friction)}
    clamped = {}
    for name, (value, (lo, hi)) in ranges.items():
        clamped[name] = min(max(value, lo), hi)
        if clamped[name] != value:
            shown = value if name == "friction" else math.exp(value)
            notes.append(f"{name} {shown:.4g} outside the range for a {size:.3g} m object: clamped")
    log_kpm, log_dpm, friction = clamped["k/m"], clamped["d/m"], clamped["friction"]
    sigma_kpm = _curvature_sigma(grid, losses, best, config.tolerance)
    if sigma_kpm is None:
        near = grid[losses <= losses[best] * (1 + config.tolerance) + 1e-12]
        sigma_kpm = max(0.5 * float(near.max() - near.min()), step)
        notes.append("k/m uncertainty from the spread of near-optimal sweep points (no usable curvature)")
    sigma_kpm = max(sigma_kpm, 0.1 * step)
    if best in (0, len(grid) - 1):
        notes.append(f"sweep minimum at the edge of the k/m range ({math.exp(log_kpm):.3g} 1/s^2): estimate may be "
                     "bounded")
    sigma_dpm = log_uniform_sigma(*bounds.dpm)
    sigma_f = (bounds.friction[1] - bounds.friction[0]) / math.sqrt(12.0)
    return PhysicsEstimate.from_ratios((log_kpm, log_dpm, friction), bounds.mass * REFERENCE_NUM_ANCHORS,
                                       (sigma_kpm, sigma_dpm, sigma_f), mass_given, size).validate()


def estimate_physics(
    gaussians: GaussianCloud,
    masks: np.ndarray,
    camera: Camera,
    object_id: str,
    initial_velocity=(0.0, 0.0, 0.0),
    fps: float = 30.0,
    known_mass: float | None = None,
    initial_guess: PhysicsParams | None = None,
    config: RefineConfig = RefineConfig(),
    device: str | torch.device = "cpu",
    seed: int = 0,
    size: float | None = None,
    volume: float | None = None,
    angular_velocity=(0.0, 0.0, 0.0),
) -> RefineResult:
    """Estimate physics from observed masks: bounds, sweep, Adam, uncertainty.

    gaussians: the object at frame 0 in world coordinates (e.g. from mask inflation).
    masks: (T, H, W) observed masks, object > 0, T >= 3, same size as `camera`.
    initial_velocity: (3,) m/s of the object's centroid at frame 0, angular_velocity (3,) rad/s its spin about it
    (see initial_state.py).
    known_mass: the object's total mass in kg (None: a density prior times its volume).
    initial_guess: a learned prediction to refine (the sweep then spans +-sweep_span in ln(k/m) around it).
    size, volume: the object's size (m, params.object_size) and volume (m^3) of the asset's anchors; None: from this
    estimator's own anchors.
    Returns a RefineResult whose estimate lies inside the size-independent ranges at the object's size."""
    start = time.perf_counter()
    config.validate()
    device = str(device)
    masks = np.asarray(masks)
    velocity, spin = _check_inputs(masks, camera, fps, initial_velocity, angular_velocity)
    notes: list[str] = []
    timings: dict[str, float] = {}

    anchors, velocity = _estimation_anchors(gaussians, config, object_id, velocity, spin)  # (N_A, 3) each
    size = object_size(anchors) if size is None else float(size)
    total_mass, mass_given = mass_prior(known_mass, object_volume(anchors) if volume is None else float(volume))
    loss_fn = _SilhouetteLoss(gaussians, anchors, masks, camera, velocity, fps, config, object_id, device, seed)
    timings["setup"] = time.perf_counter() - start
    bounds = _search_bounds(size, total_mass, initial_guess, config.sweep_span)
    dpm_prior = float(np.exp(ratios_from_size_independent(np.array([0.0, math.log(DAMPING_PER_MASS_PRIOR), 0.0]),
                                                           size)[1]))
    dpm0 = dpm_prior if initial_guess is None else initial_guess.damping_per_mass
    f0 = FRICTION_PRIOR if initial_guess is None else initial_guess.friction

    t0 = time.perf_counter()
    grid, losses, best, step = _sweep(loss_fn, bounds, dpm0, f0, config, device, notes)
    timings["sweep"] = time.perf_counter() - t0

    # Adam starts at the vertex of the parabola through the sweep minimum and its neighbours, inside their bracket
    # (this keeps k/m above the collapse plateau); the vertex's own loss is not simulated: it lies at or below its
    # neighbours'.
    t0 = time.perf_counter()
    start_theta = torch.tensor([_parabola_vertex(grid, losses, best), math.log(dpm0), f0], dtype=torch.float32,
                               device=device)
    bracket = (float(grid[max(best - 1, 0)]), float(grid[min(best + 1, len(grid) - 1)]))
    lower = torch.tensor([bracket[0], math.log(bounds.dpm[0]), bounds.friction[0]], device=device)
    upper = torch.tensor([bracket[1], math.log(bounds.dpm[1]), bounds.friction[1]], device=device)
    theta, best_loss, adam_steps = _adam_refine(loss_fn, start_theta, float(losses[best]), lower, upper, bounds.mass,
                                                config,
                                                start + config.budget_s)
    timings["adam"] = time.perf_counter() - t0
    if adam_steps == 0:
        notes.append("no Adam refinement step fitted in the time budget: sweep result only")

    estimate = _estimate_with_uncertainty(theta, grid, losses, best, step, bounds, mass_given, size, config,
                                          notes)
    timings["total"] = time.perf_counter() - start
    return RefineResult(estimate, best_loss, np.exp(grid), losses, adam_steps, math.exp(float(theta[0])),
                        math.exp(float(theta[1])), notes, timings)


# Contact damping after impact (physics/params.py, issue 20): candidates of the post-impact search, 1/s at 1 m.
# Every candidate needs the same substeps (the dissipation is an exact exponential decay), so all run as copies in
# one batched rollout.
CONTACT_DAMPING_GRID = (0.0, 5.0, 40.0, 300.0)  # about even in ln(1 + c): 0, 1.8, 3.7, 5.7
MIN_FRAMES_AFTER_IMPACT = 3  # observed frames after the impact below which the clip says nothing about it
# Bounce, roll-out and settling are coarse silhouette motions: a smaller render than the k/m sweep's suffices
# (rendering is most of the cost: 0.69 -> 0.4 s per clip here with 48 px / 400 Gaussians -> 32 px / 200)
CONTACT_OBJECTIVES = ("silhouette", "track")
CONTACT_RENDER_SIZE = 32
CONTACT_RENDER_GAUSSIANS = 200


def _prior_contact_damping_std() -> float:
    """Spread of the contact damping a clip without an impact leaves open: the std of c log-uniform over
    [1, max] 1/s at 1 m."""
    lo, hi = 1.0, CONTACT_DAMPING_RANGE[1]
    span = math.log(hi / lo)
    mean, second = (hi - lo) / span, (hi * hi - lo * lo) / (2.0 * span)
    return math.sqrt(second - mean * mean)


CONTACT_DAMPING_PRIOR_STD = _prior_contact_damping_std()


@dataclass
class ContactDampingResult:
    contact_damping: float  # size-independent, 1/s at 1 m
    std: float  # one standard deviation, same units
    observed: bool  # False: no impact in the clip, the prior is returned
    grid: np.ndarray  # (G,) candidates (empty when not observed)
    losses: np.ndarray  # (G,) silhouette loss over the frames after the impact
    notes: list = field(default_factory=list)
    seconds: float = 0.0


def _contact_damping_from_losses(grid: np.ndarray, losses: np.ndarray, tolerance: float) -> tuple[float, float]:
    """(estimate, std) from the post-impact losses of the candidates: the vertex of the parabola through the
    minimum and its neighbours in u = ln(1 + c) (c = 0 is a candidate), and the half-width of the near-optimal set
    {L <= L_min (1 + tolerance)} from its curvature, or from the spread of the near-optimal candidates at the edge."""
    u = np.log1p(grid)
    best = int(np.argmin(losses))
    u_best = _parabola_vertex(u, losses, best)
    sigma_u = _curvature_sigma(u, losses, best, tolerance)
    if sigma_u is None:
        near = u[losses <= losses[best] * (1.0 + tolerance) + 1e-12]
        sigma_u = max(0.5 * float(near.max() - near.min()), 0.5 * float(np.diff(u).min()))
    c = float(np.expm1(u_best))
    std = float(np.expm1(u_best + sigma_u) - np.expm1(max(u_best - sigma_u, 0.0))) / 2.0
    return c, min(std, CONTACT_DAMPING_PRIOR_STD)


def estimate_contact_damping(
    gaussians: GaussianCloud,
    masks: np.ndarray,
    camera: Camera,
    object_id: str,
    estimate: PhysicsEstimate,
    impact_frame: int | None,
    initial_velocity=(0.0, 0.0, 0.0),
    angular_velocity=(0.0, 0.0, 0.0),
    fps: float = 30.0,
    config: RefineConfig = RefineConfig(),
    device: str | torch.device = "cpu",
    seed: int = 0,
    prior: tuple | None = None,
    objective: str = "silhouette",
) -> ContactDampingResult:
    """The size-independent contact damping (1/s at 1 m) that best reproduces the observed masks after the impact:
    bounce height, roll-out and settling, with the other physics (`estimate`: k/m, d/m, f) fixed. One batched
    rollout of the CONTACT_DAMPING_GRID candidates on the estimation lattice, silhouettes compared from the impact
    frame on. Without an impact in the clip (`impact_frame` None or fewer than MIN_FRAMES_AFTER_IMPACT frames after
    it) the prior comes back with a note: `prior` = (value, std, source in words), e.g. a learned prediction, else
    CONTACT_DAMPING_PRIOR with its spread.

    gaussians: the object at frame 0 (world); masks (T, H, W) observed, evenly spaced at fps; impact_frame: the
    first observed frame at or after the ground contact (initial_state.py); velocity (3,) m/s and spin (3,) rad/s
    at frame 0. objective: "silhouette" (L2 of the rendered silhouettes) or "track" (centroid_track_loss)."""
    start = time.perf_counter()
    config.validate()
    if objective not in CONTACT_OBJECTIVES:
        raise ValueError(f"objective must be one of {CONTACT_OBJECTIVES}, got {objective!r}")
    device = str(device)
    masks = np.asarray(masks)
    velocity, spin = _check_inputs(masks, camera, fps, initial_velocity, angular_velocity)
    prior_c, prior_std, source = prior or (CONTACT_DAMPING_PRIOR, CONTACT_DAMPING_PRIOR_STD, "the prior")

    def unobserved(reason: str, grid=np.empty(0), losses=np.empty(0)) -> ContactDampingResult:
        return ContactDampingResult(float(prior_c), float(prior_std), False, grid, losses,
                                    [f"contact damping {prior_c:.3g} 1/s at 1 m from {source}: {reason}"],
                                    time.perf_counter() - start)

    if impact_frame is None or masks.shape[0] - 1 - int(impact_frame) < MIN_FRAMES_AFTER_IMPACT:
        return unobserved("no impact in the observed frames" if impact_frame is None else
                          f"only {masks.shape[0] - 1 - int(impact_frame)} frame(s) after the impact")
    anchors, velocity = _estimation_anchors(gaussians, config, object_id, velocity, spin)  # (N_A, 3) each
    config = replace(config, render_size=min(config.render_size, CONTACT_RENDER_SIZE),
                     max_render_gaussians=min(config.max_render_gaussians, CONTACT_RENDER_GAUSSIANS))
    loss_fn = _SilhouetteLoss(gaussians, anchors, masks, camera, velocity, fps, config, object_id, device, seed,
                              from_frame=int(impact_frame))
    grid = np.asarray(CONTACT_DAMPING_GRID, np.float64)
    params = torch.tensor(estimate.params.to_tuple(), dtype=torch.float32, device=device).expand(len(grid), 4)
    rates = torch.as_tensor(np.stack([dissipation_from_contact_damping(c) for c in grid]), dtype=torch.float32,
                            device=device)  # (G, 3)
    with torch.no_grad():
        losses = loss_fn(params.contiguous(), truncated=False, dissipation=rates,
                         track=objective == "track").cpu().numpy().astype(np.float64)
    if float(losses.max() - losses.min()) <= 1e-6 * max(float(losses.max()), 1e-12):
        return unobserved("the simulated object does not reach the ground in the observed frames", grid, losses)
    c, std = _contact_damping_from_losses(grid, losses, config.tolerance)
    return ContactDampingResult(c, std, True, grid, losses, [], time.perf_counter() - start)
