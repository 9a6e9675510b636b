"""Hypothesis strategies for corrupt and random ROS messages, a recording logger and a recording publisher.

Each strategy mixes well-formed messages with every kind of corruption a real camera, controller or buggy peer
can send: wrong sizes / encodings / steps, NaN and Inf, huge declared sizes, empty arrays, zero-length quaternions,
out-of-range physics, hostile object ids and stamps out of order.
"""
from __future__ import annotations

import array
import math

import numpy as np
from geometry_msgs.msg import PoseStamped
from hypothesis import strategies as st
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from reconphys_ros.msg import GaussianAsset, GripperCommand
from reconphys_ros.msg import PhysicsParams as PhysicsParamsMsg
from reconphys_ros.ros.conversions import asset_to_msg, numpy_to_image, pointcloud2_from_points
from test.ros.helpers import RecordingPublisher, random_asset  # noqa: F401 (re-exported for the fuzz tests)

NASTY_FLOATS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, -1e30, 1e30, 3.4e38, -1.0)
floats = st.one_of(st.sampled_from(NASTY_FLOATS), st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
                 st.floats(allow_subnormal=False))
ENCODINGS = ("rgb8", "bgr8", "mono8", "32FC1", "16UC1", "rgba8", "", "bayer_rggb8", "RGB8", "mono8\x00")
HOSTILE_IDS = ("", "..", "../../etc/passwd", "/abs", "a/b", "a\\b", "obj\x00", "obj\n", "-rf", ".hidden",
               "x" * 129, "object_000", "someone_else", "é", "ok.id-1", " ", "con", "a..b")
object_ids = st.one_of(st.sampled_from(HOSTILE_IDS), st.text(max_size=20))
stamps = st.tuples(st.integers(-2**31, 2**31 - 1), st.integers(0, 2**32 - 1))


class RecordingLogger:
    """Stands in for an rclpy logger: keeps every warning / error text."""

    def __init__(self):
        self.warnings: list[str] = []
        self.errors: list[str] = []
        self.infos: list[str] = []

    def warning(self, text, **_):
        self.warnings.append(str(text))

    warn = warning

    def error(self, text, **_):
        self.errors.append(str(text))

    def info(self, text, **_):
        self.infos.append(str(text))

    def debug(self, text, **_):
        pass


def _set_stamp(msg, stamp):
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    return msg


@st.composite
def images(draw, max_side: int = 24) -> Image:
    """Valid rgb8 / mono8 frames and corrupt ones (sizes, steps, encodings, truncated data, float NaN)."""
    kind = draw(st.sampled_from(("valid_rgb", "valid_mono", "float", "random")))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "valid_rgb":
        msg = numpy_to_image(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), draw(st.sampled_from(("rgb8", "bgr8"))))
    elif kind == "valid_mono":
        msg = numpy_to_image(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255, "mono8")
    elif kind == "float":
        data = rng.normal(size=(h, w)).astype(np.float32)
        data[rng.random((h, w)) < 0.3] = draw(st.sampled_from((np.nan, np.inf, -np.inf)))
        msg = numpy_to_image(data, "32FC1")
    else:
        msg = Image()
        msg.height = draw(st.one_of(st.integers(0, max_side), st.sampled_from((2**31 - 1, 2**32 - 1))))
        msg.width = draw(st.one_of(st.integers(0, max_side), st.sampled_from((2**31 - 1, 2**32 - 1))))
        msg.encoding = draw(st.sampled_from(ENCODINGS))
        msg.step = draw(st.one_of(st.integers(0, 4 * max_side), st.sampled_from((2**32 - 1,))))
        msg.is_bigendian = draw(st.integers(0, 1))
        msg.data = rng.integers(0, 256, draw(st.integers(0, 3 * max_side * max_side)), dtype=np.uint8).tobytes()
    if draw(st.booleans()):  # corrupt a well-formed one a little
        what = draw(st.sampled_from(("truncate", "step", "encoding", "size")))
        if what == "truncate" and len(msg.data):
            msg.data = bytes(msg.data)[: draw(st.integers(0, len(msg.data) - 1))]
        elif what == "step":
            msg.step = draw(st.integers(0, 2**32 - 1))
        elif what == "encoding":
            msg.encoding = draw(st.sampled_from(ENCODINGS))
        else:
            msg.width = draw(st.integers(0, 2**32 - 1))
    return _set_stamp(msg, draw(stamps))


@st.composite
def camera_infos(draw) -> CameraInfo:
    msg = CameraInfo()
    good = draw(st.booleans())
    f = draw(floats) if not good else 20.0
    msg.k = [f, 0.0, draw(floats), 0.0, draw(floats) if not good else 20.0, draw(floats), 0.0, 0.0,
             draw(st.sampled_from((1.0, 0.0, math.nan, 2.0)))]
    msg.width, msg.height = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
    return _set_stamp(msg, draw(stamps))


@st.composite
def poses(draw) -> PoseStamped:
    msg = PoseStamped()
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = draw(floats), draw(floats), draw(floats)
    q.w, q.x, q.y, q.z = (draw(st.sampled_from((0.0, 1.0, math.nan, 1e-9, -1.0, 1e30))) for _ in range(4))
    return _set_stamp(msg, draw(stamps))


