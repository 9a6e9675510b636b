"""A drop clip with known physics, built from core parts only (procedural ellipsoid, Warp simulation, torch
renderer): ground truth for tests, benchmarks and demos when no dataset clip is at hand."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from reconphys_ros.core.binding import apply_binding, compute_binding
from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.images import to_uint8
from reconphys_ros.core.physics import COARSE_LATTICE, LatticeConfig, ModelBuilder, PhysicsParams, State, sample_anchors, simulate
from reconphys_ros.core.physics.params import dissipation_from_contact_damping
from reconphys_ros.core.render import Camera, look_at, render_sequence

__all__ = ["DropClip", "make_drop_clip"]


@dataclass
class DropClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    masks: np.ndarray  # (T, H, W) uint8, 255 on the object
    camera: Camera
    params: PhysicsParams  # ground truth, paper convention
    fps: float
    initial_velocity: np.ndarray  # (3,) m/s
    gaussians: GaussianCloud  # object at frame 0, world frame
    gaussian_means: np.ndarray  # (T, N, 3) ground-truth Gaussian centres per frame


def _ellipsoid_cloud(radii, centre, num: int, rng: np.random.Generator) -> GaussianCloud:
    """Gaussians filling an ellipsoid, coloured by a smooth stripe pattern (so colour reveals motion)."""
    pts = rng.normal(size=(num * 3, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    pts *= rng.uniform(0, 1, (len(pts), 1)) ** (1 / 3)
    pts = (pts[:num] * np.asarray(radii)) + np.asarray(centre)
    spacing = (np.prod(radii) * 4 / 3 * math.pi / num) ** (1 / 3)
    colors = 0.5 + 0.4 * np.stack([np.sin(pts[:, 2] * 40), np.cos(pts[:, 0] * 30), np.sin(pts[:, 1] * 25)], 1)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    quats = np.zeros((num, 4))
    quats[:, 0] = 1
    return GaussianCloud(t(pts), t(np.full((num, 3), math.log(0.6 * spacing))), t(quats), t(colors),
                         t(np.full(num, 3.0))).validate()


def make_drop_clip(params: PhysicsParams = PhysicsParams(1.0, 200.0, 1.0, 0.5), num_frames: int = 30,
                   resolution: int = 96, fps: float = 30.0, radii=(0.12, 0.08, 0.15), drop_gap: float = 0.15,
                   velocity=(0.3, 0.0, 0.0), lattice: LatticeConfig = COARSE_LATTICE, num_gaussians: int = 3000,
                   substeps: int = 60, object_id: str = "synthetic_ellipsoid", seed: int = 0,
                   contact_damping: float = 0.0) -> DropClip:
    """Drop an ellipsoid (radii m) from `drop_gap` m above the ground with `velocity`, seen by one camera.
    contact_damping: the size-independent contact dissipation (1/s at 1 m, physics/params.py)."""
    params.validate()
    rng = np.random.default_rng(seed)
    centre = (0.0, 0.0, drop_gap + radii[2])
    cloud = _ellipsoid_cloud(radii, centre, num_gaussians, rng)
    anchors = sample_anchors(cloud.means.numpy(), lattice.num_anchors, object_id)
    builder = ModelBuilder()
    builder.add_object(anchors, params, lattice, object_id=object_id,
                       dissipation=dissipation_from_contact_damping(contact_damping))
    model = builder.finalize("cpu")
    x0 = model.rest_positions.clone()
    v0 = torch.as_tensor(np.asarray(velocity, np.float32)).expand_as(x0).contiguous()
    with torch.no_grad():
        traj = simulate(model, State(x0, v0), num_frames=num_frames - 1, substeps=substeps, fps=fps)
    traj = torch.cat([x0[None], traj])  # (T, N_A, 3)
    binding = compute_binding(cloud.means, x0, 8, 2.0)
    with torch.no_grad():
        means = apply_binding(binding, traj, x0, cloud.means)  # (T, N, 3)
    size = 2 * max(radii)
    target = (0.1, 0.0, 0.45 * (drop_gap + 2 * radii[2]))
    focal = resolution * 1.2
    distance = focal / resolution * (drop_gap + 2 * radii[2] + 0.5 * size) * 1.6
    camera = look_at((target[0], -distance, target[2] + 0.3 * distance), target, fx=focal, width=resolution,
                     height=resolution)
    with torch.no_grad():
        out = render_sequence(cloud, means, camera, background=(0.92, 0.92, 0.92), backend="torch")
    frames = to_uint8(out.rgb)
    masks = np.where(out.alpha.numpy() > 0.5, 255, 0).astype(np.uint8)
    return DropClip(frames, masks, camera, params, fps, np.asarray(velocity, np.float32), cloud, means.numpy())
