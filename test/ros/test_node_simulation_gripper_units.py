"""simulation node, gripper in SI units: the default grip is 40 N and lifts a 0.3 kg asset; a GripperCommand with
max_effort NaN or inf is dropped naming N, a negative one takes the node's default with a warning in N."""
import math

import numpy as np
import pytest

from reconphys_ros.core.physics.control import DEFAULT_GRASP_STIFFNESS, DEFAULT_MAX_EFFORT
from reconphys_ros.msg import GripperCommand
from reconphys_ros.ros.parameters import node_defaults


def command(position, closed: bool, max_effort: float, radius: float = 0.2) -> GripperCommand:
    msg = GripperCommand(position=0.0 if closed else 0.08, max_effort=float(max_effort), grasp_radius=radius)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
    msg.pose.orientation.w = 1.0
    return msg


def test_defaults_are_gripper_sized():
    sim, controller = node_defaults("simulation"), node_defaults("gripper_controller")
    assert sim["max_effort"] == controller["max_effort"] == DEFAULT_MAX_EFFORT == 40.0
    assert (2 * math.pi * sim["grasp_frequency"]) ** 2 == pytest.approx(DEFAULT_GRASP_STIFFNESS)


def test_default_grip_lifts_a_light_object(sim_node):
    node = sim_node
    for _ in range(40):  # land
        node.tick()
    centre = node.sim.anchors.numpy().mean(0)
    node.on_command(command(centre, closed=False, max_effort=0.0))  # 0: the node's default
    for _ in range(90):  # 0.5 m/s from home (0, 0, 1)
        node.tick()
    assert np.linalg.norm(node.sim.gripper.position - centre) < 1e-3
    node.on_command(command(centre, closed=True, max_effort=0.0))
    assert node.sim.gripper.max_effort == 40.0
    assert node.sim.gripper.stiffness == pytest.approx(DEFAULT_GRASP_STIFFNESS)
    node.on_command(command(centre + [0.0, 0.0, 0.3], closed=True, max_effort=0.0))
    for _ in range(40):
        node.tick()
    anchors = node.sim.anchors.numpy()
    assert node.sim.anchors_grasped > 0 and anchors[:, 2].min() > 0.15, anchors[:, 2].min()


def test_nan_inf_and_negative_max_effort(sim_node):
    node = sim_node
    warnings = []
    node.get_logger().warning = lambda text, **_: warnings.append(text)  # rclpy loggers are per node
    for bad in (math.nan, math.inf, -math.inf):
        node.on_command(command((0.0, 0.0, 0.3), closed=True, max_effort=bad))
    assert node.dropped.counts["gripper command"] == 3
    assert not node.sim.gripper.closed
    reasons = list(node.dropped.reason_counts["gripper command"])
    assert reasons and all("max_effort" in r and " N" in r for r in reasons), reasons
    node.on_command(command((0.0, 0.0, 0.3), closed=False, max_effort=25.0))
    assert node.sim.gripper.max_effort == 25.0
    node.on_command(command((0.0, 0.0, 0.3), closed=False, max_effort=-5.0))  # <= 0: the node's default
    assert node.sim.gripper.max_effort == node.params["max_effort"] == 40.0
    assert any("max_effort -5 N is negative" in w and "40 N" in w for w in warnings), warnings
    assert node.dropped.counts["gripper command"] == 3
    np.testing.assert_allclose(node.sim.gripper.target_position, [0.0, 0.0, 0.3])