@st.composite
def gripper_commands(draw) -> GripperCommand:
    msg = GripperCommand(object_id=draw(st.one_of(st.just(""), object_ids)))
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = draw(floats), draw(floats), draw(floats)
    q.w, q.x, q.y, q.z = (draw(st.sampled_from((0.0, 1.0, math.nan, 1e-9, -1.0, 0.5))) for _ in range(4))
    msg.position, msg.max_effort, msg.grasp_radius = draw(floats), draw(floats), draw(floats)
    return _set_stamp(msg, draw(stamps))


def physics_msgs(base: PhysicsParamsMsg | None = None):
    @st.composite
    def build(draw) -> PhysicsParamsMsg:
        msg = PhysicsParamsMsg() if base is None else _copy_physics(base)
        for name in draw(st.lists(st.sampled_from(("mass", "stiffness", "damping", "friction", "mass_std",
                                                   "stiffness_std", "damping_std")), max_size=3)):
            setattr(msg, name, draw(floats))
        if draw(st.booleans()):
            msg.object_id = draw(object_ids)
        if draw(st.integers(0, 9)) == 0:
            msg.mass_source = draw(st.integers(0, 255))
        return msg
    return build()


def _copy_physics(msg: PhysicsParamsMsg) -> PhysicsParamsMsg:
    out = PhysicsParamsMsg()
    for name in out.get_fields_and_field_types():
        setattr(out, name, getattr(msg, name))
    return out


_ASSET_FIELDS = ("positions", "scales", "rotations", "colors", "opacities", "anchor_positions",
                 "spring_indices", "spring_rest_lengths")


@st.composite
def assets(draw, object_id: str = "test_obj") -> GaussianAsset:
    """A small valid asset with 0-3 corruptions (field sizes, NaN/Inf, zero quaternions, indices out of range,
    declared counts, binding settings, physics, object id, extreme geometry)."""
    seed = draw(st.integers(0, 3))
    msg = asset_to_msg(random_asset(40, num_anchors=12, seed=seed, object_id=object_id))
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(("truncate", "nan", "zero_quat", "index", "count", "binding", "physics",
                                     "object_id", "empty", "scale_geometry", "lattice")))
        field = draw(st.sampled_from(_ASSET_FIELDS))
        values = np.frombuffer(bytes(memoryview(getattr(msg, field)).cast("B")),
                               np.uint32 if field == "spring_indices" else np.float32).copy()
        if what == "truncate" and values.size:
            values = values[: draw(st.integers(0, values.size - 1))]
        elif what == "nan" and values.size and field != "spring_indices":
            values[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from((np.nan, np.inf, -np.inf)))
        elif what == "zero_quat":
            field, values = "rotations", np.zeros(4 * (len(msg.positions) // 3), np.float32)
        elif what == "index":
            field = "spring_indices"
            values = np.frombuffer(bytes(memoryview(msg.spring_indices).cast("B")), np.uint32).copy()
            if values.size:
                values[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from((12, 2**32 - 1, 1000)))
        elif what == "count":
            setattr(msg, draw(st.sampled_from(("num_gaussians", "num_anchors"))),
                    draw(st.sampled_from((0, 1, 2**32 - 1, 2**31))))
        elif what == "binding":
            msg.binding_neighbors = draw(st.sampled_from((0, 1, 2**32 - 1, 1000)))
            msg.binding_power = draw(floats)
        elif what == "physics":
            msg.physics = draw(physics_msgs(msg.physics))
        elif what == "object_id":
            msg.object_id = draw(object_ids)
        elif what == "empty":
            values = values[:0]
        elif what == "scale_geometry" and field in ("positions", "anchor_positions", "spring_rest_lengths"):
            values = values * np.float32(draw(st.sampled_from((1e-6, 1e6, 1e-30, 0.0))))
        elif what == "lattice":
            msg.lattice_neighbors = draw(st.sampled_from((0, 1, 2**32 - 1)))
        dtype = "I" if field == "spring_indices" else "f"
        setattr(msg, field, array.array(dtype, values.astype(np.uint32 if dtype == "I" else np.float32).tobytes()))
    return msg


@st.composite
def pointclouds(draw) -> PointCloud2:
    kind = draw(st.sampled_from(("valid", "nan", "random")))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 30))
    if kind in ("valid", "nan"):
        points = rng.normal(size=(n, 3)).astype(np.float32)
        if kind == "nan" and n:
            points[rng.integers(0, n)] = draw(st.sampled_from((np.nan, np.inf)))
        return pointcloud2_from_points(points)
    msg = PointCloud2()
    names = draw(st.lists(st.sampled_from(("x", "y", "z", "rgb", "w")), max_size=5))
    msg.fields = [PointField(name=nm, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, nm in enumerate(names)]
    msg.width, msg.height = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 3))
    msg.point_step = draw(st.integers(0, 32))
    msg.is_bigendian = draw(st.booleans())
    msg.data = rng.integers(0, 256, draw(st.integers(0, 400)), dtype=np.uint8).tobytes()
    return msg
