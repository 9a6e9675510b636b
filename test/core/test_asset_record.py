"""The asset record (<object_id>.json): one writer, one reader, stable keys, and a clear error on a broken file."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch

from reconphys_ros.core.asset import InitialMotion, PhysicsEstimate, SimAsset
from reconphys_ros.core.asset_record import (PHYSICS_CONVENTION, RECORD_KEYS, AssetRecord, read_asset_record,
                                             write_asset_record)
from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.physics.params import object_size
from reconphys_ros.core.render import look_at


def small_asset() -> SimAsset:
    rng = np.random.default_rng(3)
    n = 12
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    gaussians = GaussianCloud(means=torch.from_numpy(rng.normal(scale=0.05, size=(n, 3)).astype(np.float32)),
                              log_scales=torch.full((n, 3), -4.0), quats=quats, colors=torch.full((n, 3), 0.5),
                              opacity_logits=torch.zeros(n))
    anchors = rng.uniform(-0.05, 0.05, size=(6, 3)).astype(np.float32)
    springs = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], np.int64)
    rest = np.linalg.norm(anchors[springs[:, 0]] - anchors[springs[:, 1]], axis=1).astype(np.float32)
    # a 0.3 kg object with k/m = 200 1/s^2, d/m = 0.5 1/s (SI; physics/params.py)
    physics = PhysicsEstimate.from_si(0.3, 200.0, 0.5, 0.4, object_size(anchors),
                                      {"total_mass_std": 0.06, "stiffness_per_mass_std": 20.0,
                                       "damping_per_mass_std": 0.05, "friction_std": 0.05,
                                       "contact_damping_std": 5.0}, mass_given=True, contact_damping=20.0)
    return SimAsset("obj_7", gaussians, anchors, springs, rest, lattice_neighbors=2, binding_neighbors=4,
                    binding_power=2.0, physics=physics).validate()


def small_record() -> AssetRecord:
    camera = look_at((1.3, -0.2, 0.7), (0.0, 0.0, 0.3), fx=41.7, width=40, height=30)
    return AssetRecord.of_asset(small_asset(), camera, np.arange(20) / 30.0 + 12.5, 0.4321,
                                notes=["frame-0 Gaussians given"], timings={"gaussians": 0.1, "total": 0.3})


def test_round_trip(tmp_path):
    record = small_record()
    path = tmp_path / "obj_7.json"
    write_asset_record(path, record)
    assert os.listdir(tmp_path) == ["obj_7.json"], "temporary file left behind"
    back = read_asset_record(path)
    assert back.object_id == "obj_7" and back.physics.mass_given == record.physics.mass_given
    np.testing.assert_allclose(back.physics.params.to_tuple(), record.physics.params.to_tuple(), rtol=1e-12)
    assert back.physics.size == record.physics.size
    # contact damping: 20 1/s at the object's size in the record, size-independent inside
    assert back.physics.contact_damping == pytest.approx(record.physics.contact_damping, rel=1e-12)
    assert back.physics.derived()["contact_damping"] == pytest.approx(20.0)
    assert back.physics.contact_damping == pytest.approx(20.0 * math.sqrt(record.physics.size))
    for key, value in record.physics.std.items():
        assert back.physics.std[key] == pytest.approx(value, rel=1e-9), key
    assert (back.num_gaussians, back.num_anchors, back.num_springs) == (12, 6, 5)
    assert (back.binding_neighbors, back.binding_power) == (4, 2.0)
    assert torch.equal(back.camera.K, record.camera.K)
    assert torch.equal(back.camera.world_to_cam, record.camera.world_to_cam)
    assert (back.camera.width, back.camera.height) == (40, 30)
    assert back.frame_stamps == record.frame_stamps and back.latency_s == 0.4321
    assert back.notes == record.notes and back.timings == record.timings
    # written again, the same bytes: nothing is lost or rounded on the way
    write_asset_record(tmp_path / "again.json", back)
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_keys_users_read(tmp_path):
    path = tmp_path / "obj_7.json"
    write_asset_record(path, small_record())
    data = json.loads(path.read_text())
    assert set(data) == set(RECORD_KEYS) | {"initial_motion"}
    assert data["initial_motion"] is None  # not measured: null, and a record without the key reads back the same
    del data["initial_motion"]
    assert AssetRecord.from_dict(data).initial_motion is None
    physics = data["physics"]
    # SI first: total mass in kg, k/m, d/m, the size and the size-independent values, each with a std
    assert physics["total_mass"] == pytest.approx(0.3) and physics["mass_given"] is True
    assert physics["stiffness_per_mass"] == pytest.approx(200.0) and physics["damping_per_mass"] == pytest.approx(0.5)
    assert physics["size"] == pytest.approx(object_size(small_asset().anchors))
    assert physics["stiffness_per_mass_at_1m"] == pytest.approx(200.0 * physics["size"])
    assert physics["stiffness_per_mass_std"] == pytest.approx(20.0) and physics["total_mass_std"] == pytest.approx(0.06)
    # the paper's per-anchor / per-spring convention only as a labelled derived section
    assert physics["paper"]["mass"] == pytest.approx(0.3 / 2048) and physics["paper"]["convention"] == PHYSICS_CONVENTION
    assert data["binding"] == {"neighbors": 4, "power": 2.0}
    assert set(data["camera"]) == {"K", "world_to_cam", "width", "height"}
    assert len(data["frame_stamps"]) == 20 and data["latency_s"] == 0.4321


def test_truncated_or_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "obj_7.json"
    write_asset_record(path, small_record())
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])  # a copy that stopped half way
    with pytest.raises(ValueError, match=f"{path}.*truncated or corrupt"):
        read_asset_record(path)
    path.write_bytes(b"\xff\xfe not text")
    with pytest.raises(ValueError, match=str(path)):
        read_asset_record(path)
    data = json.loads(text)
    del data["camera"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{path}.*missing key.*camera"):
        read_asset_record(path)
    data = json.loads(text)
    data["physics"]["total_mass"] = "heavy"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=str(path)):
        read_asset_record(path)
    data = json.loads(text)
    data["camera"]["K"] = [[1.0, 0.0], [0.0, 1.0]]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"{path}.*shape"):
        read_asset_record(path)


def test_initial_motion_round_trip_and_validation(tmp_path):
    motion = InitialMotion((0.5, 0.0, 2.7), (3.0, 8.0, 0.0), (0.05, 0.04, 0.1), (0.3, 0.5, 0.2), 1.8, 0.02, True,
                           float("nan"))
    asset = dataclasses.replace(small_asset(), initial_motion=motion).validate()
    record = AssetRecord.of_asset(asset, small_record().camera, [0.0, 0.1, 0.2], 0.3)
    path = tmp_path / "tossed.json"
    write_asset_record(path, record)
    data = json.loads(path.read_text())
    assert data["initial_motion"]["velocity"] == [0.5, 0.0, 2.7] and data["initial_motion"]["impact_time"] is None
    back = read_asset_record(path).initial_motion
    assert back.velocity == motion.velocity and back.angular_velocity == motion.angular_velocity
    assert back.depth_trusted and math.isnan(back.impact_time)
    # anchors spin about their centroid: v + w x r
    anchors = asset.anchors.astype(np.float64)
    v = motion.velocities_at(anchors)
    np.testing.assert_allclose(v.mean(0), motion.velocity, atol=1e-5)
    np.testing.assert_allclose(v[0], np.add(motion.velocity, np.cross(motion.angular_velocity,
                                                                      anchors[0] - anchors.mean(0))), rtol=1e-5)
    for bad in (dict(velocity=(float("nan"), 0.0, 0.0)), dict(velocity=(1e300, 0.0, 0.0)),
                dict(angular_velocity=(0.0, 0.0, 1e4)), dict(velocity_std=(-1.0, 0.0, 0.0)), dict(depth=-1.0)):
        with pytest.raises(ValueError, match="InitialMotion"):
            dataclasses.replace(motion, **bad).validate()
    data["initial_motion"]["velocity"] = "fast"
    with pytest.raises(ValueError):
        AssetRecord.from_dict(data)
