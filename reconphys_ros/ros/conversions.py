"""Conversions between ROS messages and numpy / core dataclasses (no cv_bridge: it is broken with numpy 2).

Arrays go through buffers (array.array / np.frombuffer), never Python lists: a 100k-Gaussian asset converts in
milliseconds. Every function raises ValueError with a message that says what was wrong.
"""
from __future__ import annotations

import array
import math
import sys

import numpy as np
import torch
from geometry_msgs.msg import Pose
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from reconphys_ros.core.asset import InitialMotion, PhysicsEstimate, SimAsset, validate_object_id
from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.geometry import unit_quaternion
from reconphys_ros.core.images import IMAGE_ENCODINGS, image_to_numpy  # noqa: F401 (re-exported)
from reconphys_ros.core.physics.lattice import LatticeScale
from reconphys_ros.core.physics.params import check_known_mass
from reconphys_ros.core.render.camera import check_intrinsics
from reconphys_ros.msg import GaussianAsset
from reconphys_ros.msg import InitialMotion as InitialMotionMsg
from reconphys_ros.msg import PhysicsParams as PhysicsParamsMsg

_HOST_BIG_ENDIAN = sys.byteorder == "big"


def _float32_field(values: np.ndarray) -> array.array:
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def _uint32_field(values: np.ndarray) -> array.array:
    return array.array("I", np.ascontiguousarray(values, dtype=np.uint32).tobytes())


def _read_field(field, dtype, name: str, count: int, width: int = 1) -> np.ndarray:
    """Flat message array -> (count, width) numpy copy, checking its length."""
    values = np.frombuffer(field, dtype=dtype) if len(field) else np.zeros(0, dtype=dtype)
    if values.size != count * width:
        raise ValueError(f"field '{name}' has {values.size} values, expected {count} x {width} = {count * width}")
    values = values.reshape(count, width) if width > 1 else values
    return values.copy()


