"""rclpy fixtures: an isolated context per test so tests never share ROS state."""
import os
import sys

import pytest

rclpy = pytest.importorskip("rclpy")


@pytest.fixture
def ros_context():
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def sim_node(ros_context):
    """A SimulationNode stepped by the test (tick()), publishers recorded, a 0.3 kg 20 cm test asset loaded."""
    from test.ros.helpers import ticking_simulation_node
    node = ticking_simulation_node(ros_context)
    yield node
    node.close()
    node.destroy_node()


def spin_until(executor, predicate, timeout_s: float) -> bool:
    """Spin `executor` until predicate() is true or timeout_s passes; returns predicate()."""
    import time
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return predicate()


@pytest.fixture
def python_env():
    """Environment for child Python processes: the repository importable as in the test process."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env, sys.executable
