"""Every custom message survives rclpy CDR serialisation with all values intact."""
import array

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from reconphys_ros.msg import GaussianAsset, GripperCommand, PhysicsParams, SimStatus


def _roundtrip(msg):
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 0
    return deserialize_message(data, type(msg))


def _physics():
    m = PhysicsParams()
    m.header.frame_id = "world"
    m.header.stamp.sec, m.header.stamp.nanosec = 12, 345
    m.object_id = "duck_01"
    m.mass, m.stiffness, m.damping, m.friction = 1.25, 432.5, 0.75, 0.33
    m.mass_std, m.stiffness_std, m.damping_std, m.friction_std = 0.5, 40.0, 0.2, 0.05
    m.stiffness_per_mass, m.damping_per_mass = 346.0, 0.6
    m.stiffness_per_mass_std, m.damping_per_mass_std = 12.0, 0.1
    m.mass_source = PhysicsParams.MASS_GIVEN
    return m


def test_physics_params_roundtrip():
    m = _physics()
    assert _roundtrip(m) == m
    assert PhysicsParams.MASS_ESTIMATED == 0 and PhysicsParams.MASS_GIVEN == 1


def test_gaussian_asset_roundtrip():
    rng = np.random.default_rng(1)
    m = GaussianAsset()
    m.object_id = "obj"
    m.num_gaussians, m.num_anchors = 5, 4
    for name, count in (("positions", 15), ("scales", 15), ("rotations", 20), ("colors", 15), ("opacities", 5),
                        ("anchor_positions", 12), ("spring_rest_lengths", 3)):
        setattr(m, name, array.array("f", rng.normal(size=count).astype(np.float32).tobytes()))
    m.spring_indices = array.array("I", [0, 1, 1, 2, 2, 3])
    m.lattice_neighbors, m.binding_neighbors, m.binding_power = 3, 4, 2.5
    m.physics = _physics()
    back = _roundtrip(m)
    assert back == m
    np.testing.assert_array_equal(np.frombuffer(back.positions, np.float32), np.frombuffer(m.positions, np.float32))


def test_gripper_command_roundtrip():
    m = GripperCommand()
    m.object_id = "obj"
    m.pose.position.x, m.pose.position.y, m.pose.position.z = 0.1, -0.2, 0.5
    m.pose.orientation.w = 1.0
    m.position, m.max_effort, m.grasp_radius = 0.0, 25.0, 0.04
    assert _roundtrip(m) == m


def test_sim_status_roundtrip():
    m = SimStatus()
    m.object_id = "obj"
    m.sim_time, m.real_time_factor, m.step_time_ms, m.render_time_ms = 3.5, 1.7, 12.0, 40.0
    m.substeps, m.num_anchors, m.num_springs = 100, 512, 9000
    m.frames_stepped, m.renders_skipped, m.anchors_grasped, m.divergences = 105, 3, 17, 0
    m.keeping_up, m.message = True, "ok"
    assert _roundtrip(m) == m


def test_float_fields_reject_wrong_types():
    m = GaussianAsset()
    with pytest.raises((TypeError, AssertionError, ValueError)):
        m.positions = "not numbers"