# ---------------------------------------------------------------------------------------------------- images
def numpy_to_image(image: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """(H, W, 3) uint8 (rgb8/bgr8), (H, W) uint8 (mono8) or (H, W) float32 (32FC1) -> sensor_msgs/Image."""
    if encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    image = np.asarray(image)
    expected_ndim = 3 if channels == 3 else 2
    if image.ndim == 3 and channels == 1 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != expected_ndim or (channels == 3 and image.shape[2] != 3):
        raise ValueError(f"{encoding} needs an array of shape {'(H, W, 3)' if channels == 3 else '(H, W)'}, "
                         f"got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has no pixels: shape {image.shape}")
    if image.dtype != dtype:
        raise ValueError(f"{encoding} needs dtype {np.dtype(dtype).name}, got {image.dtype}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN)
    msg.step = int(image.shape[1] * channels * image.itemsize)
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


# ---------------------------------------------------------------------------------------------------- cameras
def camera_info_to_k(msg: CameraInfo) -> tuple[np.ndarray, int, int]:
    """CameraInfo -> (K (3, 3) float32, width, height)."""
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if msg.width <= 0 or msg.height <= 0:
        raise ValueError(f"CameraInfo has no image size: {msg.width}x{msg.height}")
    check_intrinsics(k, int(msg.width), int(msg.height), "CameraInfo.k")  # pinhole, plausible field of view
    return k.astype(np.float32), int(msg.width), int(msg.height)


def camera_info_from_k(k: np.ndarray, width: int, height: int, header: Header | None = None) -> CameraInfo:
    """Pinhole CameraInfo without distortion: K, P = [K | 0], R = I."""
    k = np.asarray(k, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        raise ValueError(f"K must be a finite (3, 3) matrix, got shape {k.shape}")
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


# ---------------------------------------------------------------------------------------------------- point clouds
def pointcloud2_from_points(points: np.ndarray, colors: np.ndarray | None = None,
                            header: Header | None = None) -> PointCloud2:
    """(N, 3) float positions (+ optional (N, 3) RGB, uint8 or float in [0, 1]) -> PointCloud2 with fields x, y, z
    (float32) and, with colours, rgb (float32 holding packed 0x00RRGGBB, as RViz and Foxglove expect)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    n = points.shape[0]
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate("xyz")]
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("rgb", "<u4")] if colors is not None else []))
    data = np.empty(n, dtype=record)
    data["x"], data["y"], data["z"] = points[:, 0], points[:, 1], points[:, 2]
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != (n, 3):
            raise ValueError(f"colors must have shape ({n}, 3), got {colors.shape}")
        if colors.dtype != np.uint8:
            colors = (np.clip(np.nan_to_num(colors), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        c = colors.astype(np.uint32)
        data["rgb"] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
        fields.append(PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1))
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = fields
    msg.is_bigendian = False
    msg.point_step = record.itemsize
    msg.row_step = record.itemsize * n
    msg.is_dense = bool(np.isfinite(points).all())
    msg.data = data.tobytes()
    return msg


def points_from_pointcloud2(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverse of pointcloud2_from_points: ((N, 3) float32, (N, 3) uint8 or None)."""
    names = [f.name for f in msg.fields]
    if names[:3] != ["x", "y", "z"] or msg.is_bigendian:
        raise ValueError(f"expected little-endian fields x, y, z[, rgb]; got {names}")
    n = msg.width * msg.height
    if len(msg.data) != n * msg.point_step:
        raise ValueError(f"PointCloud2 data has {len(msg.data)} bytes, expected {n} x {msg.point_step}")
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(n, msg.point_step)
    points = np.ascontiguousarray(raw[:, :12]).view("<f4").reshape(n, 3).astype(np.float32)
    colors = None
    if "rgb" in names:
        rgb = np.ascontiguousarray(raw[:, 12:16]).view("<u4").reshape(n)
        colors = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], axis=1).astype(np.uint8)
    return points, colors


# ---------------------------------------------------------------------------------------------------- physics
def physics_to_msg(estimate: PhysicsEstimate, object_id: str, spring_scale: LatticeScale,
                   header: Header | None = None) -> PhysicsParamsMsg:
    """PhysicsEstimate -> PhysicsParams message. spring_scale: the asset's lattice (SimAsset.spring_scale()), for
    the per-spring stiffness and damping of its own springs."""
    estimate.validate()
    p, si = estimate.params, estimate.derived()
    msg = PhysicsParamsMsg()
    if header is not None:
        msg.header = header
    msg.object_id = validate_object_id(object_id)
    for name in _SI_FIELDS:
        setattr(msg, name, float(si[_SI_KEYS.get(name, name)]))
        if name != "size":
            setattr(msg, f"{name}_std", float(si[f"{_SI_KEYS.get(name, name)}_std"]))
    msg.stiffness = float(p.stiffness * spring_scale.stiffness)
    msg.damping = float(p.damping * spring_scale.damping)
    msg.stiffness_std = float(estimate.std_of("stiffness") * spring_scale.stiffness)
    msg.damping_std = float(estimate.std_of("damping") * spring_scale.damping)
    msg.paper_mass, msg.paper_stiffness, msg.paper_damping = float(p.mass), float(p.stiffness), float(p.damping)
    msg.mass_source = PhysicsParamsMsg.MASS_GIVEN if estimate.mass_given else PhysicsParamsMsg.MASS_ESTIMATED
    return msg


# Message fields that carry PhysicsEstimate.derived() values (with a *_std twin, except size), and their keys there.
_SI_FIELDS = ("mass", "friction", "stiffness_per_mass", "damping_per_mass", "size", "stiffness_per_mass_at_1m",
              "damping_per_mass_at_1m", "contact_damping", "contact_damping_at_1m")
_SI_KEYS = {"mass": "total_mass"}


def physics_from_msg(msg: PhysicsParamsMsg) -> tuple[str, PhysicsEstimate]:
    """-> (object_id, validated PhysicsEstimate) from the fields that define the physics (mass, k/m, d/m, friction,
    size; the derived ones are ignored). Raises ValueError on NaN / out-of-range values or a bad id."""
    object_id = validate_object_id(msg.object_id)
    if msg.mass_source not in (PhysicsParamsMsg.MASS_ESTIMATED, PhysicsParamsMsg.MASS_GIVEN):
        raise ValueError(f"PhysicsParams.mass_source must be 0 (estimated) or 1 (given), got {msg.mass_source}")
    check_known_mass(msg.mass, "PhysicsParams.mass")
    std = {f"{_SI_KEYS.get(n, n)}_std": float(getattr(msg, f"{n}_std")) for n in _SI_FIELDS if n != "size"}
    estimate = PhysicsEstimate.from_si(msg.mass, msg.stiffness_per_mass, msg.damping_per_mass, msg.friction,
                                       msg.size, std, mass_given=msg.mass_source == PhysicsParamsMsg.MASS_GIVEN,
                                       contact_damping=msg.contact_damping)
    return object_id, estimate.validate()


# ---------------------------------------------------------------------------------------------------- motion
def _set_vector(vector, values) -> None:
    vector.x, vector.y, vector.z = (float(v) for v in values)


def _vector(vector) -> tuple:
    return (float(vector.x), float(vector.y), float(vector.z))


def motion_to_msg(motion: InitialMotion | None) -> InitialMotionMsg:
    """InitialMotion (or None: unknown, known = false, all zeros) -> InitialMotion message. The message has no NaN
    (NaN != NaN breaks comparisons and bag checks): an unmeasured depth is 0, an impact beyond the clip -1."""
    msg = InitialMotionMsg()
    if motion is None:
        return msg
    motion.validate()
    msg.known = True
    _set_vector(msg.linear_velocity, motion.velocity)
    _set_vector(msg.angular_velocity, motion.angular_velocity)
    _set_vector(msg.linear_velocity_std, motion.velocity_std)
    _set_vector(msg.angular_velocity_std, motion.angular_velocity_std)
    unknown = math.isnan(motion.depth)
    msg.depth, msg.depth_std = (0.0, 0.0) if unknown else (float(motion.depth), float(motion.depth_std))
    msg.depth_trusted = bool(motion.depth_trusted)
    msg.impact_time = -1.0 if math.isnan(motion.impact_time) else float(motion.impact_time)
    return msg


def motion_from_msg(msg: InitialMotionMsg) -> InitialMotion | None:
    """-> validated InitialMotion, or None when the message says it is not known."""
    if not msg.known:
        return None
    nan = float("nan")
    depth, depth_std = (nan, nan) if msg.depth <= 0 else (float(msg.depth), float(msg.depth_std))
    impact = nan if msg.impact_time < 0 else float(msg.impact_time)
    return InitialMotion(_vector(msg.linear_velocity), _vector(msg.angular_velocity), _vector(msg.linear_velocity_std),
                         _vector(msg.angular_velocity_std), depth, depth_std, bool(msg.depth_trusted),
                         impact).validate()


# ---------------------------------------------------------------------------------------------------- assets
def asset_to_msg(asset: SimAsset, header: Header | None = None) -> GaussianAsset:
    asset.validate()
    g = asset.gaussians
    msg = GaussianAsset()
    if header is not None:
        msg.header = header
    msg.object_id = asset.object_id
    msg.num_gaussians = g.means.shape[0]
    for name, tensor in (("positions", g.means), ("scales", g.log_scales), ("rotations", g.quats),
                         ("colors", g.colors), ("opacities", g.opacity_logits)):
        setattr(msg, name, _float32_field(tensor.detach().cpu().numpy()))
    msg.num_anchors = asset.num_anchors
    msg.anchor_positions = _float32_field(asset.anchors)
    msg.spring_indices = _uint32_field(asset.springs)
    msg.spring_rest_lengths = _float32_field(asset.rest_lengths)
    msg.lattice_neighbors = int(asset.lattice_neighbors)
    msg.binding_neighbors = int(asset.binding_neighbors)
    msg.binding_power = float(asset.binding_power)
    msg.physics = physics_to_msg(asset.physics, asset.object_id, asset.spring_scale(), header)
    msg.initial_motion = motion_to_msg(asset.initial_motion)
    return msg


def asset_from_msg(msg: GaussianAsset, device: str | torch.device = "cpu") -> SimAsset:
    """GaussianAsset -> validated SimAsset. Raises ValueError naming the first inconsistent field."""
    n, n_a = int(msg.num_gaussians), int(msg.num_anchors)
    if n < 1:
        raise ValueError("GaussianAsset has no Gaussians (num_gaussians = 0)")
    if len(msg.spring_indices) % 2:
        raise ValueError(f"spring_indices has {len(msg.spring_indices)} values, not a whole number of pairs")
    n_s = len(msg.spring_indices) // 2

    def tensor(field, name, width):
        return torch.from_numpy(_read_field(field, np.float32, name, n, width)).to(device)

    gaussians = GaussianCloud(
        means=tensor(msg.positions, "positions", 3),
        log_scales=tensor(msg.scales, "scales", 3),
        quats=tensor(msg.rotations, "rotations", 4),
        colors=tensor(msg.colors, "colors", 3),
        opacity_logits=tensor(msg.opacities, "opacities", 1),
    )
    _, physics = physics_from_msg(msg.physics)
    asset = SimAsset(
        object_id=msg.object_id,
        gaussians=gaussians,
        anchors=_read_field(msg.anchor_positions, np.float32, "anchor_positions", n_a, 3),
        springs=_read_field(msg.spring_indices, np.uint32, "spring_indices", n_s, 2).astype(np.int64),
        rest_lengths=_read_field(msg.spring_rest_lengths, np.float32, "spring_rest_lengths", n_s),
        lattice_neighbors=int(msg.lattice_neighbors),
        binding_neighbors=int(msg.binding_neighbors),
        binding_power=float(msg.binding_power),
        physics=physics,
        initial_motion=motion_from_msg(msg.initial_motion),
    )
    return asset.validate()


def pose_to_numpy(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """geometry_msgs/Pose -> (position (3,), unit quaternion wxyz (4,)) float64. Rejects NaN and zero quaternions;
    huge finite ones (1e300) are normalised without overflow."""
    p = np.array([pose.position.x, pose.position.y, pose.position.z], dtype=np.float64)
    q = np.array([pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z], dtype=np.float64)
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError(f"pose contains NaN or Inf: position {p.tolist()}, orientation {q.tolist()}")
    return p, unit_quaternion(q, "pose orientation")
