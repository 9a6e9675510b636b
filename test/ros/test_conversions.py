"""numpy / core dataclasses <-> ROS messages: exact round trips and clear errors for bad input."""
import dataclasses

import numpy as np
import pytest
import torch
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from reconphys_ros.core.asset import validate_object_id
from reconphys_ros.ros import conversions as conv
from reconphys_ros.msg import PhysicsParams as PhysicsParamsMsg
from test.ros.helpers import assert_assets_equal, random_asset


@pytest.mark.parametrize("width", [1, 7, 33, 128])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "32FC1"])
def test_image_roundtrip_odd_widths(encoding, width):
    rng = np.random.default_rng(width)
    shape = (5, width, 3) if encoding in ("rgb8", "bgr8") else (5, width)
    image = (rng.random(shape, dtype=np.float32) if encoding == "32FC1"
             else rng.integers(0, 256, shape, dtype=np.uint8))
    header = Header(frame_id="cam")
    msg = conv.numpy_to_image(image, encoding, header)
    assert msg.header.frame_id == "cam" and (msg.height, msg.width) == (5, width)
    back = conv.image_to_numpy(msg)
    assert back.dtype == image.dtype
    np.testing.assert_array_equal(back, image)


def _padded(image: np.ndarray, encoding: str, pad: int, big_endian: bool = False) -> Image:
    """An Image whose rows carry `pad` junk bytes, as some camera drivers publish."""
    h, w = image.shape[:2]
    pixels = image.astype(image.dtype.newbyteorder(">")) if big_endian else image
    rows = np.ascontiguousarray(pixels).view(np.uint8).reshape(h, -1)
    data = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big_endian), step=rows.shape[1] + pad)
    msg.data = data.tobytes()
    return msg


def test_image_with_row_padding():
    image = np.random.default_rng(0).integers(0, 256, (6, 11, 3), dtype=np.uint8)
    np.testing.assert_array_equal(conv.image_to_numpy(_padded(image, "rgb8", 3)), image)


def test_big_endian_float_image():
    image = np.linspace(-3, 7, 6 * 9, dtype=np.float32).reshape(6, 9)
    back = conv.image_to_numpy(_padded(image, "32FC1", 4, big_endian=True))
    assert back.dtype == np.float32 and back.dtype.byteorder in ("=", "<", "|")
    np.testing.assert_array_equal(back, image)


def test_rgb_bgr_conversion():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # red in rgb
    bgr = conv.image_to_numpy(conv.numpy_to_image(image, "rgb8"), encoding="bgr8")
    assert (bgr[..., 2] == 255).all() and (bgr[..., 0] == 0).all()


