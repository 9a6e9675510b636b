"""Message fuzzing: every node survives random and corrupt input, warns once per kind (rate-limited) and still
answers a good message afterwards. Callbacks are driven directly for volume (a few hundred messages per node in
the default suite, >= 10k in the slow one); test_fuzz_dds.py sends a sample over real DDS."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import rclpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.parameter import Parameter
from std_msgs.msg import String

from reconphys_ros.ros.conversions import asset_to_msg, camera_info_from_k, numpy_to_image, pointcloud2_from_points
from reconphys_ros.ros.input_warnings import MAX_REASONS_PER_KIND
from reconphys_ros.ros.qos import command_qos
from test.reliability import fuzz
from test.ros.helpers import random_asset

DEFAULT_EXAMPLES = 150
SLOW_EXAMPLES = 10_000


def run_fuzz(strategy, feed, examples: int) -> int:
    """Feed `examples` drawn messages to `feed`; any exception fails the test. Returns how many were fed."""
    fed = [0]

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(strategy)
    def body(item):
        feed(item)
        fed[0] += 1

    body()
    return fed[0]


def capture_warnings(node) -> fuzz.RecordingLogger:
    logger = fuzz.RecordingLogger()
    node.dropped._logger = logger
    return logger


def assert_rate_limited(logger: fuzz.RecordingLogger, dropped, elapsed_s: float, period_s: float = 5.0):
    """One warning per distinct reason of a kind (at most MAX_REASONS_PER_KIND), then at most one summary per
    period: never a flood."""
    assert all(w.startswith("dropped ") for w in logger.warnings), logger.warnings[:5]
    for kind, count in dropped.counts.items():
        reasons = len(dropped.reason_counts[kind])
        assert reasons <= MAX_REASONS_PER_KIND + 1, (kind, reasons)  # + the OTHER_REASONS bucket
        n = sum(w.startswith(f"dropped {kind}:") for w in logger.warnings)
        assert 1 <= n <= reasons + 1 + elapsed_s / period_s, (kind, n, count, reasons)


def stamp(msg, sec: int):
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 0
    return msg


# ---------------------------------------------------------------------------------------------------- segmentation
def fuzz_segmentation(ctx, examples):
    from reconphys_ros.ros.segmentation import SegmentationNode
    node = SegmentationNode(context=ctx)
    try:
        log = capture_warnings(node)
        node.mask_pub = fuzz.RecordingPublisher()
        start = time.monotonic()
        fed = run_fuzz(fuzz.images(), node.on_image, examples)
        assert fed >= examples * 0.95
        assert_rate_limited(log, node.dropped, time.monotonic() - start)
        assert node.dropped.counts.get("image", 0) > 0
        published = len(node.mask_pub.messages)
        good = stamp(numpy_to_image(np.full((20, 30, 3), 90, np.uint8), "rgb8"), 77)
        node.on_image(good)
        assert len(node.mask_pub.messages) == published + 1
        out = node.mask_pub.messages[-1]
        assert (out.width, out.height, out.encoding, out.header.stamp.sec) == (30, 20, "mono8", 77)
        return fed
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------------------------------- reconstruction
class _NoPipeline:
    def run(self, *args, **kwargs):
        raise RuntimeError("pipeline stubbed out in the fuzz test")


def fuzz_reconstruction(ctx, tmp_path, examples):
    from reconphys_ros.ros.reconstruction import ReconstructionNode
    node = ReconstructionNode(context=ctx, parameter_overrides=[Parameter("output_dir", value=str(tmp_path))])
    try:
        node.pipeline = _NoPipeline()
        log = capture_warnings(node)
        strategy = st.one_of(st.tuples(st.just("image"), fuzz.images()), st.tuples(st.just("mask"), fuzz.images()),
                             st.tuples(st.just("info"), fuzz.camera_infos()), st.tuples(st.just("pose"), fuzz.poses()),
                             st.tuples(st.just("pair"), fuzz.stamps))  # a valid pair, stamps in any order

        def feed(item):
            kind, msg = item
            if kind in ("image", "mask"):
                node.on_frame(kind, msg)
            elif kind == "pair":
                for side, image in (("image", np.zeros((20, 30, 3), np.uint8)), ("mask", np.zeros((20, 30), np.uint8))):
                    out = numpy_to_image(image, "rgb8" if side == "image" else "mono8")
                    out.header.stamp.sec, out.header.stamp.nanosec = msg
                    node.on_frame(side, out)
            elif kind == "info":
                node.on_camera_info(msg)
            else:
                node.on_pose(msg)

        start = time.monotonic()
        fed = run_fuzz(strategy, feed, examples)
        assert_rate_limited(log, node.dropped, time.monotonic() - start)
        assert {"image", "mask", "camera info", "camera pose"} <= set(node.dropped.counts)
        # Good input after the fuzz is used: intrinsics, pose, and an image/mask pair that reaches the detector
        # even though the fuzz sent stamps far in the future (a restarted camera or a looping bag does too).
        k = np.array([[20.0, 0, 15], [0, 20.0, 10], [0, 0, 1]])
        node.on_camera_info(camera_info_from_k(k, 30, 20))
        np.testing.assert_allclose(node._camera_info[0], k)
        good_pose = fuzz.PoseStamped()
        good_pose.pose.orientation.w = 1.0
        node.on_pose(good_pose)
        np.testing.assert_allclose(node._cam_to_world, np.eye(4))
        for sec in (100, 101):
            node.on_frame("image", stamp(numpy_to_image(np.zeros((20, 30, 3), np.uint8), "rgb8"), sec))
            node.on_frame("mask", stamp(numpy_to_image(np.zeros((20, 30), np.uint8), "mono8"), sec))
        assert node.detector._last_time == 101.0, "good frames after the fuzz no longer reach the drop detector"
        return fed
    finally:
        node.close()
        node.destroy_node()


# ---------------------------------------------------------------------------------------------------- simulation
def fuzz_simulation(ctx, examples):
    from reconphys_ros.ros.simulation import SimulationNode
    node = SimulationNode(context=ctx, parameter_overrides=[Parameter("render_rate", value=0.0),
                                                            Parameter("cloud_rate", value=1000.0)])
    try:
        node.timer.cancel()
        node.status_timer.cancel()
        log = capture_warnings(node)
        for name in ("anchor_pub", "gaussian_pub", "image_pub", "status_pub"):
            setattr(node, name, fuzz.RecordingPublisher())
        worst_tick = [0.0]

        def feed(item):
            kind, msg = item
            if kind == "asset":
                node.on_asset(msg)
            elif kind == "command":
                node.on_command(msg)
            start = time.perf_counter()
            node.tick()
            worst_tick[0] = max(worst_tick[0], time.perf_counter() - start)

        # assets are costlier to load: one in eight items
        strategy = st.one_of(st.tuples(st.just("asset"), fuzz.assets()),
                             *[st.tuples(st.just("command"), fuzz.gripper_commands())] * 7)
        start = time.monotonic()
        fed = run_fuzz(strategy, feed, examples)
        assert_rate_limited(log, node.dropped, time.monotonic() - start)
        assert {"asset", "gripper command"} <= set(node.dropped.counts)
        assert worst_tick[0] < 2.0, f"a fuzzed asset made one frame step take {worst_tick[0]:.1f} s"
        for cloud in node.anchor_pub.messages[-50:]:
            points = np.frombuffer(cloud.data, np.float32)
            assert np.isfinite(points).all(), "non-finite anchors published"
        node.publish_status()
        status = node.status_pub.messages[-1]
        assert math.isfinite(status.real_time_factor) and math.isfinite(status.step_time_ms)
        # a good asset and command still work
        node.on_asset(asset_to_msg(random_asset(60, num_anchors=16, seed=7, object_id="after_fuzz")))
        assert node.sim is not None and node.sim.asset.object_id == "after_fuzz"
        good = fuzz.GripperCommand(position=0.0, max_effort=0.0, grasp_radius=0.1)
        good.pose.position.z, good.pose.orientation.w = 0.4, 1.0
        node.on_command(good)
        np.testing.assert_allclose(node.sim.gripper.target_position, [0, 0, 0.4])
        frames = node.frames_stepped
        node.tick()
        assert node.frames_stepped == frames + 1 and np.isfinite(node.sim.anchors.numpy()).all()
        return fed
    finally:
        node.close()
        node.destroy_node()


# ---------------------------------------------------------------------------------------------------- bag recorder
def fuzz_bag_recorder(ctx, tmp_path, examples):
    from rosbags.rosbag2 import Reader

    from reconphys_ros.ros.bag_recorder import BagRecorderNode
    helper = rclpy.create_node("fuzz_publisher", context=ctx)
    helper.create_publisher(String, "fuzz_topic", command_qos())
    node = BagRecorderNode(context=ctx, parameter_overrides=[Parameter("output_dir", value=str(tmp_path)),
                                                             Parameter("topics", value=["fuzz_topic"])])
    try:
        deadline = time.monotonic() + 10
        while node._recording_subs.get("/fuzz_topic") is None and time.monotonic() < deadline:
            time.sleep(0.05)
            node.discover()
        assert node._recording_subs.get("/fuzz_topic") is not None, "publisher never discovered"
        fed = run_fuzz(st.binary(max_size=2048), lambda data: node.on_message("/fuzz_topic", data), examples)
        good = b"\x00\x01\x00\x00\x06\x00\x00\x00hello\x00"  # CDR std_msgs/String "hello"
        node.on_message("/fuzz_topic", good)
        node.close()
        with Reader(node.bag_paths[-1]) as reader:
            rows = list(reader.messages())
        assert len(rows) == fed + 1 == node.counts["/fuzz_topic"], "the recorder lost or invented messages"
        assert rows[-1][2] == good
        return fed
    finally:
        node.close()
        node.destroy_node()
        helper.destroy_node()


# ---------------------------------------------------------------------------------------------------- gripper controller
def fuzz_gripper_controller(ctx, examples):
    from reconphys_ros.ros.gripper_controller import GripperControllerNode
    node = GripperControllerNode(context=ctx, parameter_overrides=[Parameter("hold_s", value=0.0)])
    try:
        node.timer.cancel()
        log = capture_warnings(node)
        node.command_pub = fuzz.RecordingPublisher()
        # landed, so the controller is mid-script and publishing while the fuzz arrives
        rest = pointcloud2_from_points(np.random.default_rng(0).uniform(0, 0.1, (30, 3)).astype(np.float32))
        for _ in range(5):
            node._anchor_time -= 1.0
            node.on_anchors(rest)
        node.tick()
        assert node.phase != "wait_landed"

        def feed(msg):
            node.on_anchors(msg)
            node.tick()

        start = time.monotonic()
        fed = run_fuzz(fuzz.pointclouds(), feed, examples)
        assert_rate_limited(log, node.dropped, time.monotonic() - start)
        assert node.dropped.counts.get("anchors", 0) > 0
        for cmd in node.command_pub.messages:
            p = cmd.pose.position
            assert all(math.isfinite(v) for v in (p.x, p.y, p.z, cmd.position)), "non-finite command published"
        node.on_anchors(rest)
        np.testing.assert_array_equal(node._anchors.shape, (30, 3))
        return fed
    finally:
        node.destroy_node()


# ---------------------------------------------------------------------------------------------------- tests
NODES = ("segmentation", "reconstruction", "simulation", "bag_recorder", "gripper_controller")


def _run(name, ctx, tmp_path, examples):
    if name == "segmentation":
        return fuzz_segmentation(ctx, examples)
    if name == "reconstruction":
        return fuzz_reconstruction(ctx, tmp_path, examples)
    if name == "simulation":
        return fuzz_simulation(ctx, examples)
    if name == "bag_recorder":
        return fuzz_bag_recorder(ctx, tmp_path, examples)
    return fuzz_gripper_controller(ctx, examples)


@pytest.mark.parametrize("name", NODES)
def test_node_survives_fuzzed_messages(name, ros_context, tmp_path):
    assert _run(name, ros_context, tmp_path, DEFAULT_EXAMPLES) >= DEFAULT_EXAMPLES * 0.95


@pytest.mark.slow
@pytest.mark.parametrize("name", NODES)
def test_node_survives_10k_fuzzed_messages(name, ros_context, tmp_path):
    assert _run(name, ros_context, tmp_path, SLOW_EXAMPLES) >= SLOW_EXAMPLES
