"""Child process for the DDS tests: publishes one message TRANSIENT_LOCAL, then stays alive (a latched message lives
as long as its publisher) until killed.

    python -m test.ros.publish_latched_process asset NUM_GAUSSIANS SEED TOPIC   # a deterministic GaussianAsset
    python -m test.ros.publish_latched_process string TOPIC TEXT                # a std_msgs/String (as camera/pose)
"""
import sys
import time

import rclpy
from std_msgs.msg import String

from reconphys_ros.msg import GaussianAsset
from reconphys_ros.ros.conversions import asset_to_msg
from reconphys_ros.ros.qos import latched_qos
from test.ros.helpers import random_asset


def message_from_args(args: list) -> tuple[type, str, object]:
    """-> (message type, topic, message)."""
    if args[0] == "asset":
        num_gaussians, seed, topic = int(args[1]), int(args[2]), args[3]
        return GaussianAsset, topic, asset_to_msg(random_asset(num_gaussians, seed=seed))
    if args[0] == "string":
        return String, args[1], String(data=args[2])
    raise SystemExit(f"unknown message kind {args[0]!r}: asset | string")


def main() -> None:
    msg_type, topic, msg = message_from_args(sys.argv[1:])
    rclpy.init()
    node = rclpy.create_node("latched_publisher_fixture")
    pub = node.create_publisher(msg_type, topic, latched_qos())
    pub.publish(msg)
    print("published", flush=True)
    deadline = time.monotonic() + 60.0  # the test kills us long before; never outlive a broken test
    while rclpy.ok() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)


if __name__ == "__main__":
    main()
