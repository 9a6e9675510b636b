"""The differentiable loop of self-supervised training: predicted params -> simulate -> bind -> render -> loss.

The rollout itself is core/models/silhouette_rollout.py, shared with the test-time estimation. For each clip a
`ClipScene` holds what stays fixed while the physics predictor trains (the paper freezes its 3DGS predictor): the
object's canonical Gaussians and anchors at frame 0 and its initial velocity, here taken from the data set (an
oracle for the frozen Gaussian predictor, see weights/MODEL_CARD.md), re-sampled onto a small lattice
(resolution-independent parameters, physics/lattice.py) and a subset of Gaussians rendered at low resolution, widened
by the full log((n/k)^(1/3)).

Self forcing: the rollout starts from the canonical state once and every frame starts from the simulator's own
previous state (never from the observed frame). Truncated backprop (`truncated=True`): the state entering each
frame is detached, so gradients reach the params through each frame's own substeps only (cheap, and robust where
full backprop stalls; DESIGN.md).

Loss per clip (documented weights, RolloutConfig): silhouette L2 between rendered alpha and observed alpha plus
photometric L2 between the rendered premultiplied colour and the observed colour times the observed alpha (the
object's appearance without the background, which the Gaussians do not model), averaged over frames 1..T-1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.geometry import rigid_velocity
from reconphys_ros.core.models import silhouette_rollout as sr
from reconphys_ros.core.physics import LatticeConfig, sample_anchors
from reconphys_ros.core.physics.integrator import DEFAULT_FPS
from reconphys_ros.core.render import Camera

__all__ = ["RolloutConfig", "ClipScene", "prepare_scene", "initial_velocities", "rollout", "rollout_loss"]


@dataclass(frozen=True)
class RolloutConfig:
    num_anchors: int = 128  # training lattice (parameters stay in the paper convention)
    k_neighbors: int = 16
    render_size: int = 32  # px, longest side
    max_gaussians: int = 256  # rendered subset (scales widened to cover the volume)
    substeps: int = 10  # per frame; raised automatically where the params need more for stability
    truncated: bool = True  # detach the state before each frame
    silhouette_weight: float = 1.0
    rgb_weight: float = 1.0
    binding_neighbors: int = 8
    binding_power: float = 2.0

    def validate(self) -> "RolloutConfig":
        if not 2 <= self.k_neighbors < self.num_anchors:
            raise ValueError(f"need 2 <= k_neighbors < num_anchors, got {self.k_neighbors}, {self.num_anchors}")
        if self.render_size < 8 or self.max_gaussians < 1 or self.substeps < 1:
            raise ValueError("render_size >= 8, max_gaussians >= 1 and substeps >= 1 required")
        if self.silhouette_weight < 0 or self.rgb_weight < 0 or self.silhouette_weight + self.rgb_weight <= 0:
            raise ValueError("loss weights must be >= 0 and not both 0")
        return self

    @property
    def lattice(self) -> LatticeConfig:
        return LatticeConfig(self.num_anchors, self.k_neighbors, name="training")


@dataclass
class ClipScene:
    rollout: sr.RolloutObject  # lattice anchors, initial velocity, rendered Gaussians, binding, render camera
    target_alpha: torch.Tensor  # (T-1, h, w) observed alpha of frames 1..T-1
    target_rgb: torch.Tensor  # (T-1, h, w, 3) observed colour x alpha

    @property
    def object_id(self) -> str:
        return self.rollout.object_id


def initial_velocities(points: np.ndarray, com: np.ndarray, velocity, angular_velocity) -> np.ndarray:
    """Rigid initial motion of the data generator: v + w x (x - com), (N, 3)."""
    return rigid_velocity(points, velocity, angular_velocity, com).astype(np.float32)


def prepare_scene(item: dict, meta: dict, config: RolloutConfig, device: str = "cpu") -> ClipScene:
    """One single-view data set item (SyntheticDataset with views=int) + its meta -> ClipScene."""
    config.validate()
    rgb, alpha = item["rgb"], item["alpha"]  # (T, 3, H, W), (T, 1, H, W)
    if rgb.dim() != 4:
        raise ValueError(f"prepare_scene needs a single-view item (rgb (T, 3, H, W)), got {tuple(rgb.shape)}")
    full_anchors = item["anchors"][0].numpy().astype(np.float64)  # (N_A_data, 3) frame-0 state
    anchors = sample_anchors(full_anchors, config.num_anchors, meta["object_id"]).astype(np.float64)
    init = meta["initial_state"]
    velocity = initial_velocities(anchors, full_anchors.mean(0), init["velocity"], init["angular_velocity"])
    g = item["gaussians"]
    cloud = GaussianCloud(item["gaussian_means"][0].float(), g["log_scales"], g["quats"], g["colors"],
                          g["opacity_logits"])
    camera, _ = sr.scaled_camera(Camera(item["K"], item["world_to_cam"], rgb.shape[-1], rgb.shape[-2]),
                                 config.render_size)
    obj = sr.prepare_object(meta["object_id"], cloud, anchors, velocity, camera.to(device), config.max_gaussians,
                            config.binding_neighbors, config.binding_power, device)
    size = (camera.height, camera.width)
    a = F.interpolate(alpha[1:].float(), size=size, mode="area")  # (T-1, 1, h, w)
    c = F.interpolate((rgb[1:] * alpha[1:]).float(), size=size, mode="area")  # (T-1, 3, h, w)
    return ClipScene(obj, a[:, 0].to(device), c.permute(0, 2, 3, 1).contiguous().to(device))


def rollout(scenes: list[ClipScene], params: torch.Tensor, num_frames: int, config: RolloutConfig,
            dissipation: torch.Tensor | None = None):
    """Simulate all scenes together with (B, 4) paper params (and (B, 3) size-independent dissipation rates, None:
    none) for num_frames frames after frame 0 and render them. Returns (alpha (B, T, h, w), colour (B, T, h, w, 3),
    anchors list of (T, N_A, 3))."""
    objects, model = _model(scenes, params, config, dissipation)
    alpha, colour, traj = sr.rollout_frames(objects, model, params, num_frames, config.substeps, DEFAULT_FPS,
                                            config.truncated)
    return alpha, colour, [traj[:, model.object_slice(b)] for b in range(len(scenes))]


def rollout_loss(scenes: list[ClipScene], params: torch.Tensor, config: RolloutConfig,
                 dissipation: torch.Tensor | None = None):
    """Per-clip loss (B,) of the module docstring, plus the rendered (alpha, colour) for logging. dissipation:
    (B, 3) size-independent rates (constants: no gradient reaches them), None: none."""
    num_frames = scenes[0].target_alpha.shape[0]
    if any(s.target_alpha.shape[0] != num_frames for s in scenes):
        raise ValueError("all scenes of a batch need the same number of frames")
    objects, model = _model(scenes, params, config, dissipation)
    return sr.rollout_loss(objects, model, params, num_frames, config.substeps, DEFAULT_FPS, config.truncated,
                           torch.stack([s.target_alpha for s in scenes]),
                           target_colour=torch.stack([s.target_rgb for s in scenes]),
                           silhouette_weight=config.silhouette_weight, rgb_weight=config.rgb_weight)


def _model(scenes: list[ClipScene], params: torch.Tensor, config: RolloutConfig,
           dissipation: torch.Tensor | None = None):
    if params.shape != (len(scenes), 4):
        raise ValueError(f"params must be ({len(scenes)}, 4), got {tuple(params.shape)}")
    objects = [s.rollout for s in scenes]
    model = sr.build_model(objects, config.lattice, params.device)
    return objects, model if dissipation is None else model.with_dissipation(dissipation.detach())
