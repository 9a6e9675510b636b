"""Fixtures of the reliability suite: reuse the ROS ones (isolated rclpy context, child-process environment)."""
from test.ros.conftest import python_env, ros_context, sim_node  # noqa: F401
