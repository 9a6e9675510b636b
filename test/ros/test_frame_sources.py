"""Frame sources: resizing a clip to another camera size keeps frames, intrinsics and masks consistent."""
import numpy as np
import pytest

from reconphys_ros.ros.frame_sources import open_source


def test_resized_clip_scales_frames_intrinsics_and_masks():
    clip = open_source("")
    big = clip.resized(512, 384)
    frames = list(big.frames())
    assert len(frames) == len(list(clip.frames())) and frames[0].shape == (384, 512, 3)
    assert frames[0].dtype == np.uint8 and big.masks.shape == (len(clip.masks), 384, 512)
    # a world point lands on the same relative image position in both cameras
    point = np.array([0.05, -0.02, 0.1, 1.0])
    cam = clip.world_to_cam @ point
    u_small = clip.K @ cam[:3]
    u_big = big.K @ cam[:3]
    np.testing.assert_allclose(u_big[:2] / u_big[2], u_small[:2] / u_small[2] * [512 / 128, 384 / 128], rtol=1e-12)
    # nearest-neighbour masks stay binary; the area scales with the pixel count
    assert set(np.unique(big.masks)) <= set(np.unique(clip.masks))
    ratio = (big.masks[10] > 0).sum() / max((clip.masks[10] > 0).sum(), 1)
    assert abs(ratio - 512 * 384 / 128 ** 2) / (512 * 384 / 128 ** 2) < 0.1
    # the picture itself is the same one, only bigger
    back = big.resized(128, 128)
    err = np.abs(next(iter(back.frames())).astype(float) - next(iter(clip.frames())).astype(float)).mean()
    assert err < 6.0
    assert clip.resized(clip.width, clip.height) is clip
    with pytest.raises(ValueError, match="at least 8x8"):
        clip.resized(4, 512)


def test_video_source_publishes_at_the_requested_size(ros_context):
    from rclpy.parameter import Parameter

    from reconphys_ros.ros.video_source import VideoSourceNode
    node = VideoSourceNode(context=ros_context, parameter_overrides=[
        Parameter("output_width", value=512), Parameter("output_height", value=512)])
    try:
        assert (node.camera_info.width, node.camera_info.height) == (512, 512)
        assert node._next_frame().shape == (512, 512, 3)
        assert node.camera_info.k[0] == pytest.approx(4 * open_source("").K[0, 0])
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="both output_width and output_height"):
        VideoSourceNode(context=ros_context, parameter_overrides=[Parameter("output_width", value=512)])


def test_looping_source_stamps_stay_a_frame_apart_across_passes(ros_context):
    # Ticks called back to back run ahead of the wall clock, so each new pass starts right after the last stamp:
    # it must be a whole frame later, or the stamps collide once converted to float seconds.
    from rclpy.parameter import Parameter

    from reconphys_ros.ros.video_source import VideoSourceNode
    node = VideoSourceNode(context=ros_context, parameter_overrides=[
        Parameter("loop", value=True), Parameter("hold_last_frames", value=0), Parameter("fps", value=30.0)])
    stamps = []
    node.image_pub.publish = lambda msg: stamps.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
    try:
        for _ in range(3 * 31):
            node.tick()
    finally:
        node.destroy_node()
    assert node.passes >= 2 and len(stamps) >= 60
    gaps = np.diff(stamps)
    assert gaps.min() >= round(1e9 / 30.0) - 1, gaps.min()
    seconds = np.array(stamps) * 1e-9
    assert np.all(np.diff(seconds) > 0)
