"""Overload: the camera at 60 Hz into segmentation + reconstruction (whose pipeline takes seconds per drop) keeps
memory bounded, processes the newest frames (old ones are dropped, never queued without bound), counts the drop
clips it had to ignore while busy, and the simulation's image path never blocks on physics."""
from __future__ import annotations

import time

import pytest

import rclpy
from reconphys_ros.ros.spin import IsolatedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from reconphys_ros.ros.qos import image_qos
from reconphys_ros.ros.reconstruction import ReconstructionNode
from reconphys_ros.ros.segmentation import SegmentationNode
from reconphys_ros.ros.video_source import VideoSourceNode
from test.ros.conftest import spin_until

RUN_S = 15.0


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class SlowPipeline:
    """Stands in for a pipeline much slower than the camera (2 s per drop)."""

    def __init__(self):
        self.runs = 0

    def run(self, images, masks, camera, object_id, fps, times=None):
        self.runs += 1
        time.sleep(2.0)
        raise RuntimeError("slow stub pipeline: no asset")


def test_60hz_camera_into_slow_reconstruction(ros_context, tmp_path):
    video = VideoSourceNode(context=ros_context, parameter_overrides=[
        Parameter("fps", value=60.0), Parameter("hold_last_frames", value=2), Parameter("wait_for_subscribers", value=2)])
    seg = SegmentationNode(context=ros_context)
    rec = ReconstructionNode(context=ros_context, parameter_overrides=[Parameter("output_dir", value=str(tmp_path)),
                                                                      Parameter("min_drop_px", value=1.0)])
    rec.pipeline = SlowPipeline()
    watcher = rclpy.create_node("overload_watcher", context=ros_context)
    latest = {"image": 0, "mask": 0}
    watcher.create_subscription(Image, "camera/image_raw",
                                lambda m: latest.__setitem__("image", m.header.stamp.sec * 10**9 + m.header.stamp.nanosec),
                                image_qos())
    nodes = [video, seg, rec, watcher]
    executor = IsolatedExecutor(ros_context)
    for node in nodes:
        executor.add_node(node)
    try:
        assert spin_until(executor, lambda: video.frames_published > 60, 60.0)
        warm = rss_mb()
        start, peak = time.monotonic(), warm
        while time.monotonic() - start < RUN_S:
            executor.spin_once(timeout_sec=0.05)
            peak = max(peak, rss_mb())
        rate = video.frames_published / (time.monotonic() - start + 1e-9)
        video.timer.cancel()
        published = video.frames_published
        spin_until(executor, lambda: False, 2.0)  # drain
        pairs_seen = rec.detector._last_time
        lag_s = latest["image"] * 1e-9 - (pairs_seen or 0.0)
        unpaired = rec.pairer.unpaired_dropped
        print(f"overload: {published} frames published ({rate:.0f} Hz achieved), {seg.masks_published} masks, "
              f"{unpaired} unpaired dropped, {rec.clips_ignored} drop clips ignored while busy, "
              f"{rec.pipeline.runs} pipeline runs, RSS {warm:.0f} -> peak {peak:.0f} MB, lag {lag_s:.2f} s")
        assert peak - warm < 150, f"memory grew {peak - warm:.0f} MB under overload"
        assert pairs_seen is not None and lag_s < 1.0, f"reconstruction is {lag_s:.2f} s behind the camera"
        assert rec.pipeline.runs >= 2, "drops were not detected under load"
        assert rec.clips_ignored >= 1 and rec.dropped.counts.get("drop clip", 0) == rec.clips_ignored
        for side in ("image", "mask"):
            assert len(rec.pairer._pending[side]) <= rec.pairer.window
    finally:
        rec.close()
        executor.shutdown()
        for node in nodes:
            node.destroy_node()


def test_masks_lagging_images_by_seconds_still_pair(ros_context, tmp_path):
    """A loaded segmentation delivers masks seconds after their images: that is lag, not a restarted stream."""
    import numpy as np

    from reconphys_ros.ros.conversions import numpy_to_image
    rec = ReconstructionNode(context=ros_context, parameter_overrides=[Parameter("output_dir", value=str(tmp_path)),
                                                                      Parameter("pair_window", value=200)])
    try:
        lag = 60  # frames = 2 s at 30 Hz

        def frame(side, i):
            msg = numpy_to_image(np.zeros((8, 8, 3) if side == "image" else (8, 8), np.uint8),
                                 "rgb8" if side == "image" else "mono8")
            msg.header.stamp.sec, msg.header.stamp.nanosec = 50 + i // 30, (i % 30) * 33_333_333
            rec.on_frame(side, msg)

        for i in range(150):
            frame("image", i)
            if i >= lag:
                frame("mask", i - lag)
        assert rec.stream_restarts == 0
        assert rec.detector._last_time == pytest.approx(50 + (149 - lag) // 30 + ((149 - lag) % 30) * 0.033333333)
    finally:
        rec.close()
        rec.destroy_node()
