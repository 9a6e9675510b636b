"""IsolatedExecutor: an executor per node in its own thread; callback errors reach the caller of spin_once."""
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from std_msgs.msg import String

from reconphys_ros.ros.spin import IsolatedExecutor


def test_nodes_spin_concurrently_and_callback_errors_surface(ros_context):
    talker = rclpy.create_node("talker", context=ros_context)
    listener = rclpy.create_node("listener", context=ros_context)
    listener.executor_threads = 2
    got, ticks = [], []
    pub = talker.create_publisher(String, "chatter", 10)
    talker.create_timer(0.02, lambda: pub.publish(String(data="hi")))
    listener.create_subscription(String, "chatter", got.append, 10)

    def failing_tick():
        ticks.append(time.monotonic())
        if len(ticks) == 3:
            raise RuntimeError("tick 3 failed")

    listener.create_timer(0.02, failing_tick)
    executor = IsolatedExecutor(ros_context)
    executor.add_node(talker)
    executor.add_node(listener)
    try:
        kinds = sorted(type(e).__name__ for e in executor._executors)
        assert kinds == sorted([SingleThreadedExecutor.__name__, MultiThreadedExecutor.__name__])
        with pytest.raises(RuntimeError, match="tick 3 failed"):
            deadline = time.monotonic() + 20.0
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
        count = len(ticks)
        deadline = time.monotonic() + 20.0
        while (len(ticks) < count + 5 or len(got) < 5) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(ticks) >= count + 5 and len(got) >= 5  # both nodes go on after the error
    finally:
        executor.shutdown()
        talker.destroy_node()
        listener.destroy_node()
    stopped = len(ticks)
    time.sleep(0.2)
    assert len(ticks) == stopped  # nothing runs after shutdown
