"""gripper_controller: after the object lands it approaches, closes at the object's centre, lifts, shakes, opens."""
import math

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import PointCloud2

from reconphys_ros.msg import GripperCommand
from reconphys_ros.ros.conversions import pointcloud2_from_points
from reconphys_ros.ros.gripper_controller import GripperControllerNode
from reconphys_ros.ros.qos import command_qos
from test.ros.conftest import spin_until


def test_scripted_grab_lift_shake_drop(ros_context):
    controller = GripperControllerNode(context=ros_context, parameter_overrides=[
        Parameter("hold_s", value=0.2), Parameter("shake_s", value=0.6), Parameter("shake_frequency", value=2.0),
        Parameter("rate", value=20.0), Parameter("repeat", value=False)])
    fake_sim = rclpy.create_node("fake_sim", context=ros_context)
    commands = []
    fake_sim.create_subscription(GripperCommand, "gripper/command", commands.append, command_qos(depth=500))
    cloud_pub = fake_sim.create_publisher(PointCloud2, "sim/anchors", QoSProfile(depth=2))
    rng = np.random.default_rng(0)
    anchors = rng.uniform([-0.05, 0.1, 0.0], [0.05, 0.2, 0.1], size=(80, 3)).astype(np.float32)
    fake_sim.create_timer(0.05, lambda: cloud_pub.publish(pointcloud2_from_points(anchors)))
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(controller)
    executor.add_node(fake_sim)
    try:
        assert spin_until(executor, lambda: controller.cycles >= 1, 60.0), f"stuck in phase {controller.phase}"
        spin_until(executor, lambda: False, 0.3)
        positions = np.array([[c.pose.position.x, c.pose.position.y, c.pose.position.z] for c in commands])
        closed = np.array([c.position <= 0.01 for c in commands])
        centre = anchors.mean(0)
        assert closed.any() and not closed[0] and not closed[-1]  # open, then closed, then released
        first_closed = int(np.argmax(closed))
        np.testing.assert_allclose(positions[first_closed], centre, atol=1e-5)  # grasps at the centre
        assert positions[:first_closed, 2].max() > anchors[:, 2].max()          # approached from above
        lifted = positions[closed][:, 2]
        assert lifted.max() >= centre[2] + 0.4 - 1e-6                           # lift_height
        assert np.ptp(positions[closed][:, 0]) > 0.05                           # shook sideways
        # a gripper's grip force in N (config/pipeline.yaml), not the 2e5 N of the old per-anchor masses
        assert all(c.max_effort == 40.0 and c.grasp_radius == 0.08 for c in commands)
        count = len(commands)
        spin_until(executor, lambda: False, 0.5)
        assert len(commands) == count  # repeat = false: done after one cycle
    finally:
        executor.shutdown()
        controller.destroy_node()
        fake_sim.destroy_node()


def test_max_effort_parameter_is_a_force_in_newtons(ros_context):
    """NaN, inf and negative grip forces are refused (at start-up and at run time); the description names N."""
    for bad in (-5.0, 0.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="max_effort"):
            GripperControllerNode(context=ros_context, parameter_overrides=[Parameter("max_effort", value=bad)])
    controller = GripperControllerNode(context=ros_context)
    try:
        assert controller.params["max_effort"] == 40.0
        described = controller.describe_parameter("max_effort")
        assert "grasp force" in described.description and ", N " in described.description
        for bad in (math.nan, -1.0):
            result = controller.set_parameters([Parameter("max_effort", value=bad)])[0]
            assert not result.successful and "max_effort" in result.reason
        assert controller.set_parameters([Parameter("max_effort", value=15.0)])[0].successful
        assert controller.params["max_effort"] == 15.0
    finally:
        controller.destroy_node()
