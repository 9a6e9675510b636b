"""video_source -> segmentation over loopback DDS: masks match the clip's ground truth; bad input is dropped."""
import numpy as np
import pytest
import rclpy
from reconphys_ros.ros.spin import IsolatedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from reconphys_ros.ros.conversions import image_to_numpy, numpy_to_image
from reconphys_ros.ros.frame_sources import open_source
from reconphys_ros.ros.qos import image_qos
from reconphys_ros.ros.segmentation import SegmentationNode
from reconphys_ros.ros.video_source import VideoSourceNode
from test.ros.conftest import spin_until


def _collector(context, name="collector"):
    node = rclpy.create_node(name, context=context)
    got = {"image": [], "mask": [], "info": []}
    node.create_subscription(Image, "camera/image_raw", got["image"].append, image_qos(depth=100))
    node.create_subscription(Image, "mask", got["mask"].append, image_qos(depth=100))
    node.create_subscription(CameraInfo, "camera/camera_info", got["info"].append, image_qos(depth=100))
    return node, got


def test_video_source_to_segmentation_masks_match_ground_truth(ros_context):
    clip = open_source("")
    executor = IsolatedExecutor(ros_context)
    seg = SegmentationNode(context=ros_context)
    collector, got = _collector(ros_context)
    for node in (seg, collector):
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: seg.mask_pub.get_subscription_count() >= 1, 30.0)
        video = VideoSourceNode(context=ros_context, parameter_overrides=[
            Parameter("loop", value=False), Parameter("hold_last_frames", value=0),
            Parameter("wait_for_subscribers", value=2),
            # Every frame must arrive: images are KEEP_LAST(5) by design (newest kept under overload), and one
            # process spinning three nodes on 2 loaded cores may fall behind 30 fps.
            Parameter("fps", value=10.0)])
        executor.add_node(video)
        n = len(clip.masks)
        assert spin_until(executor, lambda: len(got["mask"]) >= n, 90.0), (len(got["mask"]), len(got["image"]), video.frames_published, seg.masks_published, seg.dropped.counts)
        spin_until(executor, lambda: False, 0.5)  # nothing beyond the clip (loop = false)
        assert len(got["image"]) == n and len(got["mask"]) == n
        stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["image"]]
        for i, mask_msg in enumerate(got["mask"]):
            assert (mask_msg.header.stamp.sec, mask_msg.header.stamp.nanosec) == stamps[i]  # same header
            assert mask_msg.encoding == "mono8"
            pred, truth = image_to_numpy(mask_msg) > 0, clip.masks[i] > 0
            iou = (pred & truth).sum() / (pred | truth).sum()
            assert iou >= 0.9, f"frame {i}: IoU {iou:.3f}"
        np.testing.assert_array_equal(image_to_numpy(got["image"][3]), clip._frames[3])
        k = np.asarray(got["info"][0].k).reshape(3, 3)
        np.testing.assert_allclose(k, clip.K, rtol=1e-6)
        video.destroy_node()
    finally:
        executor.shutdown()
        seg.destroy_node()
        collector.destroy_node()


def test_segmentation_drops_bad_images_and_keeps_serving(ros_context):
    executor = IsolatedExecutor(ros_context)
    seg = SegmentationNode(context=ros_context)
    collector, got = _collector(ros_context)
    pub = collector.create_publisher(Image, "camera/image_raw", image_qos())
    for node in (seg, collector):
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: pub.get_subscription_count() >= 1 and
                          seg.mask_pub.get_subscription_count() >= 1, 30.0)
        good = numpy_to_image(np.full((32, 40, 3), 90, np.uint8), "rgb8")
        wrong_encoding = numpy_to_image(np.zeros((32, 40), np.float32), "32FC1")
        truncated = numpy_to_image(np.zeros((32, 40, 3), np.uint8), "rgb8")
        truncated.data = truncated.data[:-7]
        empty = Image(encoding="rgb8")
        unknown = numpy_to_image(np.zeros((4, 4), np.uint8), "mono8")
        unknown.encoding = "16UC1"
        for bad in (wrong_encoding, truncated, empty, unknown):
            pub.publish(bad)
        assert spin_until(executor, lambda: seg.dropped.counts.get("image", 0) >= 4, 30.0), seg.dropped.counts
        pub.publish(good)
        assert spin_until(executor, lambda: len(got["mask"]) >= 1, 30.0), "node stopped serving after bad input"
        assert image_to_numpy(got["mask"][0]).shape == (32, 40)
    finally:
        executor.shutdown()
        seg.destroy_node()
        collector.destroy_node()


def test_segmentation_parameters_are_validated(ros_context):
    with pytest.raises(Exception, match="threshold"):
        SegmentationNode(context=ros_context, parameter_overrides=[Parameter("threshold", value=-5.0)])
    with pytest.raises(ValueError, match="checkpoint"):
        SegmentationNode(context=ros_context, parameter_overrides=[Parameter("backend", value="sam")])
    with pytest.raises(Exception, match="backend"):
        SegmentationNode(context=ros_context, parameter_overrides=[Parameter("backend", value="magic")])
    node = SegmentationNode(context=ros_context)
    try:
        descriptor = node.describe_parameter("threshold")
        assert descriptor.description and descriptor.floating_point_range[0].from_value == 1.0
        result = node.set_parameters([Parameter("threshold", value=10.0)])[0]
        assert not result.successful and "read-only" in result.reason
    finally:
        node.destroy_node()


def test_video_source_rejects_missing_source(ros_context, tmp_path):
    with pytest.raises(ValueError, match="neither a file nor a folder"):
        VideoSourceNode(context=ros_context, parameter_overrides=[Parameter("source", value=str(tmp_path / "x"))])


def test_out_of_range_parameter_change_is_rejected_with_a_reason(ros_context):
    node = VideoSourceNode(context=ros_context)
    try:
        result = node.set_parameters([Parameter("hold_last_frames", value=-1)])[0]
        assert not result.successful and "hold_last_frames" in result.reason
        assert node.set_parameters([Parameter("hold_last_frames", value=3)])[0].successful
        assert node.params["hold_last_frames"] == 3
    finally:
        node.destroy_node()
