"""Video -> SimAsset: masks given -> Gaussians -> anchors + KNN springs -> physics estimate -> SimAsset.

Stages (timed in `PipelineResult.timings`, seconds):
- gaussians: the learned Gaussian predictor (shipped) or mask inflation of the first frame, by `gaussian_model`;
  the depth comes from the free fall of the mask centroids (falls back to the default depth prior with a note);
- initial_state: one joint fit of the frame-0 depth, velocity and spin to the mask track (centroid path, looming,
  shape change, the ground; models/initial_state.py); it moves the Gaussians to the fitted depth when it trusts it;
- lattice: anchors sampled through the reconstructed volume (seeded by the object id) + KNN springs;
- physics: learned physics predictor when weights ship (then refined through the simulator if `refine`), else
  the non-learned estimate (sweep over k/m, Adam steps when `refine`), models/physics_by_simulation.py;
- asset: SimAsset assembly and validation.
Clips that cannot give a trustworthy asset are refused with the reason (ReconstructionRefused, a ValueError): masks
that cover the image or show no fall (check_drop_observed), and reconstructions of implausible size, depth or height
(check_reconstruction).
`predict_future` re-simulates an asset from its initial state and renders the frames (observed vs
re-simulated vs future comparisons).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .asset import InitialMotion, PhysicsEstimate, SimAsset, validate_object_id
from .binding import apply_binding, compute_binding
from .clip_timing import evenly_spaced, frame_times
from .gaussians import GaussianCloud
from .geometry import rigid_velocity
from .images import to_uint8
from .models.initial_state import InitialState, fit_initial_state
from .models.mask_inflation import inflate_mask
from .models.object_depth import DepthPrior, FallTrack
from .models.physics_by_simulation import (CONTACT_DAMPING_PRIOR_STD, CONTACT_OBJECTIVES, RefineConfig,
                                           estimate_contact_damping, estimate_physics)
from .models.predictors import MaskInflationPredictor, load_gaussian_predictor, load_physics_predictor
from .physics import LATTICES, LatticeConfig, ModelBuilder, State, knn_springs, lattice_from_name, sample_anchors
from .physics import simulate
from .physics.params import CONTACT_DAMPING_PRIOR, GRAVITY_MAGNITUDE, check_known_mass, object_size, object_volume
from .render import Camera, look_at, render_sequence

__all__ = ["PipelineConfig", "PipelineResult", "ReconstructionPipeline", "ReconstructionRefused", "FuturePrediction",
           "predict_future", "rigid_velocities", "validate_clip", "check_drop_observed", "check_reconstruction",
           "GAUSSIAN_MODELS", "PHYSICS_MODELS"]

FALL_TRACK_FRAMES = 20  # frames whose centroids may fix the depth by free fall (the fit stops at the impact)


BELOW_GROUND_TOLERANCE_M = 0.05  # a frame-0 object deeper underground than this is rejected (fit), then refused

# Plausibility of a reconstruction (ReconstructionRefused outside): the largest side of the frame-0 Gaussian centres'
# bounding box, and the camera-frame depth of their centroid. Objects this package is made for are 2 cm - 3 m across
# (the paper's objects are about 1 m; the real-sizes work targets 10-30 cm soft bodies).
OBJECT_SIZE_RANGE_M = (0.02, 3.0)
MAX_OBJECT_DEPTH_M = 50.0
# A drop clip must show the object falling: the mask centroid moves down the image (from its highest point, so a
# tossed object may rise first) by at least max(MIN_FALL_PX, MIN_FALL_IMAGE_FRACTION x image height); static
# objects gave assets with an upward velocity of +1 m/s. Masks covering more than MAX_MASK_COVERAGE of the image
# are not an object (full-image masks gave an object 0.16 m underground).
MIN_FALL_PX = 2.0
MIN_FALL_IMAGE_FRACTION = 0.005
MAX_MASK_COVERAGE = 0.9


FPS_RANGE = (5.0, 500.0)  # Hz: real cameras run at 15-120; outside this a frame rate is a unit or stamp error
GAUSSIAN_MODELS = ("auto", "learned", "inflation")
PHYSICS_MODELS = ("auto", "learned", "simulation")


@dataclass
class PipelineConfig:
    """Settings of the reconstruction pipeline; names match the reconstruction node's ROS parameters."""

    num_frames: int = 20  # observed frames used (paper: 20); longer clips are cut, shorter ones need >= 3
    lattice: str = "coarse"  # anchor lattice of the asset: coarse (CPU) | medium | reference (GPU)
    binding_neighbors: int = 8  # n_b: anchors each Gaussian centre follows
    binding_power: float = 2.0  # p_b: inverse-distance falloff exponent of the binding weights
    refine: bool = False  # Adam refinement through the simulator after the sweep / learned prediction
    refine_budget_s: float = 0.6  # wall-time budget of the physics estimate (the sweep always completes)
    known_mass: float | None = None  # the object's total mass in kg when known (fixes the scale of k and d); None = prior
    device: str = "cpu"  # torch device of the pipeline (cpu | cuda)
    max_gaussians: int = 4000  # cap on Gaussians from the mask-inflation fallback
    sweep_points: int = 8  # coarse rollouts of the k/m sweep (plus up to 4 finer ones around its minimum)
    weights_dir: str | None = None  # learned predictor checkpoints; None = reconphys_ros/weights/
    # Gaussians at frame 0: "learned" (the shipped predictor: better shape, blurrier texture), "inflation" (mask
    # inflation: sharper texture, no weights needed) or "auto" (learned when its weights are there)
    gaussian_model: str = "auto"
    # mask-inflation fallback: depth layers along the horizontal viewing direction (upright objects seen from above;
    # measured k/m ratios 0.40-0.86 on the example and synthetic clips) or along the pixel rays (0.09-0.61)
    inflation_layer_axis: str = "horizontal"
    # Physics: "learned" (the shipped predictor, refined through the simulator when `refine`), "simulation" (the
    # non-learned estimate: sweep over k/m, Adam steps when `refine`; a per-scene optimisation) or "auto" (learned
    # when its weights are there)
    physics_model: str = "auto"
    # contact damping after impact (issue 20) searched on the frames after the observed impact (one batched rollout);
    # without an impact in the clip, or when False: the learned predictor's (weights with a contact head), else the
    # prior (physics/params.py CONTACT_DAMPING_PRIOR)
    estimate_contact: bool = True
    contact_objective: str = "silhouette"  # the search's loss: silhouette L2 | track (mask centroid and size)

    def validate(self) -> "PipelineConfig":
        if not isinstance(self.num_frames, int) or self.num_frames < 3:
            raise ValueError(f"num_frames must be an integer >= 3, got {self.num_frames!r}")
        lattice_from_name(self.lattice)
        if self.binding_neighbors < 1:
            raise ValueError(f"binding_neighbors must be >= 1, got {self.binding_neighbors}")
        if not (math.isfinite(self.binding_power) and self.binding_power > 0):
            raise ValueError(f"binding_power must be > 0, got {self.binding_power}")
        if not (math.isfinite(self.refine_budget_s) and self.refine_budget_s >= 0):
            raise ValueError(f"refine_budget_s must be >= 0, got {self.refine_budget_s}")
        if self.known_mass is not None:
            check_known_mass(self.known_mass)
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.gaussian_model not in GAUSSIAN_MODELS:
            raise ValueError(f"gaussian_model must be one of {GAUSSIAN_MODELS}, got {self.gaussian_model!r}")
        if self.contact_objective not in CONTACT_OBJECTIVES:
            raise ValueError(f"contact_objective must be one of {CONTACT_OBJECTIVES}, got {self.contact_objective!r}")
        if self.physics_model not in PHYSICS_MODELS:
            raise ValueError(f"physics_model must be one of {PHYSICS_MODELS}, got {self.physics_model!r}")
        if self.inflation_layer_axis not in ("ray", "horizontal"):
            raise ValueError(f"inflation_layer_axis must be 'ray' or 'horizontal', got {self.inflation_layer_axis!r}")
        if self.max_gaussians < 1 or self.sweep_points < 3:
            raise ValueError("max_gaussians must be >= 1 and sweep_points >= 3")
        return self

    def refine_config(self) -> RefineConfig:
        return RefineConfig(budget_s=self.refine_budget_s, sweep_points=self.sweep_points,
                            max_adam_steps=RefineConfig.max_adam_steps if self.refine else 0,
                            binding_neighbors=self.binding_neighbors, binding_power=self.binding_power)


