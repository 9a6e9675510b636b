"""The differentiable loop of self-supervised training: predicted params -> simulate -> bind -> render -> loss.

For each clip a `ClipScene` holds what stays fixed while the physics predictor trains (the paper freezes its 3DGS
predictor): the object's canonical Gaussians and anchors at frame 0 and its initial velocity, here taken from the
data set (an oracle for the frozen Gaussian predictor, see weights/MODEL_CARD.md), re-sampled onto a small lattice
(resolution-independent parameters, physics/lattice.py) and a subset of Gaussians rendered at low resolution.

Self forcing: the rollout starts from the canonical state once and every frame starts from the simulator's own
previous state (never from the observed frame). Truncated backprop (`truncated=True`): the state entering each
frame is detached, so gradients reach the params through each frame's own substeps only (cheap, and robust where
full backprop stalls; DESIGN.md).

Loss per clip (documented weights, RolloutConfig): silhouette L2 between rendered alpha and observed alpha plus
photometric L2 between the rendered premultiplied colour and the observed colour times the observed alpha (the
object's appearance without the background, which the Gaussians do not model), averaged over frames 1..T-1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reconphys_ros.core.binding import apply_binding, compute_binding
from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.physics import LatticeConfig, ModelBuilder, PhysicsParams, State, sample_anchors, simulate
from reconphys_ros.core.render import Camera, render_sequence

__all__ = ["RolloutConfig", "ClipScene", "prepare_scene", "initial_velocities", "rollout", "rollout_loss"]


@dataclass(frozen=True)
class RolloutConfig:
    num_anchors: int = 128  # training lattice (parameters stay in the paper convention)
    k_neighbors: int = 16
    render_size: int = 32  # px, square
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
    object_id: str
    anchors: np.ndarray  # (N_A, 3) canonical anchors at frame 0 (training lattice)
    velocity: torch.Tensor  # (N_A, 3) initial velocities
    proxy: GaussianCloud  # rendered Gaussians at frame 0
    binding: object
    camera: Camera  # render_size^2 version of the input camera
    target_alpha: torch.Tensor  # (T-1, h, w) observed alpha of frames 1..T-1
    target_rgb: torch.Tensor  # (T-1, h, w, 3) observed colour x alpha


def initial_velocities(points: np.ndarray, com: np.ndarray, velocity, angular_velocity) -> np.ndarray:
    """Rigid initial motion of the data generator: v + w x (x - com), (N, 3)."""
    return (np.asarray(velocity, np.float64) + np.cross(np.asarray(angular_velocity, np.float64),
                                                         points - com)).astype(np.float32)


def _scaled_camera(K: torch.Tensor, w2c: torch.Tensor, width: int, size: int) -> Camera:
    K = K.clone().float()
    K[:2] *= size / width
    return Camera(K, w2c.float(), size, size)


def prepare_scene(item: dict, meta: dict, config: RolloutConfig, device: str = "cpu") -> ClipScene:
    """One single-view data set item (SyntheticDataset with views=int) + its meta -> ClipScene."""
    config.validate()
    rgb, alpha = item["rgb"], item["alpha"]  # (T, 3, H, W), (T, 1, H, W)
    if rgb.dim() != 4:
        raise ValueError(f"prepare_scene needs a single-view item (rgb (T, 3, H, W)), got {tuple(rgb.shape)}")
    full_anchors = item["anchors"][0].numpy().astype(np.float64)  # (N_A_data, 3) frame-0 state
    g = item["gaussians"]
    means0 = item["gaussian_means"][0].float()
    anchors = sample_anchors(full_anchors, config.num_anchors, meta["object_id"]).astype(np.float64)
    init = meta["initial_state"]
    velocity = initial_velocities(anchors, full_anchors.mean(0), init["velocity"], init["angular_velocity"])
    n = means0.shape[0]
    pick = torch.as_tensor(np.sort(np.random.default_rng(0).choice(n, min(n, config.max_gaussians), replace=False)))
    widen = math.log((n / len(pick)) ** (1.0 / 3.0))  # keep the volume covered by fewer Gaussians
    proxy = GaussianCloud(means0[pick], g["log_scales"][pick] + widen, g["quats"][pick], g["colors"][pick],
                          g["opacity_logits"][pick]).to(device)
    anchors_t = torch.as_tensor(anchors, dtype=torch.float32, device=device)
    binding = compute_binding(proxy.means, anchors_t, config.binding_neighbors, config.binding_power)
    camera = _scaled_camera(item["K"], item["world_to_cam"], rgb.shape[-1], config.render_size).to(device)
    size = (config.render_size, config.render_size)
    a = F.interpolate(alpha[1:].float(), size=size, mode="area")  # (T-1, 1, h, w)
    c = F.interpolate((rgb[1:] * alpha[1:]).float(), size=size, mode="area")  # (T-1, 3, h, w)
    return ClipScene(meta["object_id"], anchors, torch.as_tensor(velocity, device=device), proxy, binding, camera,
                     a[:, 0].to(device), c.permute(0, 2, 3, 1).contiguous().to(device))


def rollout(scenes: list[ClipScene], params: torch.Tensor, num_frames: int, config: RolloutConfig):
    """Simulate all scenes together with (B, 4) paper params for num_frames frames after frame 0 and render
    them. Returns (alpha (B, T, h, w), colour (B, T, h, w, 3), anchors list of (T, N_A, 3))."""
    if params.shape != (len(scenes), 4):
        raise ValueError(f"params must be ({len(scenes)}, 4), got {tuple(params.shape)}")
    device = params.device
    builder = ModelBuilder()
    for s in scenes:
        builder.add_object(s.anchors, PhysicsParams(1.0, 100.0, 1.0, 0.5), config.lattice, object_id=s.object_id)
    model = builder.finalize(device)
    state = State(model.rest_positions.clone(), torch.cat([s.velocity for s in scenes]).to(device))
    traj = simulate(model, state, num_frames=num_frames, substeps=config.substeps, params=params,
                    detach_every_frame=config.truncated)  # (T, sum N_A, 3)
    alphas, colours, anchors = [], [], []
    for b, s in enumerate(scenes):
        a_traj = traj[:, model.object_slice(b)]  # (T, N_A, 3)
        rest = model.rest_positions[model.object_slice(b)]
        means = apply_binding(s.binding, a_traj, rest, s.proxy.means)  # (T, N, 3)
        out = render_sequence(s.proxy, means, s.camera, background=(0.0, 0.0, 0.0), backend="auto")
        alphas.append(out.alpha)
        colours.append(out.rgb)
        anchors.append(a_traj)
    return torch.stack(alphas), torch.stack(colours), anchors


def rollout_loss(scenes: list[ClipScene], params: torch.Tensor, config: RolloutConfig):
    """Per-clip loss (B,) of the module docstring, plus the rendered (alpha, colour) for logging."""
    num_frames = scenes[0].target_alpha.shape[0]
    if any(s.target_alpha.shape[0] != num_frames for s in scenes):
        raise ValueError("all scenes of a batch need the same number of frames")
    alpha, colour, _ = rollout(scenes, params, num_frames, config)
    t_alpha = torch.stack([s.target_alpha for s in scenes])
    t_rgb = torch.stack([s.target_rgb for s in scenes])
    loss = (config.silhouette_weight * ((alpha - t_alpha) ** 2).mean(dim=(1, 2, 3))
            + config.rgb_weight * ((colour - t_rgb) ** 2).mean(dim=(1, 2, 3, 4)))
    return loss, alpha, colour
