"""One data sample: object + random choices -> simulated drop -> 4 rendered views -> files on disk.

Objects are real-sized (default 5 cm - 1 m, log-uniform); physics is drawn in the size-independent form
(params.py). Cameras stand where a robot's would: 4 orthogonal views at 0.4-2.5 m, looking down 10-50 deg, a fixed
60 deg field of view, the distance chosen so that the object fills a drawn 5-60 % of the image height while the
whole drop (start to rest, sideways motion included) stays in view (`sample_cameras`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
import torch

from reconphys_ros.core.physics import (LatticeConfig, ModelBuilder, State, lattice_from_name, object_seed,
                                        sample_anchors, simulate)
from reconphys_ros.core.geometry import rigid_velocity
from reconphys_ros.core.physics.params import object_size as anchor_diameter
from reconphys_ros.core.physics.params import dissipation_from_contact_damping, object_volume
from reconphys_ros.core.render import render_sequence
from reconphys_ros.core.render.camera import focal_from_fov, look_at
from training.data.backgrounds import BACKGROUND_KINDS, random_background_spec, render_background
from training.data.binding_adapter import BINDING_NEIGHBORS, BINDING_POWER, bind_trajectory
from training.data.objects import build_object
from training.data.params import (SIZE_INDEPENDENT_NAMES, ContactDampingDraw, MotionRanges, SampleChoices,
                                  quaternion_to_matrix, sample_choices, sample_contact_damping)
from training.data.storage import write_sample
from training.eval_metrics import after_impact

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
    size_range: tuple = (0.05, 1.0)  # m, longest dimension (log-uniform per object)
    fov_deg: float = 60.0  # fixed field of view across the (square) image, a typical robot RGB camera
    camera_elevation_deg: tuple = (10.0, 50.0)  # looking down, drawn uniformly per sample (all 4 views)
    camera_distance: tuple = (0.4, 2.5)  # m, camera to the centre of the motion (clamp)
    camera_fill: tuple = (0.05, 0.6)  # object height / image height at t = 0, log-uniform per sample
    backgrounds: tuple = BACKGROUND_KINDS
    motion: MotionRanges = field(default_factory=MotionRanges)
    contact_damping: ContactDampingDraw = field(default_factory=ContactDampingDraw)
    device: str = "cpu"

    def validate(self) -> "SampleConfig":
        if self.resolution < 16 or self.resolution > 2048:
            raise ValueError(f"resolution must be in [16, 2048], got {self.resolution}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if not 5.0 <= self.fps <= 500.0:
            raise ValueError(f"fps must be a camera frame rate in [5, 500] Hz, got {self.fps}")
        lo, hi = self.size_range
        if not 0 < lo <= hi:
            raise ValueError(f"size_range must satisfy 0 < lo <= hi, got {self.size_range}")
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        lo, hi = self.camera_elevation_deg
        if not 0.0 <= lo <= hi < 90.0:
            raise ValueError(f"camera_elevation_deg must satisfy 0 <= min <= max < 90, got {self.camera_elevation_deg}")
        lo, hi = self.camera_distance
        if not 0.0 < lo <= hi < float("inf"):
            raise ValueError(f"camera_distance must satisfy 0 < min <= max, got {self.camera_distance}")
        lo, hi = self.camera_fill
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"camera_fill must satisfy 0 < min <= max <= 1, got {self.camera_fill}")
        resolve_lattice(self.lattice)
        self.motion.validate()
        self.contact_damping.validate()
        return self

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("size_range", "camera_elevation_deg", "camera_distance", "camera_fill", "backgrounds"):
            out[name] = list(getattr(self, name))
        out["motion"] = {k: list(v) if isinstance(v, tuple) else v for k, v in out["motion"].items()}
        out["contact_damping"] = {"range": list(self.contact_damping.range),
                                  "off_share": self.contact_damping.off_share}
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


CAMERA_MARGIN = 0.05  # of the image width kept free on each side around the whole motion
CAMERA_POINTS_PER_FRAME = 512  # Gaussian centres per frame used to frame the motion


def _view_rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Rows: right, down, forward (world) of a camera at `azimuth_deg` around the target looking down by
    `elevation_deg` (the convention of render.camera.look_at)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    forward = -np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(forward, right), forward])


def _height_fill(q: np.ndarray, distance: float, tan_half: float) -> float:
    """Image-height fraction spanned by points with camera coordinates q + (0, 0, distance)."""
    y = q[:, 1] / (q[:, 2] + distance)
    return float((y.max() - y.min()) / (2.0 * tan_half))


def _distance_for_fill(q: np.ndarray, fill: float, tan_half: float) -> float:
    """Camera-to-target distance at which points q (camera axes, relative to the target) span `fill` of the
    image height (bisection; the span shrinks monotonically with the distance once all points are in front)."""
    lo = max(1e-3, float(-q[:, 2].min()) + 1e-3)
    hi = max(10.0 * lo, 1e3)
    if _height_fill(q, lo, tan_half) <= fill:
        return lo
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _height_fill(q, mid, tan_half) > fill else (lo, mid)
    return hi


def sample_cameras(config: SampleConfig, means_traj: np.ndarray, rng: np.random.Generator, fixed: dict | None = None):
    """4 orthogonal views of the whole motion where a robot's camera would be. Returns (cameras, record).

    Per sample: elevation uniform in config.camera_elevation_deg, fill fraction log-uniform in config.camera_fill,
    the first view's azimuth uniform (views at +90, +180, +270 deg); `fixed` may set any of these. All views look
    at the centre of the trajectory's bounding box with the fixed field of view config.fov_deg. Each view's
    distance is the one at which the object at t = 0 spans the drawn fill of the image height, raised until every
    Gaussian centre of every frame lies inside the image (5 % margin), then clamped to config.camera_distance.
    """
    fixed = dict(fixed or {})
    lo, hi = config.camera_elevation_deg
    elevation = float(fixed.get("elevation_deg", rng.uniform(lo, hi)))
    lo, hi = config.camera_fill
    fill = float(fixed.get("fill", math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    azimuth0 = float(fixed.get("azimuth_deg", rng.uniform(0.0, 360.0)))
    T, N = means_traj.shape[:2]
    pts = np.asarray(means_traj[:, ::max(1, N // CAMERA_POINTS_PER_FRAME)], np.float64)  # (T, n, 3)
    flat = pts.reshape(-1, 3)
    target = (flat.min(0) + flat.max(0)) / 2.0
    tan_half = math.tan(math.radians(config.fov_deg) / 2.0)
    tan_fit = (1.0 - 2.0 * CAMERA_MARGIN) * tan_half
    focal = focal_from_fov(config.fov_deg, config.resolution)
    d_lo, d_hi = config.camera_distance
    cameras, views = [], []
    for v in range(4):
        azimuth = (azimuth0 + 90.0 * v) % 360.0
        rot = _view_rotation(azimuth, elevation)
        q_all = (flat - target) @ rot.T  # camera coordinates at distance 0
        d_fit = float((np.abs(q_all[:, :2]).max(1) / tan_fit - q_all[:, 2]).max())
        d_fill = _distance_for_fill((pts[0] - target) @ rot.T, fill, tan_half)
        wanted = max(d_fill, d_fit)
        distance = float(min(d_hi, max(d_lo, wanted)))
        clamped = "near" if wanted < d_lo else "far" if wanted > d_hi else None
        eye = target - distance * rot[2]
        cam = look_at(eye.tolist(), target.tolist(), (0.0, 0.0, 1.0), focal, None, config.resolution,
                      config.resolution)
        K, w2c = cam.K.cpu().numpy().astype(np.float64), cam.world_to_cam.cpu().numpy().astype(np.float64)
        xyz = flat @ w2c[:3, :3].T + w2c[:3, 3]
        uv = (xyz @ K.T)[:, :2] / np.maximum(xyz[:, 2:3], 1e-9)
        margin = CAMERA_MARGIN * config.resolution
        in_view = bool((xyz[:, 2] > 0).all() and (uv >= margin - 0.5).all()
                       and (uv <= config.resolution - margin + 0.5).all())
        rows = uv.reshape(T, -1, 2)[:, :, 1]
        towards = eye[:2] - target[:2]
        towards /= max(np.linalg.norm(towards), 1e-12)
        centres = pts.mean(1)  # (T, 3)
        views.append({
            "azimuth_deg": azimuth,
            "distance_m": distance,  # camera to the look-at point (centre of the motion)
            "distance_to_object_m": [float(np.linalg.norm(eye - centres[0])), float(np.linalg.norm(eye - centres[-1]))],
            "fill": float(np.ptp(rows[0]) / config.resolution),  # object height / image height at t = 0
            "fill_max": float(np.ptp(rows, axis=1).max() / config.resolution),
            "clamped": clamped,  # the distance the fill or the motion wanted lay outside camera_distance
            "motion_in_view": in_view,
            "eye": eye.tolist(),
        })
        cameras.append(cam)
    record = {"fov_deg": float(config.fov_deg), "elevation_deg": elevation, "fill_target": fill,
              "azimuth_deg": azimuth0, "target": target.tolist(), "distance_range_m": list(config.camera_distance),
              "views": views}
    return cameras, record


def _kabsch_height(rest: np.ndarray, final: np.ndarray) -> float:
    """z extent of the rest shape rigidly fitted to `final` (what the height would be without deformation)."""
    a, b = rest - rest.mean(0), final - final.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = (u @ np.diag([1, 1, d]) @ vt).T
    fitted = a @ rot.T
    return float(np.ptp(fitted[:, 2]))


def motion_statistics(anchors: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray, fps: float = 30.0) -> dict:
    """Heights (collapse check), late image motion (is the future non-trivial?) and what happens after the impact
    (bounce, roll-out, settling; None without an impact) of one clip."""
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
        **_after_impact_stats(anchors, fps),
    }


def _after_impact_stats(anchors: np.ndarray, fps: float) -> dict:
    """Bounce height and roll-out in object sizes (diameter of the frame-0 anchors), settling time in s."""
    size = anchor_diameter(anchors[0])
    after = after_impact(anchors, size, fps)
    if after is None:
        return {"impact_frame": None, "bounce_sizes": None, "rollout_sizes": None, "settling_s": None}
    return {"impact_frame": after["impact"], "bounce_sizes": after["bounce"] / size,
            "rollout_sizes": after["rollout"] / size, "settling_s": after["settling"]}


def simulate_sample(object_id: str, seed: int, config: SampleConfig, choices: SampleChoices | None = None):
    """Everything but the images: returns (asset, choices, anchors (T, N_A, 3), means (T, N, 3), lattice, substeps).
    `choices` replaces the random draw (used for the hand-picked example clips)."""
    lattice = resolve_lattice(config.lattice)
    size = object_size(object_id, config.size_range)
    asset, anchors_obj = _object_with_anchors(object_id, size, config.num_gaussians, lattice.num_anchors)
    rng = np.random.default_rng(seed)
    if choices is None:
        choices = sample_choices(rng, size, config.motion, anchors=anchors_obj)
        choices.background = random_background_spec(rng, config.backgrounds)
        choices.contact_damping = sample_contact_damping(seed, config.contact_damping)
    rot = quaternion_to_matrix(choices.orientation)
    means = asset.means.astype(np.float64) @ rot.T
    anchors = anchors_obj.astype(np.float64) @ rot.T
    lift = choices.drop_gap - min(means[:, 2].min(), anchors[:, 2].min())
    means[:, 2] += lift
    anchors[:, 2] += lift
    builder = ModelBuilder()
    builder.add_object(anchors, choices.params, lattice, object_id=object_id,
                       dissipation=dissipation_from_contact_damping(choices.contact_damping))
    model = builder.finalize(config.device)
    com = anchors.mean(0)
    vel = rigid_velocity(anchors, choices.velocity, choices.angular_velocity, com)  # (N_A, 3)
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
    camera_rng = np.random.default_rng([int(seed), 0xCA3E7A])  # own stream: fixed choices leave it unchanged
    cameras, camera_record = sample_cameras(config, means_traj, camera_rng, choices.camera)
    # the physics' size and mass: the anchors at rest on this lattice (the same ones the parameters were drawn for)
    _, rest_anchors = _object_with_anchors(object_id, asset.size, config.num_gaussians, lattice.num_anchors)
    size = anchor_diameter(rest_anchors)
    volume = object_volume(rest_anchors)
    params = choices.params
    size_independent = params.size_independent(size)
    velocity = np.asarray(choices.velocity, np.float64)
    for view in camera_record["views"]:
        a = math.radians(view["azimuth_deg"])
        view["velocity_towards_camera"] = float(velocity[0] * math.cos(a) + velocity[1] * math.sin(a))  # m/s
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
    physics_draw = choice_dict.pop("physics")
    choice_dict.pop("camera")
    speed = float(np.hypot(velocity[0], velocity[1]))
    # horizontal heading of the sideways velocity (world, deg; uniform over 360 deg), None when there is none
    choice_dict["heading_deg"] = (float(math.degrees(math.atan2(velocity[1], velocity[0])) % 360.0)
                                  if speed > 0 else None)
    choice_dict["physics_draw"] = physics_draw
    meta = {
        "sample_id": sample_id,
        "object_id": object_id,
        "split": split,
        "seed": int(seed),
        "params": choice_dict.pop("params"),
        "param_convention": ("paper convention in SI units at the object's own size: m = total mass / 2048 (kg per "
                             "anchor of the reference lattice), k (N/m) and d (N s/m) per spring of the reference "
                             "lattice (2048 anchors, K=256); size-independent form in 'size_independent'"),
        "object_size": size,  # m: diameter of the anchors at rest (params.object_size)
        "object_volume": volume,  # m^3: convex hull of the anchors at rest
        "total_mass": params.total_mass,  # kg
        "density": float(physics_draw.get("density", params.total_mass / volume)),  # kg/m^3
        "size_independent": dict(zip(SIZE_INDEPENDENT_NAMES, (float(x) for x in size_independent))),
        "contact_damping": float(choice_dict.pop("contact_damping")),  # 1/s at 1 m (size-independent)
        "initial_state": choice_dict,
        "background": choice_dict.pop("background"),
        "object": asset.recipe,
        "lattice": {"name": lattice.name, "num_anchors": lattice.num_anchors, "k_neighbors": lattice.k_neighbors},
        "substeps": int(substeps),
        "fps": float(config.fps),
        "binding": {"neighbors": BINDING_NEIGHBORS, "power": BINDING_POWER},
        "primary_view": 0,
        "cameras": camera_record,
        "stats": motion_statistics(anchor_traj, K, w2c, config.fps),
    }
    return write_sample(sample_dir, rgb, alpha, depth, arrays, meta)
