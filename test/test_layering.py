"""DESIGN.md layering: core/ imports no ROS at all; training/ uses core/, never rclpy or anything in ros/."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "std_srvs", "reconphys_ros.msg",
               "reconphys_ros.ros", "launch", "launch_ros")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _offending(folder: str, forbidden, allowed=()) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden) and name not in allowed:
                bad.append(f"{path.relative_to(ROOT)}: {name}")
    return bad


def test_core_imports_no_ros():
    assert _offending("reconphys_ros/core", ROS_MODULES) == []


def test_training_never_imports_ros():
    assert _offending("training", ["rclpy", "reconphys_ros.ros", "reconphys_ros.msg"]) == []
