"""Child process for test_transport: publishes one deterministic asset (TRANSIENT_LOCAL) until killed."""
import sys
import time

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from reconphys_ros.msg import GaussianAsset
from reconphys_ros.ros.conversions import asset_to_msg
from test.ros.helpers import random_asset


def main() -> None:
    num_gaussians, seed, topic = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rclpy.init()
    node = rclpy.create_node("asset_publisher_fixture")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(GaussianAsset, topic, qos)
    pub.publish(asset_to_msg(random_asset(num_gaussians, seed=seed)))
    print("published", flush=True)
    deadline = time.monotonic() + 60.0  # the test kills us long before; never outlive a broken test
    while rclpy.ok() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)


if __name__ == "__main__":
    main()
