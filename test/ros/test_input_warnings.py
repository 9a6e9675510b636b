"""DroppedInputLog: every distinct reason of a dropped input reaches the log once, repeats are counted per reason
and summarised, and a flood of ever-new reasons stays bounded (issue 18.8)."""
import numpy as np
import pytest
from sensor_msgs.msg import Image

from reconphys_ros.ros import input_warnings
from reconphys_ros.ros.conversions import image_to_numpy, numpy_to_image
from reconphys_ros.ros.input_warnings import MAX_REASONS_PER_KIND, OTHER_REASONS, DroppedInputLog, reason_key


class Logger:
    def __init__(self):
        self.warnings = []

    def warning(self, text, **_):
        self.warnings.append(str(text))


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(input_warnings.time, "monotonic", lambda: now[0])
    return now


def test_each_new_reason_is_logged_and_repeats_are_counted_per_reason(clock):
    logger = Logger()
    log = DroppedInputLog(logger, period_s=5.0)
    for _ in range(3):
        log.drop("image", "unsupported image encoding 'rgba8'")
        log.drop("image", "image data has 10 bytes, expected step x height = 12 x 1")
        log.drop("image", "image data has 20 bytes, expected step x height = 12 x 1")  # same reason, other sizes
        log.drop("image", "image step 3 is smaller than one row")
    assert logger.warnings == ["dropped image: unsupported image encoding 'rgba8'",
                               "dropped image: image data has 10 bytes, expected step x height = 12 x 1",
                               "dropped image: image step 3 is smaller than one row"]
    assert log.counts == {"image": 12}
    assert log.reason_counts["image"] == {reason_key("unsupported image encoding 'rgba8'"): 3,
                                          reason_key("image data has 1 bytes, expected step x height = 1 x 1"): 6,
                                          reason_key("image step 3 is smaller than one row"): 3}
    clock[0] += 6.0  # the next repeat summarises what was dropped since the last warning, per reason
    log.drop("image", "image step 4 is smaller than one row")
    assert len(logger.warnings) == 4
    summary = logger.warnings[-1]
    assert summary.startswith("dropped image: image step 4 is smaller than one row (10 more since the last warning")
    assert "5 x image data has # bytes" in summary and "2 x unsupported image encoding" in summary, summary
    log.drop("image", "image step 5 is smaller than one row")
    assert len(logger.warnings) == 4  # repeats within the period stay quiet
    log.drop("mask", "image step 5 is smaller than one row")  # kinds are separate
    assert len(logger.warnings) == 5


def test_a_flood_of_new_reasons_stays_bounded(clock):
    logger = Logger()
    log = DroppedInputLog(logger, period_s=5.0)
    for i in range(1000):
        log.drop("gripper command", f"unknown object id 'peer_{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}'")
    assert len(logger.warnings) == MAX_REASONS_PER_KIND
    assert len(log.reason_counts["gripper command"]) == MAX_REASONS_PER_KIND + 1
    assert log.reason_counts["gripper command"][OTHER_REASONS] > 0
    assert log.counts["gripper command"] == 1000


def _bad_images() -> list[Image]:
    good = numpy_to_image(np.zeros((4, 6, 3), np.uint8), "rgb8")
    variants = []
    for change in ({"encoding": "rgba8"}, {"encoding": ""}, {"encoding": "bayer_rggb8"}, {"width": 0},
                   {"step": 3}, {"data": bytes(good.data)[:-1]}, {"data": bytes(good.data) + b"\0"}):
        msg = numpy_to_image(np.zeros((4, 6, 3), np.uint8), "rgb8")
        for name, value in change.items():
            setattr(msg, name, value)
        variants.append(msg)
    variants.append(numpy_to_image(np.zeros((4, 6), np.uint8), "mono8"))  # not a colour image
    variants.append(numpy_to_image(np.zeros((4, 6), np.float32), "32FC1"))
    return variants


def test_segmentation_logs_the_reason_of_every_kind_of_bad_image(ros_context):
    """The probe's case: of 9 kinds of bad image only 3 reasons ever reached the log."""
    from reconphys_ros.ros.segmentation import SegmentationNode
    node = SegmentationNode(context=ros_context)
    try:
        logger = Logger()
        node.dropped._logger = logger
        bad = _bad_images()
        for _ in range(3):
            for msg in bad:
                node.on_image(msg)
        expected = set()
        for msg in bad:
            try:
                array = image_to_numpy(msg, encoding="rgb8")
                expected.add(reason_key(f"encoding {msg.encoding!r} is not a colour image (rgb8 / bgr8)")
                             if array.ndim != 3 else "accepted")
            except ValueError as exc:
                expected.add(reason_key(str(exc)))
        assert "accepted" not in expected and len(expected) >= 7
        logged = {reason_key(w.removeprefix("dropped image: ")) for w in logger.warnings}
        assert expected <= logged, expected - logged
        assert node.dropped.counts["image"] == 3 * len(bad)
        assert sum(node.dropped.reason_counts["image"].values()) == 3 * len(bad)
    finally:
        node.destroy_node()
