"""QoS profiles chosen once for the whole graph: every publisher and subscription takes one of these.

Images: RELIABLE (BEST_EFFORT loses large frames over loopback) with a bounded queue, so a slow subscriber drops
old frames instead of growing memory. Assets, physics and the camera pose: TRANSIENT_LOCAL, so late joiners get
the latest one. Commands and status: RELIABLE, a short queue. Point clouds of the simulation: RELIABLE, only the
newest two (a late cloud is worthless). Recording and observing: a deep queue that matches what the publishers
offer.
"""
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

IMAGE_QUEUE_DEPTH = 5
RECORDING_QUEUE_DEPTH = 100


def _keep_last(depth: int, reliable: bool = True, latched: bool = False) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def image_qos(depth: int = IMAGE_QUEUE_DEPTH) -> QoSProfile:
    return _keep_last(depth)


def latched_qos(depth: int = 1) -> QoSProfile:
    return _keep_last(depth, latched=True)


def command_qos(depth: int = 10) -> QoSProfile:
    return _keep_last(depth)


def status_qos(depth: int = 10) -> QoSProfile:
    return _keep_last(depth)


def cloud_qos(depth: int = 2) -> QoSProfile:
    return _keep_last(depth)


def recording_qos(reliable: bool = True, latched: bool = False, depth: int = RECORDING_QUEUE_DEPTH) -> QoSProfile:
    """A recorder's or observer's subscription: a deep queue; reliable / latched where every publisher offers it
    (a RELIABLE or TRANSIENT_LOCAL request would not match a publisher that offers less)."""
    return _keep_last(depth, reliable, latched)
