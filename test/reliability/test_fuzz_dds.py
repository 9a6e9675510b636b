"""Fuzzed messages over real DDS: corrupt input reaches every node through the middleware (serialised,
deserialised, queued), each node counts and warns, keeps spinning, and answers the good message sent after it."""
from __future__ import annotations

import numpy as np
import rclpy
from hypothesis import HealthCheck, given, settings
from reconphys_ros.ros.spin import IsolatedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from reconphys_ros.msg import GaussianAsset, GripperCommand
from reconphys_ros.ros.bag_recorder import BagRecorderNode
from reconphys_ros.ros.conversions import asset_to_msg, numpy_to_image, pointcloud2_from_points
from reconphys_ros.ros.gripper_controller import GripperControllerNode
from reconphys_ros.ros.qos import command_qos, image_qos, latched_qos
from reconphys_ros.ros.reconstruction import ReconstructionNode
from reconphys_ros.ros.segmentation import SegmentationNode
from reconphys_ros.ros.simulation import SimulationNode
from reconphys_ros.ros.spin import shutdown_nodes
from test.reliability import fuzz
from test.ros.conftest import spin_until
from test.ros.helpers import random_asset

PER_TOPIC = 25


def draw(strategy, count: int) -> list:
    out = []

    @settings(max_examples=count, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=("generate",))
    @given(strategy)
    def collect(item):
        out.append(item)

    collect()
    return out


def test_fuzz_over_dds_then_good_messages(ros_context, tmp_path):
    seg = SegmentationNode(context=ros_context)
    rec = ReconstructionNode(context=ros_context, parameter_overrides=[Parameter("output_dir", value=str(tmp_path))])
    sim = SimulationNode(context=ros_context, parameter_overrides=[Parameter("render_rate", value=0.0),
                                                                   Parameter("cloud_rate", value=5.0)])
    ctl = GripperControllerNode(context=ros_context)
    bag = BagRecorderNode(context=ros_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path / "bags")), Parameter("topics", value=["camera/image_raw"]),
        Parameter("discovery_period_s", value=0.1)])
    nodes = [seg, rec, sim, ctl, bag]
    driver = rclpy.create_node("dds_fuzzer", context=ros_context)
    masks = []
    driver.create_subscription(Image, "mask", masks.append, image_qos(depth=50))
    deep = image_qos(depth=100)  # the fuzz burst must not be thinned out by the publisher's own queue
    pubs = {"image": driver.create_publisher(Image, "camera/image_raw", deep),
            "mask": driver.create_publisher(Image, "mask", deep),
            "info": driver.create_publisher(CameraInfo, "camera/camera_info", deep),
            "pose": driver.create_publisher(PoseStamped, "camera/pose", latched_qos()),
            "asset": driver.create_publisher(GaussianAsset, "asset", latched_qos(depth=1)),
            "command": driver.create_publisher(GripperCommand, "gripper/command", command_qos(depth=100)),
            "anchors": driver.create_publisher(PointCloud2, "sim/anchors", QoSProfile(depth=100))}
    executor = IsolatedExecutor(ros_context)
    for node in nodes + [driver]:
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: pubs["image"].get_subscription_count() >= 3
                          and pubs["command"].get_subscription_count() >= 1
                          and pubs["anchors"].get_subscription_count() >= 1, 30.0)
        batches = {"image": draw(fuzz.images(), PER_TOPIC), "mask": draw(fuzz.images(), PER_TOPIC),
                   "info": draw(fuzz.camera_infos(), PER_TOPIC), "pose": draw(fuzz.poses(), 5),
                   "asset": draw(fuzz.assets(), 8), "command": draw(fuzz.gripper_commands(), PER_TOPIC),
                   "anchors": draw(fuzz.pointclouds(), PER_TOPIC)}
        sent = 0
        for topic, items in batches.items():
            for msg in items:
                pubs[topic].publish(msg)
                sent += 1
                # the controller subscribes sim/anchors with depth 2 (newest wins): give it time per cloud
                for _ in range(3 if topic == "anchors" else 1):
                    executor.spin_once(timeout_sec=0.01 if topic == "anchors" else 0.0)
        nan_cloud = pointcloud2_from_points(np.full((5, 3), np.nan, np.float32))

        def every_node_dropped_something() -> bool:
            if "anchors" not in ctl.dropped.counts:
                # sim/anchors is KEEP_LAST 2 and the simulation publishes valid clouds too: on a loaded machine the
                # fuzzed ones can all be overwritten before the controller runs, so keep offering a bad one.
                pubs["anchors"].publish(nan_cloud)
            return ({"image"} <= set(seg.dropped.counts) and {"image", "mask", "camera info"} <= set(rec.dropped.counts)
                    and "gripper command" in sim.dropped.counts and "anchors" in ctl.dropped.counts)

        assert spin_until(executor, every_node_dropped_something, 30.0), \
            (seg.dropped.counts, rec.dropped.counts, sim.dropped.counts, ctl.dropped.counts)
        # good messages after the fuzz get their normal response from every node
        good = numpy_to_image(np.full((24, 32, 3), 80, np.uint8), "rgb8")
        good.header.stamp.sec = 2**31 - 1  # newest stamp of the run: the bag test below looks for it
        pubs["image"].publish(good)
        assert spin_until(executor, lambda: any(m.header.stamp.sec == 2**31 - 1 for m in masks), 30.0), \
            "segmentation did not answer a good image"
        pubs["asset"].publish(asset_to_msg(random_asset(100, num_anchors=20, seed=4, object_id="good_after_fuzz")))
        assert spin_until(executor, lambda: sim.sim is not None and sim.sim.asset.object_id == "good_after_fuzz"
                          and sim.frames_stepped > 2, 30.0), "simulation did not load a good asset"
        pubs["anchors"].publish(pointcloud2_from_points(np.zeros((7, 3), np.float32)))
        assert spin_until(executor, lambda: ctl._anchors is not None and len(ctl._anchors) in (7, 20), 10.0)
        assert spin_until(executor, lambda: bag.counts["/camera/image_raw"] >= PER_TOPIC + 1, 30.0), bag.counts
        for node in (seg, rec, sim, ctl):
            assert node.dropped.counts, f"{node.get_name()} dropped nothing"
    finally:
        shutdown_nodes(nodes + [driver], executor)
