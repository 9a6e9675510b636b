"""One data sample: object + random choices -> simulated drop -> 4 rendered views -> files on disk."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import torch

from reconphys_ros.core.physics import (LatticeConfig, ModelBuilder, State, lattice_from_name, object_seed,
                                        sample_anchors, simulate)
from reconphys_ros.core.render import dataset_views, render_sequence
from training.data.backgrounds import BACKGROUND_KINDS, random_background_spec, render_background
from training.data.binding_adapter import BINDING_NEIGHBORS, BINDING_POWER, bind_trajectory
from training.data.objects import build_object
from training.data.params import MotionRanges, SampleChoices, quaternion_to_matrix, sample_choices
from training.data.storage import write_sample

LATE_WINDOW = slice(20, 30)  # frames 21-30: the future-prediction window
# Only for test fixtures (--tiny): parameters still map to the paper convention through the lattice scale.
TINY_LATTICE = LatticeConfig(128, 16, name="tiny")


def resolve_lattice(name: str) -> LatticeConfig:
    """The physics core's presets (coarse / medium / reference) plus `tiny` for test fixtures."""
    return TINY_LATTICE if name == TINY_LATTICE.name else lattice_from_name(name)


@dataclass(frozen=True)
class SampleConfig:
    """Everything that shapes a sample besides its seed (recorded in the manifest)."""

    resolution: int = 128
    num_frames: int = 30
    fps: float = 30.0
    num_gaussians: int = 2048
    lattice: str = "coarse"
    substeps: int = 100  # raised automatically where the stiffest samples need more for stability
    size_range: tuple = (0.5, 1.0)  # m, longest dimension (log-uniform per object); see README of the data set
    fov_deg: float = 40.0
    camera_elevation_deg: float = 12.0
    backgrounds: tuple = BACKGROUND_KINDS
    motion: MotionRanges = field(default_factory=MotionRanges)
    device: str = "cpu"

    def validate(self) -> "SampleConfig":
        if self.resolution < 16 or self.resolution > 2048:
            raise ValueError(f"resolution must be in [16, 2048], got {self.resolution}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        lo, hi = self.size_range
        if not 0 < lo <= hi:
            raise ValueError(f"size_range must satisfy 0 < lo <= hi, got {self.size_range}")
        resolve_lattice(self.lattice)
        self.motion.validate()
        return self

    def to_dict(self) -> dict:
        out = asdict(self)
        out["size_range"] = list(self.size_range)
        out["backgrounds"] = list(self.backgrounds)
        out["motion"] = {k: list(v) if isinstance(v, tuple) else v for k, v in out["motion"].items()}
        return out


def object_size(object_id: str, size_range) -> float:
    """Longest dimension of an object (m): log-uniform in size_range, fixed by the object id."""
    lo, hi = size_range
    u = object_seed(object_id + "/size") / 2.0**64
    return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))


@lru_cache(maxsize=4)
def _object_with_anchors(object_id: str, size: float, num_gaussians: int, num_anchors: int):
    asset = build_object(object_id, size, num_gaussians)
    anchors = sample_anchors(asset.means, num_anchors, object_id)  # (N_A, 3) object frame
    return asset, anchors


def sample_cameras(config: SampleConfig, size: float, center_xy):
    """4 orthogonal views framing the drop region: about 2.5 object sizes across, centred over the start."""
    half_span = 1.25 * size
    distance = half_span / math.tan(math.radians(config.fov_deg / 2))
    target = (float(center_xy[0]), float(center_xy[1]), 1.0 * size)
    eye_height = target[2] + distance * math.tan(math.radians(config.camera_elevation_deg))
    return dataset_views(target=target, distance=distance, height=eye_height, fov_deg=config.fov_deg,
                         width=config.resolution, image_height=config.resolution)


def _kabsch_height(rest: np.ndarray, final: np.ndarray) -> float:
    """z extent of the rest shape rigidly fitted to `final` (what the height would be without deformation)."""
    a, b = rest - rest.mean(0), final - final.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = (u @ np.diag([1, 1, d]) @ vt).T
    fitted = a @ rot.T
    return float(np.ptp(fitted[:, 2]))


def motion_statistics(anchors: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray) -> dict:
    """Heights (collapse check) and late image motion (is the future non-trivial?) of one clip."""
    T = len(anchors)
    h0, h_end = float(np.ptp(anchors[0, :, 2])), float(np.ptp(anchors[-1, :, 2]))
    rigid = _kabsch_height(anchors[0], anchors[-1])
    homog = np.concatenate([anchors, np.ones(anchors.shape[:2] + (1,))], -1)  # (T, N_A, 4)
    cam = np.einsum("vij,tnj->vtni", world_to_cam[:, :3], homog)  # (V, T, N_A, 3)
    px = np.einsum("vij,vtnj->vtni", K, cam)
    px = px[..., :2] / np.maximum(px[..., 2:3], 1e-6)
    step = np.linalg.norm(np.diff(px, axis=1), axis=-1).mean(-1)  # (V, T-1) mean anchor pixel motion per frame
    late = step[:, max(0, LATE_WINDOW.start - 1):LATE_WINDOW.stop - 1]
    return {
        "initial_height": h0,
        "final_height": h_end,
        "final_height_ratio": h_end / max(h0, 1e-9),
        "collapse_ratio": h_end / max(rigid, 1e-9),  # < 1: flattened beyond what a rigid rotation explains
        "late_motion_px_per_frame": float(late.mean()) if late.size else 0.0,
        "min_height_above_ground": float(anchors[:, :, 2].min()),
        "frames": T,
    }


