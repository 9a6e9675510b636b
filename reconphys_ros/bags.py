"""rosbag2 (MCAP) support through `rosbags` (pure Python; `ros2 bag` and rosbag2_py are not on PyPI).

make_typestore() knows the ROS 2 Kilted standard messages plus this package's custom messages, read from the
msg/ folder shipped with the package, so bags carry our message definitions and `ros2 bag info` / Foxglove
decode them. rosbags serialises CDR byte-identical to rclpy (checked in test/ros/test_bags.py).
"""
from __future__ import annotations

from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

PACKAGE = "reconphys_ros"


def msg_dir() -> Path:
    """The folder holding our .msg files: the repository's msg/ (source or editable install) or the installed
    share/reconphys_ros/msg."""
    candidates = [Path(__file__).resolve().parents[1] / "msg"]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE)) / "msg")
    except Exception:  # ament index absent or package not installed there
        pass
    for path in candidates:
        if path.is_dir() and any(path.glob("*.msg")):
            return path
    raise FileNotFoundError(f"cannot find the {PACKAGE} msg/ folder; looked in {[str(c) for c in candidates]}")


def custom_message_types() -> dict:
    """{'reconphys_ros/msg/Name': parsed definition} for every msg/*.msg."""
    types: dict = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    return types


def make_typestore():
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(custom_message_types())
    return store
