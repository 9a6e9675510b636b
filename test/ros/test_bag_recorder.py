"""bag_recorder: a 10 s recording holds every published camera frame (split into parts), our custom messages are
decodable, and training/data/from_bags turns the bag into clips that SyntheticDataset accepts."""
import errno
import os
import pathlib
import time

import numpy as np
import pytest
import rclpy
from reconphys_ros.ros.spin import IsolatedExecutor
from rclpy.parameter import Parameter
from rosbags.highlevel import AnyReader
from std_msgs.msg import String

from reconphys_ros.bags import make_typestore
from reconphys_ros.msg import PhysicsParams
from reconphys_ros.ros.bag_recorder import BagRecorderNode
from reconphys_ros.ros.conversions import physics_to_msg
from reconphys_ros.ros.qos import latched_qos
from reconphys_ros.ros.segmentation import SegmentationNode
from reconphys_ros.ros.video_source import VideoSourceNode
from test.ros.conftest import spin_until
from test.ros.helpers import random_asset
from training.data.dataset import SyntheticDataset
from training.data.from_bags import clips_from_bag, convert

RECORD_S = 10.0
MIN_FRAMES = 130  # > 4 loops of the 30-frame clip: the drop detector re-arms between drops


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Records video_source + segmentation + a latched PhysicsParams for 10 s; returns (folder, counts)."""
    out = tmp_path_factory.mktemp("bags")
    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = IsolatedExecutor(context)
    recorder = BagRecorderNode(context=context, parameter_overrides=[
        Parameter("output_dir", value=str(out)), Parameter("split_duration_s", value=4.0),
        Parameter("topics", value=["camera/image_raw", "camera/camera_info", "camera/pose", "mask", "physics"])])
    seg = SegmentationNode(context=context)
    helper = rclpy.create_node("physics_publisher", context=context)
    physics_pub = helper.create_publisher(PhysicsParams, "physics", latched_qos())
    asset = random_asset(10, 8)
    physics_pub.publish(physics_to_msg(asset.physics, "test_obj", asset.spring_scale()))
    for node in (recorder, seg, helper):
        executor.add_node(node)
    # the recorder and segmentation subscribe to the images before the first frame goes out
    video = VideoSourceNode(context=context, parameter_overrides=[Parameter("wait_for_subscribers", value=2),
                                                                  # 15 fps: segmentation keeps up on 2 loaded cores
                                                                  Parameter("fps", value=15.0)])
    executor.add_node(video)
    try:
        assert spin_until(executor, lambda: video.frames_published > 0, 60.0)
        # Record at least RECORD_S seconds and MIN_FRAMES frames (over 4 loops of the 30-frame clip): on a loaded
        # 2-core machine the source may publish below its nominal 30 fps, and that must not fail the test.
        start = time.monotonic()
        assert spin_until(executor, lambda: time.monotonic() - start > RECORD_S
                          and video.frames_published >= MIN_FRAMES, RECORD_S + 120), video.frames_published
        video.timer.cancel()
        published = video.frames_published
        masks = seg.masks_published  # segmentation may still be working on the last frames
        assert spin_until(executor, lambda: recorder.counts["/camera/image_raw"] >= published
                          and recorder.counts["/mask"] >= seg.masks_published, 30.0), recorder.counts
        counts = dict(recorder.counts)
        recorder.close()
        yield recorder.recording_dir, published, max(masks, seg.masks_published), counts, list(recorder.bag_paths)
    finally:
        executor.shutdown()
        for node in (recorder, seg, helper, video):
            node.destroy_node()
        rclpy.shutdown(context=context)


def test_bag_has_every_camera_frame(recording):
    folder, published, masks, counts, parts = recording
    assert published >= MIN_FRAMES
    assert counts["/camera/image_raw"] == published
    assert len(parts) >= 2, "split_duration_s = 4 over 10 s must split the recording"
    seen, physics, stamps = 0, [], set()
    with AnyReader([__import__("pathlib").Path(p) for p in parts], default_typestore=make_typestore()) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types["/physics"] == "reconphys_ros/msg/PhysicsParams"
        assert types["/camera/image_raw"] == "sensor_msgs/msg/Image"
        for conn, _, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/camera/image_raw":
                seen += 1
                stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
                assert (msg.width, msg.height, msg.encoding) == (128, 128, "rgb8")
            elif conn.topic == "/physics":
                physics.append(msg)
    assert seen == published and len(stamps) == published  # every frame once
    assert physics and physics[0].object_id == "test_obj" and physics[0].mass == pytest.approx(0.3)  # kg


def test_from_bags_makes_clips_the_loader_accepts(recording, tmp_path):
    folder = recording[0]
    clips = clips_from_bag(folder)
    # At least one whole drop (usually several): how many the recording holds depends on how many masks the
    # segmentation node kept up with on a loaded machine, which this test does not control.
    assert len(clips) >= 1, "the looping example holds at least one whole drop"
    clip = clips[0]
    # the window is in time (30 frames at 30 Hz = 0.967 s): the 15 Hz stamps give 15 frames over it
    assert clip.fps == pytest.approx(15.0)
    n = 15
    assert clip.images.shape == (n, 128, 128, 3) and clip.masks.shape == (n, 128, 128)
    assert np.all(np.diff(clip.stamps) >= 0) and clip.stamps[-1] - clip.stamps[0] == pytest.approx(14 / 15.0)
    manifest = convert([folder], str(tmp_path), split="train")
    dataset = SyntheticDataset(str(tmp_path), split="train", views=0, verify=True)
    assert len(dataset) == len(manifest["samples"]) == len(clips)
    item = dataset[0]
    assert item["rgb"].shape == (n, 3, 128, 128) and item["mask"].shape == (n, 1, 128, 128)
    assert item["mask"].any() and item["K"].shape == (3, 3) and item["world_to_cam"].shape == (4, 4)
    np.testing.assert_allclose(item["rgb"][0].permute(1, 2, 0).numpy() * 255, clip.images[0], atol=0.6)


class _Logger:
    def __init__(self):
        self.errors, self.infos = [], []

    def error(self, text, **_):
        self.errors.append(str(text))

    def info(self, text, **_):
        self.infos.append(str(text))

    warning = info


def _disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("close_fails", [False, True], ids=["space-back-for-close", "close-fails-too"])
def test_full_disk_stops_the_recording_not_the_node(ros_context, tmp_path, monkeypatch, close_fails):
    """Issue 18.2: OSError(ENOSPC) escaped on_message and close() and took the whole graph down. Now the recorder
    logs it, stops recording, finishes the bag as far as it can and keeps running."""
    recorder = BagRecorderNode(context=ros_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("topics", value=["chatter"]),
        Parameter("discovery_period_s", value=0.05)])
    talker = rclpy.create_node("talker", context=ros_context)
    pub = talker.create_publisher(String, "chatter", 10)
    logger = _Logger()
    monkeypatch.setattr(recorder, "get_logger", lambda: logger)
    executor = IsolatedExecutor(ros_context)
    executor.add_node(recorder)
    executor.add_node(talker)
    try:
        assert spin_until(executor, lambda: recorder._recording_subs.get("/chatter") is not None
                          and pub.get_subscription_count() > 0, 30.0)
        pub.publish(String(data="before"))
        assert spin_until(executor, lambda: recorder.counts["/chatter"] == 1, 30.0)
        writer = recorder._writer
        monkeypatch.setattr(writer, "write", _disk_full)
        if close_fails:
            monkeypatch.setattr(writer, "close", _disk_full)
        for i in range(5):
            pub.publish(String(data=f"after {i}"))
        # spin_once would raise a callback error that reached the executor
        assert spin_until(executor, lambda: recorder.write_error is not None, 30.0)
        assert "No space left on device" in recorder.write_error and recorder.counts["/chatter"] == 1
        assert any("stopped recording" in e and "No space left" in e for e in logger.errors), logger.errors
        assert not recorder.dropped.counts, "the error must be handled by the recorder, not the callback guard"
        pub.publish(String(data="later"))
        spin_until(executor, lambda: False, 0.5)  # alive: later messages are ignored without an error
        recorder.close()  # nothing left to close, no error
        recorder.discover()
        part = recorder.bag_paths[-1]
        if close_fails:
            assert any("--recover" in e for e in logger.errors), logger.errors
            assert not os.path.exists(os.path.join(part, "metadata.yaml"))
        else:
            with AnyReader([pathlib.Path(part)], default_typestore=make_typestore()) as reader:
                assert [reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()] == ["before"]
    finally:
        executor.shutdown()
        recorder.destroy_node()
        talker.destroy_node()


def _bag_strings(part):
    with AnyReader([pathlib.Path(part)], default_typestore=make_typestore()) as reader:
        return [reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()]


def test_a_latched_message_published_once_is_recorded_though_a_subscriber_came_first(ros_context, tmp_path,
                                                                                     python_env):
    """Issue 18.7: the reconstruction node's subscription to camera/pose made the recorder subscribe VOLATILE before
    any publisher existed, so a pose published once, TRANSIENT_LOCAL, by another process never reached the bag."""
    import subprocess
    recorder = BagRecorderNode(context=ros_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("topics", value=["pose_once"]),
        Parameter("discovery_period_s", value=0.05)])
    listener = rclpy.create_node("pose_listener", context=ros_context)  # like the reconstruction node
    listener.create_subscription(String, "pose_once", lambda m: None, latched_qos())
    executor = IsolatedExecutor(ros_context)
    executor.add_node(recorder)
    executor.add_node(listener)
    child = None
    try:
        assert spin_until(executor, lambda: "/pose_once" in dict(recorder.get_topic_names_and_types()), 30.0)
        spin_until(executor, lambda: False, 0.3)  # several discovery rounds with a subscriber and no publisher
        env, python = python_env
        child = subprocess.Popen([python, "-m", "test.ros.publish_latched_process", "string", "pose_once", "pose"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert spin_until(executor, lambda: recorder.counts["/pose_once"] == 1 or child.poll() is not None, 60.0)
        assert recorder.counts["/pose_once"] == 1, child.stdout.read() if child.poll() is not None else ""
        recorder.close()
        assert _bag_strings(recorder.bag_paths[-1]) == ["pose"]
    finally:
        if child is not None:
            child.kill()
            child.wait()
        executor.shutdown()
        for node in (recorder, listener):
            node.destroy_node()


def test_the_subscription_follows_its_publishers_durability(ros_context, tmp_path):
    """Subscribed VOLATILE while a volatile publisher existed; once only a latched publisher is left, the recorder
    subscribes again TRANSIENT_LOCAL (a message that publisher sent once is recorded), without writing twice a
    latched message it already has."""
    from rclpy.qos import DurabilityPolicy
    recorder = BagRecorderNode(context=ros_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("topics", value=["pose_mixed"]),
        Parameter("discovery_period_s", value=0.05)])
    executor = IsolatedExecutor(ros_context)
    executor.add_node(recorder)
    other = rclpy.context.Context()
    rclpy.init(context=other)
    volatile_node = rclpy.create_node("volatile_talker", context=other)
    latched_node = rclpy.create_node("latched_talker", context=other)
    try:
        volatile_pub = volatile_node.create_publisher(String, "pose_mixed", 10)
        latched_pub = latched_node.create_publisher(String, "pose_mixed", latched_qos())
        assert spin_until(executor, lambda: recorder._recording_subs.get("/pose_mixed") is not None
                          and latched_pub.get_subscription_count() > 0, 30.0)
        volatile = recorder._recording_subs["/pose_mixed"]
        assert volatile.qos_profile.durability == DurabilityPolicy.VOLATILE  # mixed publishers: volatile fits both
        latched_pub.publish(String(data="first"))
        assert spin_until(executor, lambda: recorder.counts["/pose_mixed"] == 1, 30.0), recorder.counts
        volatile_node.destroy_publisher(volatile_pub)
        assert spin_until(executor, lambda: recorder._recording_subs["/pose_mixed"] is not volatile, 30.0)
        latched_pub.publish(String(data="second"))  # right away: possibly before the new subscription matched
        assert spin_until(executor, lambda: recorder.counts["/pose_mixed"] == 2, 30.0), recorder.counts
        spin_until(executor, lambda: False, 0.5)  # a re-delivered "second" would show up here
        assert recorder.counts["/pose_mixed"] == 2
        assert recorder._recording_subs["/pose_mixed"].qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
        recorder.close()
        assert _bag_strings(recorder.bag_paths[-1]) == ["first", "second"]
    finally:
        executor.shutdown()
        for node in (recorder, volatile_node, latched_node):
            node.destroy_node()
        rclpy.shutdown(context=other)
