"""The silhouette rollout: simulate objects with given paper params -> bind Gaussians -> render on black -> L2
against observed frames. One path for the physics predictor's self-supervised training loss (training/rollout.py)
and for the test-time estimation (models/physics_by_simulation.py), so the two cannot drift apart.

An object is prepared once (`prepare_object`): a random subset of its frame-0 Gaussians whose scales are widened to
cover the volume, bound to the anchors of a small lattice, and a render camera at a reduced size (`scaled_camera`).
A model of one or more objects (`build_model`, placeholder params: every rollout passes its own) is then rolled
out for any (B, 4) paper params (`rollout_loss`).

Each caller keeps what it chooses, as explicit options:
- widening of the subset: `first_alpha=None` (training) widens by the full log((n/k)^(1/3)); with the frame-0
  observed silhouette (estimation) the widening among 0..full whose frame-0 render best matches it wins;
- loss: silhouette L2 weighted by `silhouette_weight`, plus, when a colour target is given (training), a colour
  L2 of the premultiplied render weighted by `rgb_weight`;
- compared frames: all simulated frames (training) or a subset `frames` (estimation: every frame_stride-th);
- targets: each caller resizes its own observations to the render camera's size (training: the data set's
  alpha and colour by torch area averaging; estimation: binary masks by OpenCV area averaging, `resize_masks`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..binding import Binding, apply_binding, compute_binding
from ..gaussians import GaussianCloud
from ..physics import LatticeConfig, Model, ModelBuilder, PhysicsParams, State, simulate
from ..render import Camera, render_sequence

__all__ = ["RolloutObject", "scaled_camera", "resize_masks", "render_subset", "prepare_object", "build_model",
           "rollout_frames", "rollout_loss"]

# The model's stored params; never simulated (every rollout passes its own), but the builder wants valid ones.
PLACEHOLDER_PARAMS = PhysicsParams(1e-3, 0.1, 1e-3, 0.5)
BLACK = (0.0, 0.0, 0.0)
WIDENING_CANDIDATES = 5  # widenings tried between 0 and the full one when fitting the first frame


@dataclass
class RolloutObject:
    """What stays fixed while params change: one object's lattice, initial motion and rendered Gaussians."""

    object_id: str
    anchors: np.ndarray  # (N_A, 3) float64 lattice anchors at frame 0
    rest: torch.Tensor  # (N_A, 3) float32 the same anchors: the binding's rest pose
    velocity: torch.Tensor  # (N_A, 3) initial velocities, m/s
    proxy: GaussianCloud  # the rendered Gaussians at frame 0 (a widened subset)
    binding: Binding
    camera: Camera  # render camera (reduced size)


def scaled_camera(camera: Camera, size: int) -> tuple[Camera, float]:
    """The same view rendered with its longest side `size` px. Returns (camera, scale)."""
    scale = size / max(camera.width, camera.height)
    K = camera.K.clone()
    K[:2] *= scale
    w, h = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
    return Camera(K, camera.world_to_cam, w, h), scale


def resize_masks(masks: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, H, W) masks (object > 0) -> (T, height, width) float32 coverage in [0, 1] (area averaging)."""
    out = [cv2.resize((m > 0).astype(np.float32), (width, height), interpolation=cv2.INTER_AREA) for m in masks]
    return np.stack(out).astype(np.float32)


def _widened(cloud: GaussianCloud, amount: float) -> GaussianCloud:
    return GaussianCloud(cloud.means, cloud.log_scales + float(amount), cloud.quats, cloud.colors,
                         cloud.opacity_logits)


def render_subset(gaussians: GaussianCloud, max_gaussians: int, seed: int) -> tuple[GaussianCloud, float]:
    """At most `max_gaussians` Gaussians drawn at random (kept in order) and the log-scale widening that keeps
    the volume covered by fewer of them, log((n / k)^(1/3)) (0 when all are kept)."""
    n = gaussians.num_gaussians
    if n <= max_gaussians:
        return gaussians, 0.0
    pick = np.sort(np.random.default_rng(seed).choice(n, max_gaussians, replace=False))
    return gaussians.subset(torch.as_tensor(pick, device=gaussians.device)), math.log((n / max_gaussians) ** (1 / 3))


def _fitted_widening(cloud: GaussianCloud, full: float, camera: Camera, first_alpha: torch.Tensor) -> float:
    """The widening in [0, full] whose frame-0 silhouette best matches `first_alpha` (too wide inflates the
    silhouette, which the loss would then explain by a collapse; too narrow leaves holes)."""
    candidates = []
    for widen in np.linspace(0.0, full, WIDENING_CANDIDATES):
        trial = _widened(cloud, widen)
        with torch.no_grad():
            alpha = render_sequence(trial, trial.means[None], camera, background=BLACK).alpha
        candidates.append((float(((alpha[0] - first_alpha) ** 2).mean()), float(widen)))
    return min(candidates)[1]


def prepare_object(object_id: str, gaussians: GaussianCloud, anchors: np.ndarray, velocity, camera: Camera,
                   max_gaussians: int, binding_neighbors: int, binding_power: float, device: str, seed: int = 0,
                   first_alpha: torch.Tensor | None = None) -> RolloutObject:
    """gaussians: the object at frame 0; anchors (N_A, 3) its lattice at frame 0; velocity (N_A, 3) or (3,) m/s;
    camera: the render camera (see scaled_camera). first_alpha: (h, w) observed frame-0 coverage at the camera's
    size to fit the subset's widening to; None widens by the full amount."""
    g = gaussians.detach().to(device)
    g, full = render_subset(g, max_gaussians, seed)
    if full > 0:
        g = _widened(g, full if first_alpha is None else _fitted_widening(g, full, camera, first_alpha))
    rest = torch.as_tensor(anchors, dtype=torch.float32, device=device)
    velocity = torch.as_tensor(np.asarray(velocity, np.float32), device=device).reshape(-1, 3)
    return RolloutObject(object_id, np.asarray(anchors, np.float64), rest, velocity.expand(rest.shape[0], 3), g,
                         compute_binding(g.means, rest, binding_neighbors, binding_power), camera)