@pytest.mark.parametrize("mutate, pattern", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported image encoding"),
    (lambda m: setattr(m, "data", bytes(len(m.data) - 1)), "expected step x height"),
    (lambda m: setattr(m, "step", 2), "smaller than one row"),
    (lambda m: setattr(m, "width", 0), "no pixels"),
])
def test_bad_images_raise_clear_errors(mutate, pattern):
    msg = conv.numpy_to_image(np.zeros((4, 4, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(ValueError, match=pattern):
        conv.image_to_numpy(msg)


@pytest.mark.parametrize("image, encoding, pattern", [
    (np.zeros((4, 4), np.uint8), "rgb8", "shape"),
    (np.zeros((4, 4, 3), np.float32), "rgb8", "dtype"),
    (np.zeros((4, 4), np.uint8), "32FC1", "dtype"),
    (np.zeros((0, 4), np.uint8), "mono8", "no pixels"),
    (np.zeros((4, 4), np.uint8), "rgba16", "unsupported"),
])
def test_bad_arrays_raise_clear_errors(image, encoding, pattern):
    with pytest.raises(ValueError, match=pattern):
        conv.numpy_to_image(image, encoding)


def test_camera_info_roundtrip_and_validation():
    k = np.array([[100.0, 0, 64], [0, 110.0, 60], [0, 0, 1]], np.float32)
    msg = conv.camera_info_from_k(k, 128, 120)
    k2, w, h = conv.camera_info_to_k(msg)
    np.testing.assert_array_equal(k2, k)
    assert (w, h) == (128, 120)
    msg.k = [0.0] * 9
    with pytest.raises(ValueError, match="intrinsic"):
        conv.camera_info_to_k(msg)


@pytest.mark.parametrize("k, pattern", [
    ([[100.0, 0, 64], [0, 100.0, 60], [5, 5, 1]], "pinhole"),         # bottom row [5, 5, 1]: made 3 cm assets
    ([[100.0, 0, 1e30], [0, 100.0, 60], [0, 0, 1]], "principal point"),  # cx = 1e30: assets 0.00 m across
    ([[1e-3, 0, 64], [0, 1e-3, 60], [0, 0, 1]], "field of view"),      # fx = 1e-3: assets 600 km across
    ([[1e6, 0, 64], [0, 1e6, 60], [0, 0, 1]], "field of view"),        # a 0.007 degree telescope
    ([[100.0, 30.0, 64], [0, 100.0, 60], [0, 0, 1]], "skew"),
    ([[100.0, 0, 64], [0, -100.0, 60], [0, 0, 1]], "positive"),
])
def test_camera_info_that_is_no_plausible_pinhole_camera_is_refused(k, pattern):
    msg = conv.camera_info_from_k(np.array(k), 128, 120)
    with pytest.raises(ValueError, match=pattern):
        conv.camera_info_to_k(msg)


def test_pointcloud_roundtrip_with_colors():
    rng = np.random.default_rng(3)
    points = rng.normal(size=(1000, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (1000, 3), dtype=np.uint8)
    msg = conv.pointcloud2_from_points(points, colors)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.point_step == 16
    p2, c2 = conv.points_from_pointcloud2(msg)
    np.testing.assert_array_equal(p2, points)
    np.testing.assert_array_equal(c2, colors)
    p3, c3 = conv.points_from_pointcloud2(conv.pointcloud2_from_points(points))
    np.testing.assert_array_equal(p3, points)
    assert c3 is None
    with pytest.raises(ValueError, match="shape"):
        conv.pointcloud2_from_points(points[:, :2])


def test_asset_roundtrip_exact():
    asset = random_asset(257, num_anchors=40, seed=5)
    msg = conv.asset_to_msg(asset, Header(frame_id="world"))
    assert msg.num_gaussians == 257 and msg.physics.object_id == asset.object_id
    assert_assets_equal(conv.asset_from_msg(msg), asset)


def test_initial_motion_roundtrip():
    """The fitted frame-0 motion travels with the asset; 'unknown' values become 0 / -1, never NaN (NaN != NaN)."""
    import dataclasses
    import math

    from reconphys_ros.core.asset import InitialMotion
    motion = InitialMotion((0.5, 0.0, 2.7), (3.0, 8.0, 0.0), (0.05, 0.04, 0.1), (0.3, 0.5, 0.2), 1.8, 0.02, True,
                           float("nan"))
    asset = dataclasses.replace(random_asset(50, num_anchors=20, seed=6), initial_motion=motion)
    msg = conv.asset_to_msg(asset)
    assert msg.initial_motion.known and msg.initial_motion.impact_time == -1.0
    assert msg.initial_motion.linear_velocity.z == pytest.approx(2.7)
    back = conv.asset_from_msg(msg).initial_motion
    assert back.velocity == pytest.approx(motion.velocity) and back.angular_velocity == pytest.approx(
        motion.angular_velocity)
    assert back.depth == pytest.approx(1.8) and back.depth_trusted and math.isnan(back.impact_time)
    assert conv.asset_to_msg(asset) == msg  # comparable: no NaN inside
    unknown = conv.asset_to_msg(random_asset(50, num_anchors=20, seed=6)).initial_motion
    assert not unknown.known and unknown.depth == 0.0
    msg.initial_motion.angular_velocity.x = 1e300  # hostile: refused with the field's name
    with pytest.raises(ValueError, match="angular_velocity"):
        conv.asset_from_msg(msg)


@pytest.mark.parametrize("mutate, pattern", [
    (lambda m: setattr(m, "num_gaussians", m.num_gaussians + 1), "positions"),
    (lambda m: setattr(m, "num_gaussians", 0), "no Gaussians"),
    (lambda m: m.spring_indices.pop(), "pairs"),
    (lambda m: m.spring_indices.__setitem__(0, 10_000), "outside"),
    (lambda m: setattr(m.physics, "stiffness_per_mass", float("nan")), "stiffness"),
    (lambda m: setattr(m.physics, "stiffness_per_mass", 1e9), "stiffness_per_mass"),
    (lambda m: setattr(m.physics, "mass", 5000.0), "mass.*kg"),
    (lambda m: setattr(m.physics, "mass", -1.0), "mass.*kg"),
    (lambda m: setattr(m.physics, "size", 2.0), "size"),
    (lambda m: setattr(m.physics, "object_id", "../etc/passwd"), "invalid object id"),
    (lambda m: m.positions.__setitem__(0, float("nan")), "finite|NaN"),
    # finite but implausible (issue 18.4): d**1000 overflowed into NaN weights, e**80 m Gaussians render all white
    (lambda m: setattr(m, "binding_power", 1000.0), "p_b"),
    (lambda m: m.scales.__setitem__(4, 80.0), "scales .* outside the plausible"),
    (lambda m: m.positions.__setitem__(3, 3.0), "outside the anchors' bounding box"),
])
def test_bad_assets_raise_clear_errors(mutate, pattern):
    msg = conv.asset_to_msg(random_asset(20, num_anchors=10))
    mutate(msg)
    with pytest.raises(ValueError, match=pattern):
        conv.asset_from_msg(msg)


def test_physics_roundtrip_and_bad_source():
    asset = random_asset(4)
    scale = asset.spring_scale()
    asset.physics = dataclasses.replace(asset.physics, contact_damping=40.0,
                                        std={**asset.physics.std, "contact_damping": 8.0})
    msg = conv.physics_to_msg(asset.physics, "obj_1", scale)
    # contact damping: size-independent 40 1/s at 1 m is 40 sqrt(1 m / L) at the object's size
    assert msg.contact_damping_at_1m == 40.0 and msg.contact_damping_at_1m_std == 8.0
    assert msg.contact_damping == pytest.approx(40.0 / msg.size ** 0.5)
    # SI: total mass in kg, k/m and d/m on the reference lattice, per-spring k and d of the asset's own lattice
    assert msg.mass == pytest.approx(0.3) and msg.stiffness_per_mass == pytest.approx(200.0)
    assert msg.paper_mass == pytest.approx(0.3 / 2048) and msg.paper_stiffness == pytest.approx(200.0 * 0.3 / 2048)
    assert msg.stiffness == pytest.approx(msg.paper_stiffness * scale.stiffness)
    assert msg.size == pytest.approx(asset.physics.size)
    assert msg.stiffness_per_mass_at_1m == pytest.approx(200.0 * msg.size)  # k/m x L / 1 m
    assert msg.damping_per_mass_at_1m == pytest.approx(0.5 * msg.size ** 0.5)  # d/m x sqrt(L / 1 m)
    assert msg.stiffness_per_mass_at_1m_std == pytest.approx(20.0 * msg.size)
    assert msg.mass_std == pytest.approx(0.06)
    object_id, estimate = conv.physics_from_msg(msg)
    assert object_id == "obj_1"
    np.testing.assert_allclose(estimate.params.to_tuple(), asset.physics.params.to_tuple(), rtol=1e-12)
    assert estimate.contact_damping == pytest.approx(40.0, rel=1e-12)
    for key, value in asset.physics.std.items():
        assert estimate.std[key] == pytest.approx(value, rel=1e-9), key
    msg.paper_stiffness = float("nan")  # derived fields are ignored on input
    conv.physics_from_msg(msg)
    for bad in (float("nan"), -1.0, 1e6):  # contact damping outside [0, 300] 1/s at 1 m
        msg.contact_damping = bad
        with pytest.raises(ValueError, match="contact_damping"):
            conv.physics_from_msg(msg)
    msg.contact_damping = 10.0
    msg.mass_source = 7
    with pytest.raises(ValueError, match="mass_source"):
        conv.physics_from_msg(msg)
    assert PhysicsParamsMsg.MASS_GIVEN == 1


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "a\\b", "x\n", ".hidden", "-rf", "a" * 129, "é"])
def test_object_ids_cannot_escape_output_folders(bad):
    with pytest.raises(ValueError, match="invalid object id"):
        validate_object_id(bad)


def test_pose_validation():
    from geometry_msgs.msg import Pose
    pose = Pose()
    pose.orientation.w = 2.0
    p, q = conv.pose_to_numpy(pose)
    np.testing.assert_allclose(q, [1, 0, 0, 0])
    pose.orientation.w = 0.0
    with pytest.raises(ValueError, match="zero-length"):
        conv.pose_to_numpy(pose)
    pose.orientation.w, pose.position.x = 1.0, float("nan")
    with pytest.raises(ValueError, match="NaN"):
        conv.pose_to_numpy(pose)


def test_huge_finite_quaternion_keeps_its_rotation():
    """Issue 18.1: |q| of a 1e300 quaternion overflows to inf; q / inf = 0 once became the identity rotation."""
    from geometry_msgs.msg import Pose

    from reconphys_ros.core.geometry import pose_matrix
    pose = Pose()
    pose.orientation.w = pose.orientation.x = 1e300
    position, q = conv.pose_to_numpy(pose)
    np.testing.assert_allclose(q, [2**-0.5, 2**-0.5, 0.0, 0.0])
    rotation_about_x = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # the 90 degree turn the quaternion describes
    np.testing.assert_allclose(pose_matrix(position, q)[:3, :3], rotation_about_x, atol=1e-12)
    pose.orientation.w = pose.orientation.x = 1e-300  # tiny is not a rotation either
    with pytest.raises(ValueError, match="zero-length"):
        conv.pose_to_numpy(pose)


def test_large_asset_conversion_uses_buffers():
    """100k Gaussians convert without Python-level loops (a list-based path takes seconds)."""
    import time
    asset = random_asset(100_000, num_anchors=32)
    start = time.perf_counter()
    back = conv.asset_from_msg(conv.asset_to_msg(asset))
    assert time.perf_counter() - start < 2.0  # generous bound: only catches per-element Python loops
    assert torch.equal(back.gaussians.means, asset.gaussians.means)
