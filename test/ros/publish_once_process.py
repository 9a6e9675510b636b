"""Child process for test_bag_recorder: publishes one String on a topic, TRANSIENT_LOCAL (as camera/pose is), then
stays alive (a latched message lives as long as its publisher) until killed."""
import sys
import time

import rclpy
from std_msgs.msg import String

from reconphys_ros.ros.qos import latched_qos


def main() -> None:
    topic, text = sys.argv[1], sys.argv[2]
    rclpy.init()
    node = rclpy.create_node("publish_once_fixture")
    pub = node.create_publisher(String, topic, latched_qos())
    pub.publish(String(data=text))
    print("published", flush=True)
    deadline = time.monotonic() + 60.0  # the test kills us long before; never outlive a broken test
    while rclpy.ok() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)


if __name__ == "__main__":
    main()
