"""A 100k-Gaussian asset crosses a process boundary over loopback DDS with identical arrays."""
import subprocess

from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from reconphys_ros.msg import GaussianAsset
from reconphys_ros.ros.conversions import asset_from_msg
from test.ros.conftest import spin_until
from test.ros.helpers import assert_assets_equal, random_asset

NUM_GAUSSIANS = 100_000


def test_large_asset_between_processes(ros_context, python_env):
    env, python = python_env
    topic = "test_transport/asset"
    child = subprocess.Popen([python, "-m", "test.ros.publish_latched_process", "asset", str(NUM_GAUSSIANS), "7", topic],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        node = __import__("rclpy").create_node("asset_subscriber_fixture", context=ros_context)
        received = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(GaussianAsset, topic, received.append, qos)
        executor = SingleThreadedExecutor(context=ros_context)
        executor.add_node(node)
        ok = spin_until(executor, lambda: received or child.poll() is not None, timeout_s=60.0)
        assert ok and received, f"no asset received; publisher output:\n{child.stdout.read() if child.poll() is not None else ''}"
        msg = received[0]
        assert msg.num_gaussians == NUM_GAUSSIANS
        assert_assets_equal(asset_from_msg(msg), random_asset(NUM_GAUSSIANS, seed=7))
        executor.shutdown()
        node.destroy_node()
    finally:
        child.kill()
        child.wait(timeout=10)