@dataclass
class PipelineResult:
    asset: SimAsset
    timings: dict  # stage -> seconds, plus "total"
    initial_velocity: np.ndarray  # (3,) m/s at frame 0 of the anchors' centroid (world)
    notes: list = field(default_factory=list)  # what fell back or was clamped, in words
    physics_loss: float = float("nan")  # silhouette L2 of the returned physics
    angular_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) rad/s about that centroid
    initial_state: InitialState | None = None  # the joint fit behind both, with uncertainties and the impact frame


def validate_clip(frames, masks, camera: Camera, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Check a clip; returns (frames uint8 (T, H, W, 3), masks uint8 (T, H, W))."""
    if not isinstance(camera, Camera):
        raise ValueError(f"camera must be a Camera, got {type(camera).__name__}")
    frames, masks = np.asarray(frames), np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) RGB, got shape {frames.shape}")
    if masks.ndim != 3 or masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be (T, H, W) = {frames.shape[:3]}, got shape {masks.shape}")
    if frames.shape[0] < 3:
        raise ValueError(f"need at least 3 frames, got {frames.shape[0]}")
    if frames.dtype != np.uint8:
        if not np.issubdtype(frames.dtype, np.floating) or not np.isfinite(frames).all():
            raise ValueError(f"frames must be uint8 (or finite floats in [0, 1]), got dtype {frames.dtype}")
        frames = to_uint8(frames)
    if np.issubdtype(masks.dtype, np.floating) and not np.isfinite(masks).all():
        raise ValueError("masks contain NaN or Inf")
    if (frames.shape[2], frames.shape[1]) != (camera.width, camera.height):
        raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]} but the camera is "
                         f"{camera.width}x{camera.height}")
    empty = np.nonzero(~(masks.reshape(masks.shape[0], -1) > 0).any(1))[0]
    if empty.size:
        raise ValueError(f"mask of frame {int(empty[0])} is empty ({empty.size} empty masks): the object must be "
                         "visible in every frame handed to the pipeline")
    if not (math.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
        raise ValueError(f"fps must be a camera frame rate within {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g} Hz, got {fps} "
                         "(check the fps parameter or the image stamps)")
    return frames, np.where(masks > 0, 255, 0).astype(np.uint8)


class ReconstructionRefused(ValueError):
    """The clip cannot give a trustworthy asset (no fall observed, the mask is the whole image, an implausible size or
    depth, the object underground); the message says why. Nothing is published for it."""


def _image_gravity(camera: Camera, u: float, v: float) -> np.ndarray:
    """(2,) image direction in which a point seen at pixel (u, v) moves when it falls (world -z), scaled by how
    much of the fall the image shows (0 when the camera looks along gravity). Independent of the point's depth."""
    K = camera.K.detach().cpu().double().numpy()
    rot = camera.world_to_cam[:3, :3].detach().cpu().double().numpy()
    vel = rot @ np.array([0.0, 0.0, -1.0])  # (3,) the fall in the camera frame
    xn, yn = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    return np.array([K[0, 0] * (vel[0] - xn * vel[2]), K[1, 1] * (vel[1] - yn * vel[2])]) / max(K[0, 0], K[1, 1])


def check_drop_observed(masks: np.ndarray, camera: Camera) -> None:
    """Refuse (ReconstructionRefused) masks (T, H, W) that show no falling object: a mask covering more than
    MAX_MASK_COVERAGE of the image, or a centroid that never moves in the image direction of gravity (down the
    image for a level camera) by the minimum fall, counted from its highest point so far (a tossed object rises
    first). Not checked where the camera looks (nearly) along gravity: a fall then barely moves the centroid."""
    masks = np.asarray(masks) > 0
    coverage = masks.mean(axis=(1, 2))  # (T,)
    worst = int(np.argmax(coverage))
    if coverage[worst] > MAX_MASK_COVERAGE:
        raise ReconstructionRefused(
            f"mask covers the whole image ({100 * coverage[worst]:.0f}% of frame {worst}, more than "
            f"{100 * MAX_MASK_COVERAGE:.0f}%): the segmentation did not isolate an object")
    area = np.maximum(masks.sum(axis=(1, 2)), 1).astype(np.float64)  # (T,)
    cols = (masks.sum(axis=1) @ np.arange(masks.shape[2])) / area + 0.5  # (T,) centroid u
    rows = (masks.sum(axis=2) @ np.arange(masks.shape[1])) / area + 0.5  # (T,) centroid v
    down = _image_gravity(camera, float(cols[0]), float(rows[0]))
    if np.linalg.norm(down) < 0.2:  # gravity within ~11 degrees of the line of sight: the image cannot tell
        return
    along = np.stack([cols, rows], 1) @ (down / np.linalg.norm(down))  # (T,) px along the image's "down"
    fall = float(np.max(along - np.minimum.accumulate(along)))
    needed = max(MIN_FALL_PX, MIN_FALL_IMAGE_FRACTION * masks.shape[1])
    if fall < needed:
        raise ReconstructionRefused(
            f"no fall observed: the mask centroid moves down the image by {fall:.1f} px over the {len(along)} frames "
            f"(a drop needs >= {needed:.1f} px); a static or rising object has no physics to estimate")


def check_reconstruction(means: np.ndarray, camera: Camera) -> None:
    """Refuse (ReconstructionRefused) frame-0 Gaussian centres (N, 3, world) whose size, depth or height is not that
    of a real dropped object: largest bounding-box side outside OBJECT_SIZE_RANGE_M, centroid behind the camera or
    deeper than MAX_OBJECT_DEPTH_M, or lowest point more than BELOW_GROUND_TOLERANCE_M under the ground."""
    means = np.asarray(means, dtype=np.float64)
    size = float(np.ptp(means, axis=0).max())
    w2c = camera.world_to_cam.detach().cpu().double().numpy()
    depth = float((w2c[:3, :3] @ means.mean(0) + w2c[:3, 3])[2])
    bottom = float(means[:, 2].min())
    lo, hi = OBJECT_SIZE_RANGE_M
    if not (np.isfinite(size) and lo <= size <= hi):
        raise ReconstructionRefused(
            f"implausible object size: the reconstruction is {size:.3g} m across (expected {lo:g}-{hi:g} m); check "
            "the camera intrinsics (K, image size) and the camera pose")
    if not (np.isfinite(depth) and 0.0 < depth <= MAX_OBJECT_DEPTH_M):
        raise ReconstructionRefused(
            f"implausible object depth: the reconstruction lies {depth:.3g} m from the camera along its axis "
            f"(expected 0-{MAX_OBJECT_DEPTH_M:g} m); check the camera intrinsics and pose")
    if bottom < -BELOW_GROUND_TOLERANCE_M:
        raise ReconstructionRefused(
            f"the reconstruction reaches {-bottom:.2f} m below the ground plane (z = 0) even with the default depth "
            "prior: check the camera pose (camera/pose or camera_position / camera_look_at) and the masks")


class ReconstructionPipeline:
    def __init__(self, config: PipelineConfig | None = None):
        self.config = (config or PipelineConfig()).validate()
        self.lattice = lattice_from_name(self.config.lattice)
        self.gaussian_predictor = load_gaussian_predictor(
            self.config.weights_dir, self.config.device, self.config.max_gaussians,
            learned={"auto": None, "learned": True, "inflation": False}[self.config.gaussian_model])
        self.physics_predictor = None
        if self.config.physics_model != "simulation":
            self.physics_predictor = load_physics_predictor(self.config.weights_dir, self.config.device)
            if self.physics_predictor is None and self.config.physics_model == "learned":
                raise ValueError("physics_model 'learned' needs physics_predictor.pt in the weights folder (or "
                                 "choose 'simulation')")

    def warm_up(self) -> float:
        """Run the pipeline once on a synthetic drop (a sphere falling in front of a camera), so the first real drop
        does not pay the first-call set-up of the networks, the fits and their caches (0.47 s against 0.29 s warm on
        the example clip). Returns the seconds it took; a refusal of the synthetic clip is not an error."""
        start = time.perf_counter()
        size, radius, fps = 96, 0.08, 30.0
        camera = look_at((0.0, -1.5, 0.5), (0.0, 0.0, 0.4), fx=100.0, width=size, height=size)
        times = np.arange(self.config.num_frames) / fps
        # released at rest, then lying on the ground
        heights = np.maximum(0.7 - 0.5 * GRAVITY_MAGNITUDE * times**2, radius)
        centres = np.stack([np.zeros_like(heights), np.zeros_like(heights), heights], 1)  # (T, 3)
        uv, depth = (x.double().numpy() for x in camera.project(torch.as_tensor(centres)))  # (T, 2), (T,)
        disk_radius = float(camera.K[0, 0]) * radius / depth  # (T,) px
        rows, cols = np.mgrid[0:size, 0:size]
        frames = np.full((times.size, size, size, 3), 200, np.uint8)
        masks = np.zeros((times.size, size, size), np.uint8)
        for t in range(times.size):
            disk = (cols + 0.5 - uv[t, 0]) ** 2 + (rows + 0.5 - uv[t, 1]) ** 2 <= disk_radius[t] ** 2
            masks[t][disk], frames[t][disk] = 255, (200, 80, 40)
        try:
            self.run(frames, masks, camera, "warm_up", fps=fps)
        except ValueError:
            pass
        return time.perf_counter() - start

    def _gaussians(self, image, mask, camera: Camera, prior: DepthPrior):
        predictor = self.gaussian_predictor
        if isinstance(predictor, MaskInflationPredictor):
            return inflate_mask(image, mask, camera, prior, max_gaussians=predictor.max_gaussians,
                                layer_axis=self.config.inflation_layer_axis, device=predictor.device)
        return predictor.predict(image, mask, camera, prior)

    def _reconstruct_gaussians(self, frames, masks, camera: Camera, times: np.ndarray, n_track: int,
                               notes: list) -> tuple[GaussianCloud, bool]:
        """Gaussians at frame 0 at the metric depth of the free fall of the first frames (the fit stops at the
        impact); the default depth prior when that fit fails or would sink the falling object underground. Returns
        them and whether the free-fall depth placed them."""
        try:
            prior = DepthPrior(fall_track=FallTrack.from_masks(masks[:n_track], times[:n_track]))
            gaussians = self._gaussians(frames[0], masks[0], camera, prior)
            bottom = float(gaussians.means[:, 2].min())
            if bottom < -BELOW_GROUND_TOLERANCE_M:  # the object is falling at frame 0: it cannot be underground
                raise ValueError(f"it puts the falling object {-bottom:.2f} m below the ground")
            return gaussians, True
        except ValueError as exc:
            notes.append(f"free-fall depth failed ({exc}); default depth prior used")
            return self._gaussians(frames[0], masks[0], camera, DepthPrior()), False

    def run(self, frames, masks, camera: Camera, object_id: str, fps: float = 30.0,
            gaussians: GaussianCloud | None = None, times=None) -> PipelineResult:
        """frames (T, H, W, 3) uint8 RGB, masks (T, H, W) uint8 (object > 0), the camera that took them (world
        z up, ground z = 0), the object id (file-name safe) -> PipelineResult.

        fps: the clip's frame rate (Hz). times: (T,) seconds of each frame since frame 0 when a stream dropped frames
        (core/clip_timing.py); the motion is fitted against them, default t / fps.

        gaussians: the object's frame-0 Gaussians (world) when they are known (a scanned object, or the
        evaluation's true-shape breakdown); they replace the Gaussian stage, everything else runs as usual."""
        start = time.perf_counter()
        cfg = self.config
        validate_object_id(object_id)
        frames, masks = validate_clip(frames, masks, camera, fps)
        times = frame_times(frames.shape[0], fps, times)
        notes: list[str] = []
        if frames.shape[0] > cfg.num_frames:
            frames, masks, times = frames[:cfg.num_frames], masks[:cfg.num_frames], times[:cfg.num_frames]
        elif frames.shape[0] < cfg.num_frames:
            notes.append(f"only {frames.shape[0]} of {cfg.num_frames} frames given")
        # The motion fits use the frames' own times; the physics stages assume evenly spaced frames, so a dropped
        # frame's slot repeats its nearest neighbour there.
        even = evenly_spaced(times, fps)  # (S,) frame indices
        if even.size > 2 * frames.shape[0]:
            raise ReconstructionRefused(f"{even.size - frames.shape[0]} of the {even.size} frames of the {fps:g} Hz "
                                        "sequence are missing (the stream dropped them): too few to measure the fall")
        if even.size > frames.shape[0]:
            notes.append(f"{even.size - frames.shape[0]} frame(s) missing from the {fps:g} Hz sequence (dropped by "
                         "the stream): their nearest frames stand in for them in the physics estimate")
        check_drop_observed(masks, camera)
        camera = camera.to(cfg.device)
        timings: dict[str, float] = {}
        tick = time.perf_counter()

        n_track = min(FALL_TRACK_FRAMES, frames.shape[0])
        gaussians_given, depth_near = gaussians is not None, False
        if gaussians is not None:
            if not isinstance(gaussians, GaussianCloud) or gaussians.num_gaussians == 0:
                raise ValueError("gaussians must be a non-empty GaussianCloud")
            gaussians = gaussians.to(cfg.device)
            notes.append("frame-0 Gaussians given")
        else:
            gaussians, depth_near = self._reconstruct_gaussians(frames, masks, camera, times, n_track, notes)
        timings["gaussians"], tick = time.perf_counter() - tick, time.perf_counter()

        state = self._initial_state(gaussians, masks[:n_track], camera, fps, times[:n_track], gaussians_given,
                                    depth_near, notes)
        if state.trusted and abs(state.scale - 1.0) > 1e-6:
            gaussians = gaussians.scaled_about(camera.center, state.scale)
        means = gaussians.means.detach().cpu().numpy()
        check_reconstruction(means, camera)
        bottom = float(means[:, 2].min())
        if bottom < 0:
            notes.append(f"reconstruction reaches {-bottom:.3f} m below the ground plane")
        timings["initial_state"], tick = time.perf_counter() - tick, time.perf_counter()

        anchors = sample_anchors(means, self.lattice.num_anchors, object_id)  # (N_A, 3)
        springs, rest = knn_springs(anchors, self.lattice.k_neighbors)
        motion = _motion_of_anchors(state, anchors, times)
        velocity, spin = np.asarray(motion.velocity), np.asarray(motion.angular_velocity)
        timings["lattice"], tick = time.perf_counter() - tick, time.perf_counter()

        # The physics refers to the object's size and volume as the asset's anchors give them (params.py).
        size, volume = object_size(anchors), object_volume(anchors)
        guess = None
        if self.physics_predictor is not None:
            guess = self.physics_predictor.predict_estimate(frames[even], masks[even], size, volume, fps,
                                                            cfg.known_mass)
        if guess is not None and not cfg.refine:
            # The learned prediction as it is, with the network's own uncertainty: a simulation check around it
            # costs time and did not improve it (weights/MODEL_CARD.md, "Measurements behind the defaults").
            estimate = guess
            physics_loss = float("nan")
            notes.append(f"physics from the learned predictor ({self.physics_predictor.name})")
        else:
            refined = estimate_physics(gaussians, masks[even], camera, object_id, velocity, fps, cfg.known_mass,
                                       None if guess is None else guess.params, cfg.refine_config(), cfg.device,
                                       size=size, volume=volume, angular_velocity=spin)
            notes += refined.notes
            estimate, physics_loss = refined.estimate, refined.loss
        timings["physics"], tick = time.perf_counter() - tick, time.perf_counter()
        learned = guess is not None and estimate is guess and getattr(self.physics_predictor,
                                                                      "predicts_contact_damping", False)
        estimate = self._contact_damping(estimate, learned, gaussians, masks[even], camera, object_id, state, even,
                                         velocity, spin, fps, notes)
        timings["contact"], tick = time.perf_counter() - tick, time.perf_counter()

        asset = SimAsset(object_id, gaussians.detach(), anchors.astype(np.float32), springs.astype(np.int64),
                         rest.astype(np.float32), self.lattice.k_neighbors, cfg.binding_neighbors,
                         float(cfg.binding_power), estimate, motion).validate()
        timings["asset"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - start
        return PipelineResult(asset, timings, velocity, notes, physics_loss, spin, state)

    def _contact_damping(self, estimate: PhysicsEstimate, learned: bool, gaussians: GaussianCloud,
                         masks: np.ndarray, camera: Camera, object_id: str, state: InitialState, even: np.ndarray,
                         velocity, spin, fps: float, notes: list) -> PhysicsEstimate:
        """The estimate with its contact damping searched on the evenly spaced masks after the impact; without an
        impact in the clip (or with estimate_contact off) the learned prediction's (`learned`: the estimate carries
        one) or the prior."""
        cfg = self.config
        prior = ((estimate.contact_damping, estimate.std_of("contact_damping"), "the learned predictor") if learned
                 else (CONTACT_DAMPING_PRIOR, CONTACT_DAMPING_PRIOR_STD, "the prior"))
        if not cfg.estimate_contact:
            notes.append(f"contact damping {prior[0]:.3g} 1/s at 1 m from {prior[2]} (search off)")
            return dataclasses.replace(estimate, contact_damping=float(prior[0]),
                                       std={**estimate.std, "contact_damping": float(prior[1])})
        impact = None if state.impact_frame is None else int(np.searchsorted(even, state.impact_frame))
        found = estimate_contact_damping(gaussians, masks, camera, object_id, estimate, impact, velocity, spin, fps,
                                         cfg.refine_config(), cfg.device, prior=prior,
                                         objective=cfg.contact_objective)
        notes.extend(found.notes)
        if found.observed:
            notes.append(f"contact damping {found.contact_damping:.3g} +- {found.std:.2g} 1/s at 1 m from the "
                         f"{masks.shape[0] - 1 - impact} frame(s) after the impact")
        return dataclasses.replace(estimate, contact_damping=found.contact_damping,
                                   std={**estimate.std, "contact_damping": found.std})

    @staticmethod
    def _initial_state(gaussians: GaussianCloud, masks: np.ndarray, camera: Camera, fps: float, times: np.ndarray,
                       given: bool, depth_near: bool, notes: list) -> InitialState:
        """The joint frame-0 fit (models/initial_state.py) on the reconstructed Gaussians' centres; given Gaussians
        keep their depth, ones the free-fall depth placed are searched near it. A depth the fit cannot trust is kept
        as reconstructed, and the notes say which cue failed."""
        state = fit_initial_state(gaussians.means.detach().cpu().numpy(), masks, camera, fps, trust_depth=not given,
                                  depth_near=depth_near, times=times)
        notes.extend(state.notes)
        if state.trusted and not given:
            notes.append(f"depth {state.depth:.3f} +- {state.depth_std:.3f} m from the joint initial-state fit "
                         f"(x{state.scale:.3f} of the Gaussian stage's depth)")
        return state


def _motion_of_anchors(state: InitialState, anchors: np.ndarray, times: np.ndarray) -> InitialMotion:
    """The fitted state expressed at the anchors' centroid (the point the simulator spins the anchors about); times
    (T,) s of the clip's frames."""
    centroid = np.asarray(anchors, np.float64).mean(0)
    impact = float("nan") if state.impact_frame is None else float(times[state.impact_frame])
    return InitialMotion(tuple(state.velocity_at(centroid).tolist()), tuple(state.angular_velocity.tolist()),
                         tuple(np.nan_to_num(state.velocity_std, nan=0.0).tolist()),
                         tuple(np.nan_to_num(state.angular_velocity_std, nan=0.0).tolist()),
                         float(state.depth), float(state.depth_std), bool(state.trusted), impact)


@dataclass
class FuturePrediction:
    anchors: np.ndarray  # (T, N_A, 3) anchor positions, frame 0 = the asset's rest pose
    gaussian_means: np.ndarray  # (T, N, 3)
    rgb: np.ndarray | None  # (T, H, W, 3) uint8 renders (None without a camera)
    masks: np.ndarray | None  # (T, H, W) uint8, 255 where rendered alpha > 0.5


def rigid_velocities(anchors, velocity, angular_velocity=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Anchor velocities (N_A, 3) of a rigid motion: `velocity` (3,) m/s of the anchors' centroid plus a spin
    `angular_velocity` (3,) rad/s about it (world frame)."""
    anchors = np.asarray(anchors, np.float64)
    v, w = (np.asarray(a, np.float64).reshape(-1) for a in (velocity, angular_velocity))
    for name, value, given in (("initial_velocity", v, velocity), ("angular_velocity", w, angular_velocity)):
        if value.shape != (3,) or not np.isfinite(value).all():
            raise ValueError(f"{name} must be 3 finite numbers, got {given!r}")
    return rigid_velocity(anchors, v, w, anchors.mean(0)).astype(np.float32)


def predict_future(asset: SimAsset, initial_velocity=(0.0, 0.0, 0.0), num_frames: int = 30,
                   camera: Camera | None = None, fps: float = 30.0, substeps: int = 30,
                   background=(1.0, 1.0, 1.0), device: str = "cpu",
                   angular_velocity=(0.0, 0.0, 0.0)) -> FuturePrediction:
    """Re-simulate the asset from its rest pose moving at `initial_velocity` (3,) m/s and spinning at
    `angular_velocity` (3,) rad/s about its anchors' centroid for `num_frames` frames (frame 0 included), and
    render them with `camera` when given. `substeps` is raised where the physics needs more to stay stable."""
    asset.validate()
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    velocities = rigid_velocities(asset.anchors, initial_velocity, angular_velocity)  # (N_A, 3)
    builder = ModelBuilder()
    builder.add_object(asset.anchors, asset.physics.params, asset.lattice(), object_id=asset.object_id,
                       dissipation=asset.physics.dissipation())
    model = builder.finalize(device)
    substeps = max(int(substeps), model.required_substeps(fps))
    x0 = model.rest_positions.clone()
    state = State(x0, torch.as_tensor(velocities, device=device))
    with torch.no_grad():
        traj = x0[None]
        if num_frames > 1:
            traj = torch.cat([traj, simulate(model, state, num_frames=num_frames - 1, substeps=substeps, fps=fps)])
        gaussians = asset.gaussians.to(device)
        binding = compute_binding(gaussians.means, x0, asset.binding_neighbors, asset.binding_power)
        means = apply_binding(binding, traj, x0, gaussians.means)  # (T, N, 3)
        rgb = masks = None
        if camera is not None:
            out = render_sequence(gaussians, means, camera.to(device), background=background)
            rgb = to_uint8(out.rgb)
            masks = np.where(out.alpha.cpu().numpy() > 0.5, 255, 0).astype(np.uint8)
    return FuturePrediction(traj.cpu().numpy(), means.cpu().numpy(), rgb, masks)