def simulate_sample(object_id: str, seed: int, config: SampleConfig, choices: SampleChoices | None = None):
    """Everything but the images: returns (asset, choices, anchors (T, N_A, 3), means (T, N, 3), lattice, substeps).
    `choices` replaces the random draw (used for the hand-picked example clips)."""
    lattice = resolve_lattice(config.lattice)
    size = object_size(object_id, config.size_range)
    asset, anchors_obj = _object_with_anchors(object_id, size, config.num_gaussians, lattice.num_anchors)
    rng = np.random.default_rng(seed)
    if choices is None:
        choices = sample_choices(rng, size, config.motion)
        choices.background = random_background_spec(rng, config.backgrounds)
    rot = quaternion_to_matrix(choices.orientation)
    means = asset.means.astype(np.float64) @ rot.T
    anchors = anchors_obj.astype(np.float64) @ rot.T
    lift = choices.drop_gap - min(means[:, 2].min(), anchors[:, 2].min())
    means[:, 2] += lift
    anchors[:, 2] += lift
    builder = ModelBuilder()
    builder.add_object(anchors, choices.params, lattice, object_id=object_id)
    model = builder.finalize(config.device)
    com = anchors.mean(0)
    vel = np.asarray(choices.velocity) + np.cross(np.asarray(choices.angular_velocity), anchors - com)  # (N_A, 3)
    x0 = model.rest_positions.clone()
    state = State(x0, torch.as_tensor(vel, dtype=torch.float32, device=config.device))
    substeps = max(config.substeps, model.required_substeps(config.fps))
    with torch.no_grad():
        traj = simulate(model, state, num_frames=config.num_frames - 1, substeps=substeps, fps=config.fps)
    anchor_traj = torch.cat([x0[None], traj]).cpu().numpy().astype(np.float32)  # (T, N_A, 3)
    means_traj = bind_trajectory(means.astype(np.float32), anchor_traj)  # (T, N, 3)
    return asset, choices, anchor_traj, means_traj, lattice, substeps


def render_sample(asset, means_traj: np.ndarray, background: dict, cameras, device: str = "cpu"):
    """rgb (V, T, H, W, 3), alpha (V, T, H, W), depth (V, T, H, W) as float32 numpy."""
    cloud = asset.to_gaussian_cloud(device)
    seq = torch.as_tensor(means_traj, dtype=torch.float32, device=device)
    cloud = cloud.with_means(seq[0])
    with torch.no_grad():
        out = render_sequence(cloud, seq, list(cameras), background=(0.0, 0.0, 0.0), backend="auto")
    color = out.rgb.permute(1, 0, 2, 3, 4).cpu().numpy()  # (V, T, H, W, 3) premultiplied on black
    alpha = out.alpha.permute(1, 0, 2, 3).cpu().numpy()
    depth = out.depth.permute(1, 0, 2, 3).cpu().numpy()
    rgb = np.empty_like(color)
    for v, cam in enumerate(cameras):
        bg = render_background(background, cam.K.cpu().numpy(), cam.world_to_cam.cpu().numpy(), cam.width,
                               cam.height, v)
        rgb[v] = color[v] + (1.0 - alpha[v])[..., None] * bg
    depth = np.where(alpha >= 0.5, depth, 0.0).astype(np.float32)  # depth only where the object is
    return np.clip(rgb, 0, 1).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32), depth


def generate_sample(sample_dir: str, sample_id: str, object_id: str, split: str, seed: int,
                    config: SampleConfig, choices: SampleChoices | None = None) -> dict:
    """Simulate, render and write one sample; returns its meta dict."""
    asset, choices, anchor_traj, means_traj, lattice, substeps = simulate_sample(object_id, seed, config, choices)
    start_xy = anchor_traj[0, :, :2].mean(0)
    cameras = sample_cameras(config, asset.size, start_xy)
    rgb, alpha, depth = render_sample(asset, means_traj, choices.background, cameras, config.device)
    K = np.stack([c.K.cpu().numpy() for c in cameras]).astype(np.float32)
    w2c = np.stack([c.world_to_cam.cpu().numpy() for c in cameras]).astype(np.float32)
    arrays = {
        "anchors": anchor_traj,
        "gaussian_means": means_traj.astype(np.float16),
        "rest_means": means_traj[0].astype(np.float32),
        "rest_log_scales": asset.log_scales,
        "rest_quats": asset.quats,
        "rest_colors": asset.colors,
        "rest_opacity_logits": asset.opacity_logits,
        "K": K,
        "world_to_cam": w2c,
    }
    choice_dict = choices.to_dict()
    meta = {
        "sample_id": sample_id,
        "object_id": object_id,
        "split": split,
        "seed": int(seed),
        "params": choice_dict.pop("params"),
        "param_convention": "paper: m per anchor, k and d per spring on the reference lattice (2048 anchors, K=256)",
        "initial_state": choice_dict,
        "background": choice_dict.pop("background"),
        "object": asset.recipe,
        "lattice": {"name": lattice.name, "num_anchors": lattice.num_anchors, "k_neighbors": lattice.k_neighbors},
        "substeps": int(substeps),
        "fps": float(config.fps),
        "binding": {"neighbors": BINDING_NEIGHBORS, "power": BINDING_POWER},
        "primary_view": 0,
        "stats": motion_statistics(anchor_traj, K, w2c),
    }
    return write_sample(sample_dir, rgb, alpha, depth, arrays, meta)
