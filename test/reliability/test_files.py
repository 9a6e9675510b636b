"""Corrupt files give a clear error naming the file (never a crash deep in a parser or a half-read result);
outputs are written to a temporary name and renamed, so nothing partial ever looks complete."""
from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconphys_ros.core.gaussians import read_ply, write_ply
from reconphys_ros.examples import example_path
from reconphys_ros.examples.clip_format import CorruptSampleError
from reconphys_ros.ros.frame_sources import load_video_file, open_source
from test.ros.helpers import random_asset
from training.data.storage import verify_sample

FUZZ = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def good_ply(tmp_path_factory):
    path = tmp_path_factory.mktemp("ply") / "good.ply"
    write_ply(random_asset(50, 8).gaussians, path)
    return path.read_bytes()


def _read_corrupt_ply(tmp_path, data: bytes):
    path = tmp_path / "corrupt.ply"
    path.write_bytes(data)
    try:
        cloud = read_ply(path)
    except ValueError as exc:
        assert str(path) in str(exc), f"error does not name the file: {exc}"
        return None
    return cloud.validate()  # a corruption inside the float data can still be a valid cloud


def test_truncated_ply_names_the_file(tmp_path, good_ply):
    @FUZZ
    @given(st.integers(0, len(good_ply) - 1))
    def check(cut):
        _read_corrupt_ply(tmp_path, good_ply[:cut])
    check()
    assert _read_corrupt_ply(tmp_path, good_ply[: len(good_ply) // 2]) is None  # half a file is always refused


def test_corrupted_ply_bytes_name_the_file(tmp_path, good_ply):
    @FUZZ
    @given(st.lists(st.tuples(st.integers(0, len(good_ply) - 1), st.integers(0, 255)), min_size=1, max_size=8))
    def check(edits):
        data = bytearray(good_ply)
        for offset, value in edits:
            data[offset] = value
        _read_corrupt_ply(tmp_path, bytes(data))
    check()


def _copy_example(tmp_path):
    folder = tmp_path / "clip"
    shutil.copytree(example_path(), folder)
    return folder


@pytest.mark.parametrize("name", ["meta.json", "arrays.npz", "rgb_v0.png", "alpha_v0.png", "depth_v0.png"])
def test_truncated_clip_file_names_the_file(tmp_path, name):
    folder = _copy_example(tmp_path)
    path = folder / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptSampleError) as info:
        verify_sample(str(folder))
    assert info.value.path == str(path)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):  # the video_source loader too
        open_source(str(folder))


def test_garbage_and_truncated_video(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    with pytest.raises(ValueError, match="garbage.mp4"):
        load_video_file(garbage)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (32, 24))
    assert writer.isOpened()
    for i in range(20):
        writer.write(np.full((24, 32, 3), i * 10, np.uint8))
    writer.release()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    try:
        source = load_video_file(truncated)
    except ValueError as exc:
        assert "truncated.avi" in str(exc)
        return
    frames = list(source.frames())  # what could be decoded: whole frames of the right size only
    assert len(frames) < 20 and all(f.shape == (24, 32, 3) for f in frames)


def test_truncated_bag_names_the_bag(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from training.data.from_bags import clips_from_bag
    store = get_typestore(Stores.ROS2_HUMBLE)
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        Image = store.types["sensor_msgs/msg/Image"]
        Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
        for i in range(5):
            msg = Image(Header(Time(i, 0), "cam"), 8, 8, "rgb8", 0, 24, np.zeros(192, np.uint8))
            writer.write(conn, i, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(ValueError, match=str(bag)):
        clips_from_bag(bag)


def test_reconstruction_outputs_are_written_atomically(tmp_path, monkeypatch):
    """A crash while writing <id>.ply must not leave a partial <id>.ply behind."""
    import reconphys_ros.ros.reconstruction as rec

    asset = random_asset(30, 8, object_id="obj_1")
    node = rec.ReconstructionNode.__new__(rec.ReconstructionNode)  # only _write_outputs is exercised
    node.params = {"output_dir": str(tmp_path)}

    def failing_write(cloud, path):
        with open(path, "wb") as f:
            f.write(b"ply\nformat binary_little_endian 1.0\n")  # a header and then the process dies
        raise OSError("disk full")

    monkeypatch.setattr(rec, "write_ply", failing_write)
    from reconphys_ros.core.render import look_at
    camera = look_at([1.0, 0.0, 0.5], [0.0, 0.0, 0.0], fx=30.0, width=32, height=32)
    clip = type("Clip", (), {"stamps": np.arange(3.0)})()
    with pytest.raises(OSError):
        node._write_outputs(asset, camera, clip, object(), 0.1)
    assert not (tmp_path / "obj_1.ply").exists(), "a partial PLY was left under its final name"
    assert not (tmp_path / "obj_1.json").exists()
    monkeypatch.undo()
    node._write_outputs(asset, camera, clip, object(), 0.1)
    assert read_ply(tmp_path / "obj_1.ply").num_gaussians == 30
    assert sorted(os.listdir(tmp_path)) == ["obj_1.json", "obj_1.ply"], "temporary files left behind"
    torch.testing.assert_close(read_ply(tmp_path / "obj_1.ply").means, asset.gaussians.means)


def test_video_source_with_a_source_that_yields_nothing_stops_quietly(ros_context):
    """A looping source that decodes no frame (unreadable video) ends once instead of logging at 30 Hz."""
    from reconphys_ros.ros.frame_sources import FrameSource
    from reconphys_ros.ros.video_source import VideoSourceNode
    node = VideoSourceNode(context=ros_context)
    try:
        node.source = FrameSource("empty", 30.0, 8, 8, _frames=np.zeros((0, 8, 8, 3), np.uint8))
        node._iterator, node._last_frame = None, None
        infos = []
        node.get_logger = lambda: type("L", (), {"info": lambda self, t, **_: infos.append(t)})()
        assert not node.timer.is_canceled()
        node.tick()
        assert node.timer.is_canceled(), "the timer would keep firing (and logging) at the frame rate"
        assert len(infos) == 1 and "no frames" in infos[0]
        assert node.frames_published == 0
    finally:
        node.destroy_node()
