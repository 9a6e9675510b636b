"""reconphys-from-bags and the clip loaders refuse bad camera geometry (issue 18.6, 18.7).

Bags are written here with rosbags (no ROS graph): the shipped example clip played twice, with camera info and
camera pose messages, some of them corrupt. Each test failed on the code before the fix: zero / NaN K and NaN
poses became clips, the last pose was applied to every clip, a bag without a pose gave an identity world_to_cam,
one truncated image aborted the whole conversion without naming it, and SyntheticDataset / video_source loaded
samples with NaN K, a zero pose or a meta.json whose frame count and height were swapped.
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from reconphys_ros.bags import make_typestore
from reconphys_ros.core.geometry import pose_matrix
from reconphys_ros.examples import load_example
from reconphys_ros.examples.clip_format import CorruptSampleError, read_meta, sha256_file
from training.data.dataset import SyntheticDataset
from training.data.from_bags import clips_from_bag, convert, main
from training.data.storage import ARRAY_FILE, META_FILE, read_npz, write_json, write_npz

PASS_START_S = (100.0, 200.0)  # the example clip is played twice: one drop each
POSE_A = ([0.0, -1.0, 0.5], [0.5, -0.5, 0.5, -0.5])  # position, quaternion wxyz of the camera in the world
POSE_B = ([0.2, -1.2, 0.6], [0.5, -0.5, 0.5, -0.5])


@pytest.fixture(scope="module")
def example():
    clip = load_example("falling_cylinder", views=[0])
    return clip["rgb"][0], (clip["mask"][0] * 255).astype(np.uint8), clip["K"][0].astype(np.float64)


class BagWriter:
    """A camera + mask bag, message by message (stamps in s; the receive time is the stamp unless given)."""

    def __init__(self, path):
        self.store = make_typestore()
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.conns = {}
        t = self.store.types
        self.Header, self.Time = t["std_msgs/msg/Header"], t["builtin_interfaces/msg/Time"]

    def _write(self, topic, msgtype, msg, received):
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.store)
        self.writer.write(self.conns[topic], int(round(received * 1e9)), self.store.serialize_cdr(msg, msgtype))

    def header(self, stamp):
        sec = int(stamp)
        return self.Header(self.Time(sec, int(round((stamp - sec) * 1e9))), "camera")

    def image(self, topic, stamp, array, encoding, truncate=False):
        Image = self.store.types["sensor_msgs/msg/Image"]
        h, w = array.shape[:2]
        step = w * (3 if array.ndim == 3 else 1)
        data = np.ascontiguousarray(array).reshape(-1)
        if truncate:
            data = data[: data.size // 2]
        self._write(topic, "sensor_msgs/msg/Image", Image(self.header(stamp), h, w, encoding, 0, step, data), stamp)

    def camera_info(self, stamp, K, width=128, height=128):
        t = self.store.types
        roi = t["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False)
        info = t["sensor_msgs/msg/CameraInfo"](self.header(stamp), height, width, "plumb_bob", np.zeros(5),
                                               np.asarray(K, np.float64).reshape(9), np.eye(3).reshape(9),
                                               np.zeros(12), 0, 0, roi)
        self._write("/camera/camera_info", "sensor_msgs/msg/CameraInfo", info, stamp)

    def pose(self, stamp, position, quat_wxyz):
        t = self.store.types
        pose = t["geometry_msgs/msg/Pose"](t["geometry_msgs/msg/Point"](*map(float, position)),
                                           t["geometry_msgs/msg/Quaternion"](*map(float, quat_wxyz[1:]),
                                                                             float(quat_wxyz[0])))
        self._write("/camera/pose", "geometry_msgs/msg/PoseStamped",
                    t["geometry_msgs/msg/PoseStamped"](self.header(stamp), pose), stamp)

    def drops(self, rgb, masks, truncate=()):
        """The clip once per PASS_START_S, 10 still frames after each; `truncate`: (pass, frame) images cut."""
        for p, start in enumerate(PASS_START_S):
            frames = list(range(len(rgb))) + [len(rgb) - 1] * 10
            for i, f in enumerate(frames):
                stamp = start + i / 30.0
                self.image("/camera/image_raw", stamp, rgb[f], "rgb8", truncate=(p, i) in truncate)
                self.image("/mask", stamp, masks[f], "mono8")

    def close(self):
        self.writer.close()


def write_bag(path, example, infos=None, poses=(), truncate=()):
    """infos: [(receive s, K)] (default: the example's K at 99 s); poses: [(receive s, position, quat)]."""
    rgb, masks, K = example
    bag = BagWriter(path)
    for stamp, k in (infos if infos is not None else [(99.0, K)]):
        bag.camera_info(stamp, k)
    for stamp, position, quat in poses:
        bag.pose(stamp, position, quat)
    bag.drops(rgb, masks, truncate)
    bag.close()
    return path


def world_to_cam(position, quat):
    return np.linalg.inv(pose_matrix(position, quat))


def test_each_clip_takes_the_pose_in_force_at_its_time(tmp_path, example):
    """The pose changed between the drops: the old code applied the last one (B) to both clips."""
    bag = write_bag(tmp_path / "bag", example, poses=[(99.0, *POSE_A), (150.0, *POSE_B)])
    clips = clips_from_bag(bag, num_frames=20)
    assert len(clips) == 2
    np.testing.assert_allclose(clips[0].world_to_cam, world_to_cam(*POSE_A), atol=1e-12)
    np.testing.assert_allclose(clips[1].world_to_cam, world_to_cam(*POSE_B), atol=1e-12)


def test_a_latched_pose_received_just_after_the_first_images_applies(tmp_path, example):
    bag = write_bag(tmp_path / "bag", example, poses=[(100.05, *POSE_A)])
    clips = clips_from_bag(bag, num_frames=20)
    assert len(clips) == 2
    for clip in clips:
        np.testing.assert_allclose(clip.world_to_cam, world_to_cam(*POSE_A), atol=1e-12)


def test_a_bag_without_a_camera_pose_is_an_error_unless_one_is_given(tmp_path, example, capsys):
    """It used to convert with an identity world_to_cam without a word (issue 18.7)."""
    bag = write_bag(tmp_path / "bag", example)
    with pytest.raises(ValueError, match="no usable camera pose on /camera/pose.*--camera-pose"):
        clips_from_bag(bag, num_frames=20)
    assert main([str(bag), "--out", str(tmp_path / "data"), "--num-frames", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--camera-pose" in err
    assert main([str(bag), "--out", str(tmp_path / "data"), "--num-frames", "20",
                 "--camera-pose", *map(str, POSE_A[0] + POSE_A[1])]) == 0
    item = SyntheticDataset(str(tmp_path / "data"), views=0, verify=True)[0]
    np.testing.assert_allclose(item["world_to_cam"].numpy(), world_to_cam(*POSE_A), atol=1e-6)


@pytest.mark.parametrize("position, quat, reason", [
    ([np.nan, 0.0, 0.5], POSE_A[1], "position must be 3 finite numbers"),
    (POSE_A[0], [0.0, 0.0, 0.0, 0.0], "zero-length quaternion"),
    (POSE_A[0], [np.nan, 0.0, 0.0, 1.0], "must be 4 finite numbers"),
])
def test_bad_poses_are_skipped_with_a_warning_naming_them(tmp_path, example, caplog, position, quat, reason):
    """A NaN position became a NaN world_to_cam; a NaN or zero quaternion aborted the whole conversion."""
    bag = write_bag(tmp_path / "bag", example, poses=[(99.0, *POSE_A), (150.0, position, quat)])
    skipped = []
    with caplog.at_level(logging.WARNING, logger="reconphys-from-bags"):
        clips = clips_from_bag(bag, num_frames=20, skipped=skipped)
    assert len(clips) == 2 and all(np.isfinite(c.world_to_cam).all() for c in clips)
    np.testing.assert_allclose(clips[1].world_to_cam, world_to_cam(*POSE_A), atol=1e-12)  # still in force
    assert len(skipped) == 1 and f"bag {bag} topic /camera/pose stamp 150.000000000 s" in skipped[0]
    assert reason in skipped[0] and skipped[0] in caplog.text
    only_bad = write_bag(tmp_path / "only_bad", example, poses=[(99.0, position, quat)])
    with pytest.raises(ValueError, match="no usable camera pose.*1 refused"):
        clips_from_bag(only_bad, num_frames=20)


@pytest.mark.parametrize("K, reason", [
    (np.zeros((3, 3)), "bottom row"),
    (np.full((3, 3), np.nan), "finite 3x3"),
    (np.array([[1e-3, 0, 64], [0, 1e-3, 64], [0, 0, 1]]), "field of view"),
    (np.array([[100.0, 0, 1e30], [0, 100, 64], [0, 0, 1]]), "principal point"),
])
def test_bad_intrinsics_are_refused(tmp_path, example, capsys, K, reason):
    """Zero and NaN K used to become clips with a zero / NaN K and exit code 0."""
    bag = write_bag(tmp_path / "bag", example, infos=[(99.0, K)], poses=[(99.0, *POSE_A)])
    with pytest.raises(ValueError, match=f"no usable camera info.*1 refused.*{reason}"):
        clips_from_bag(bag, num_frames=20)
    assert main([str(bag), "--out", str(tmp_path / "data"), "--num-frames", "20"]) == 2
    assert "Traceback" not in capsys.readouterr().err
    # a good K before the bad one stays in force
    mixed = write_bag(tmp_path / "mixed", example, infos=[(99.0, example[2]), (150.0, K)], poses=[(99.0, *POSE_A)])
    clips = clips_from_bag(mixed, num_frames=20)
    assert len(clips) == 2 and all(np.array_equal(c.K, example[2]) for c in clips)


def test_a_truncated_image_is_skipped_named_and_counted(tmp_path, example, capsys, caplog):
    """One truncated image used to abort the whole conversion with an error naming no bag, topic or time."""
    bag = write_bag(tmp_path / "bag", example, poses=[(99.0, *POSE_A)], truncate=[(1, 35)])
    manifest = convert([str(bag)], str(tmp_path / "data"), num_frames=20)
    assert len(manifest["samples"]) == 2
    assert len(manifest["skipped"]) == 1
    stamp = PASS_START_S[1] + 35 / 30.0
    assert f"bag {bag} topic /camera/image_raw stamp {stamp:.9f} s" in manifest["skipped"][0]
    with open(tmp_path / "data" / "manifest.json") as f:
        assert json.load(f)["skipped"] == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reconphys-from-bags"):
        assert main([str(bag), "--out", str(tmp_path / "cli"), "--num-frames", "20"]) == 0
    out = capsys.readouterr()
    assert "wrote 2 clips" in out.out and "skipped 1 unusable" in out.out
    assert caplog.text.count("topic /camera/image_raw") == 1  # the warning, once


# ------------------------------------------------------------------ the loaders

@pytest.fixture()
def bag_data(tmp_path, example):
    bag = write_bag(tmp_path / "bag", example, poses=[(99.0, *POSE_A)])
    root = tmp_path / "data"
    convert([str(bag)], str(root), num_frames=20)
    return root


def _tamper(sample_dir, arrays=None, meta=None):
    """Rewrite arrays.npz / meta.json keeping the hashes right, so only the geometry check can catch it."""
    meta_now = read_meta(sample_dir)
    if arrays is not None:
        write_npz(os.path.join(sample_dir, ARRAY_FILE), arrays)
        meta_now["files"][ARRAY_FILE] = sha256_file(os.path.join(sample_dir, ARRAY_FILE))
    write_json(os.path.join(sample_dir, META_FILE), dict(meta_now, **(meta or {})))


@pytest.mark.parametrize("change, pattern", [
    (lambda a: a["K"].fill(np.nan), "K of view 0 must be a finite"),
    (lambda a: a["K"].fill(0.0), "K of view 0 is not a pinhole"),
    (lambda a: a["world_to_cam"].fill(0.0), "world_to_cam of view 0 is not a rigid transform"),
    (lambda a: a["world_to_cam"].fill(np.nan), "world_to_cam of view 0 must be a finite"),
])
def test_loaders_refuse_bad_geometry_even_with_good_hashes(bag_data, change, pattern):
    from reconphys_ros.ros.frame_sources import load_dataset_clip
    sample = bag_data / "samples" / "bag000_drop000"
    arrays = read_npz(os.path.join(sample, ARRAY_FILE))
    change(arrays)
    _tamper(sample, arrays=arrays)
    dataset = SyntheticDataset(str(bag_data), views=0, verify=True)
    with pytest.raises(CorruptSampleError, match=pattern):
        dataset[0]
    with pytest.raises(CorruptSampleError, match=pattern):
        load_dataset_clip(sample)
    dataset[1]  # the untouched sample still loads


def test_loaders_refuse_a_meta_with_frame_count_and_height_swapped(bag_data):
    from reconphys_ros.ros.frame_sources import load_dataset_clip
    sample = bag_data / "samples" / "bag000_drop000"
    meta = read_meta(sample)
    assert (meta["num_frames"], meta["height"]) == (20, 128)
    _tamper(sample, meta={"num_frames": 128, "height": 20})
    with pytest.raises(CorruptSampleError, match="swapped"):
        SyntheticDataset(str(bag_data), views=0, verify=True)[0]
    with pytest.raises(CorruptSampleError, match="swapped"):
        load_dataset_clip(sample)


def test_write_refuses_bad_geometry(tmp_path, example):
    from training.data.from_bags import BagClip, write_clip
    rgb, masks, K = example
    clip = BagClip(rgb[:20], masks[:20], 100.0 + np.arange(20) / 30.0, np.zeros((3, 3)), world_to_cam(*POSE_A))
    with pytest.raises(ValueError, match="refusing to write sample .*K of view 0"):
        write_clip(str(tmp_path), "s", clip, "s")
    clip.K, clip.world_to_cam = K, np.zeros((4, 4))
    with pytest.raises(ValueError, match="refusing to write sample .*world_to_cam of view 0"):
        write_clip(str(tmp_path), "s", clip, "s")
