"""QoS profiles chosen once for the whole graph.

Images: RELIABLE (BEST_EFFORT loses large frames over loopback) with a bounded queue, so a slow subscriber drops
old frames instead of growing memory. Assets, physics and the camera pose: TRANSIENT_LOCAL, so late joiners get
the latest one. Commands: RELIABLE, a short queue.
"""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

IMAGE_QUEUE_DEPTH = 5


def image_qos(depth: int = IMAGE_QUEUE_DEPTH) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos(depth: int = 1) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def command_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)