def build_model(objects: list[RolloutObject], lattice: LatticeConfig, device: str) -> Model:
    """One model holding the objects in order (placeholder params)."""
    builder = ModelBuilder()
    for obj in objects:
        builder.add_object(obj.anchors, PLACEHOLDER_PARAMS, lattice, object_id=obj.object_id)
    return builder.finalize(device)


def _groups(objects: list[RolloutObject]) -> list[tuple[int, int]]:
    """(first index, count) of each run of the same object: copies of one object render in one batch."""
    runs: list[list[int]] = []
    for i, obj in enumerate(objects):
        if runs and objects[runs[-1][0]] is obj:
            runs[-1][1] += 1
        else:
            runs.append([i, 1])
    return [(start, count) for start, count in runs]


def rollout_frames(objects: list[RolloutObject], model: Model, params: torch.Tensor, num_frames: int,
                   substeps: int, fps: float, truncated: bool, frames: np.ndarray | None = None):
    """Simulate `model` (objects[b] is its object b; copies of one object may repeat) from the objects' frame-0
    state with (B, 4) paper params for num_frames frames, bind and render the `frames` (indices into the
    simulated frames; None: all) on black. Returns alpha (B, F, h, w), colour (B, F, h, w, 3) and the
    trajectory (T, sum N_A, 3). Substeps are raised where the params need more for stability."""
    x0 = model.rest_positions
    state = State(x0.clone(), torch.cat([obj.velocity for obj in objects]).to(x0.device))
    traj = simulate(model, state, num_frames=num_frames, substeps=substeps, params=params, fps=fps,
                    detach_every_frame=truncated)  # (T, sum N_A, 3)
    picked = traj if frames is None else traj[torch.as_tensor(frames, device=traj.device)]  # (F, sum N_A, 3)
    alphas, colours = [], []
    for start, count in _groups(objects):
        obj = objects[start]
        n_a = obj.rest.shape[0]
        anchor_span = slice(model.object_slice(start).start, model.object_slice(start + count - 1).stop)
        a_traj = picked[:, anchor_span]  # (F, count * N_A, 3)
        a_traj = a_traj.reshape(a_traj.shape[0], count, n_a, 3).transpose(0, 1)  # (count, F, N_A, 3)
        means = apply_binding(obj.binding, a_traj, obj.rest, obj.proxy.means)  # (count, F, N, 3)
        out = render_sequence(obj.proxy, means.reshape(-1, obj.proxy.num_gaussians, 3), obj.camera,
                              background=BLACK, backend="auto")
        alphas.append(out.alpha.reshape(count, -1, *out.alpha.shape[1:]))
        colours.append(out.rgb.reshape(count, -1, *out.rgb.shape[1:]))
    return torch.cat(alphas), torch.cat(colours), traj


def rollout_loss(objects: list[RolloutObject], model: Model, params: torch.Tensor, num_frames: int, substeps: int,
                 fps: float, truncated: bool, target_alpha: torch.Tensor, frames: np.ndarray | None = None,
                 target_colour: torch.Tensor | None = None, silhouette_weight: float = 1.0,
                 rgb_weight: float = 0.0):
    """Per-object loss (B,) of `rollout_frames` against target_alpha (B, F, h, w), or (F, h, w) for all:
    silhouette_weight x alpha L2, plus with target_colour (B, F, h, w, 3) rgb_weight x colour L2.
    Returns (loss, alpha, colour)."""
    alpha, colour, _ = rollout_frames(objects, model, params, num_frames, substeps, fps, truncated, frames)
    loss = silhouette_weight * ((alpha - target_alpha) ** 2).mean(dim=(1, 2, 3))
    if target_colour is not None:
        loss = loss + rgb_weight * ((colour - target_colour) ** 2).mean(dim=(1, 2, 3, 4))
    return loss, alpha, colour
