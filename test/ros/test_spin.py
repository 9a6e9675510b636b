"""IsolatedExecutor: an executor per node in its own thread; callback errors reach the caller of spin_once."""
import threading
import time

import pytest
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from std_msgs.msg import String

from reconphys_ros.ros.spin import IsolatedExecutor, spin_nodes


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


class _Closable:
    """A node with a close() that may fail, recording what happened to it."""

    def __init__(self, context, name, close_error=None):
        self.node = rclpy.create_node(name, context=context)
        self.close_error = close_error
        self.closed = False

    def __getattr__(self, item):
        return getattr(self.node, item)

    def close(self):
        self.closed = True
        if self.close_error is not None:
            raise self.close_error


def test_an_error_in_one_node_stops_neither_the_others_nor_their_shutdown(ros_context):
    """Issue 18.1 / 18.2: a callback that raises (every tick) and a close() that raises (a full disk) must not
    end spin_nodes nor keep the other nodes from closing."""
    failing = _Closable(ros_context, "failing", close_error=OSError(28, "No space left on device"))
    healthy = _Closable(ros_context, "healthy")
    failures, ticks = [], []

    def fail():
        failures.append(1)
        raise RuntimeError("tick failed")

    failing.node.create_timer(0.02, fail)
    healthy.node.create_timer(0.02, lambda: ticks.append(1))
    stop, errors = threading.Event(), []

    def run():
        try:
            spin_nodes([failing, healthy], IsolatedExecutor(ros_context), stop)
        except BaseException as exc:  # noqa: BLE001 (the test reports it)
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 20.0
        while (len(failures) < 10 or len(ticks) < 20) and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert thread.is_alive(), f"spin_nodes ended after a callback error: {errors}"
        assert len(failures) >= 10 and len(ticks) >= 20
    finally:
        stop.set()
        thread.join(timeout=20.0)
    assert not thread.is_alive() and errors == []
    assert failing.closed and healthy.closed, "a close() that raised kept the other node from closing"
