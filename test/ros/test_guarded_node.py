"""GuardedNode: an exception in any subscription or service callback becomes a dropped input with a warning, never
an error that reaches the executor and stops every node of the process (issue 18.1)."""
import pytest
from rclpy.subscription import Subscription
from std_msgs.msg import String
from std_srvs.srv import Trigger

from reconphys_ros.ros.graph import PIPELINE_NODES
from reconphys_ros.ros.guarded_node import GuardedNode, format_traceback


class Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, text, **_):
        self.warnings.append(str(text))


@pytest.mark.parametrize("entry", PIPELINE_NODES, ids=lambda e: e.name)
def test_every_pipeline_node_is_guarded(entry):
    assert issubclass(entry.node_class(), GuardedNode)


def test_callback_exceptions_become_dropped_inputs(ros_context):
    node = GuardedNode("guarded", context=ros_context)
    try:
        logger = Logger()
        node.dropped._logger = logger
        seen = []

        def explode(msg):
            seen.append(msg.data)
            raise ValueError(f"cannot use message {len(seen)}")

        def with_info(msg, info):
            seen.append(info)

        def broken_service(request, response):
            raise RuntimeError("service broke")

        sub = node.create_subscription(String, "chatter", explode, 10)
        info_sub = node.create_subscription(String, "chatter", with_info, 10)
        service = node.create_service(Trigger, "~/poke", broken_service)

        sub.callback(String(data="bad"))  # what the executor calls
        sub.callback(String(data="worse"))
        assert seen == ["bad", "worse"]
        assert node.dropped.counts == {"chatter message": 2}
        assert len(logger.warnings) == 1  # one reason (they differ in a number only), logged once
        assert logger.warnings[0].startswith("dropped chatter message: callback failed: ValueError at "
                                             "test_guarded_node.py:")
        assert "in explode: cannot use message 1" in logger.warnings[0]

        # a callback that takes the MessageInfo still gets it through the wrapper
        assert info_sub._callback_type == Subscription.CallbackType.WithMessageInfo

        response = service.callback(Trigger.Request(), Trigger.Response())
        assert response.success is False and "RuntimeError" in response.message and "service broke" in response.message
        assert node.dropped.counts["~/poke request"] == 1
    finally:
        node.destroy_node()


def test_format_traceback_keeps_every_frame():
    """Worker threads have no caller to raise to: their errors are logged with the whole traceback."""
    def inner():
        raise ValueError("deep down")

    try:
        inner()
    except ValueError as exc:
        text = format_traceback(exc)
    assert text.startswith("Traceback (most recent call last):") and text.endswith("ValueError: deep down")
    assert "in inner" in text and "in test_format_traceback_keeps_every_frame" in text
