"""The one list of pipeline nodes, read by launch/pipeline.launch.py and reconphys_ros/ros/runner.py alike."""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeEntry:
    name: str            # node name = section of config/pipeline.yaml = executable in lib/reconphys_ros
    module: str          # python module holding the Node subclass and main()
    class_name: str
    option: str | None   # None = always started; else the launch argument / runner flag that enables it

    @property
    def executable(self) -> str:
        return self.name

    def node_class(self):
        return getattr(importlib.import_module(self.module), self.class_name)


# Options: use_video (default on), record (off), controller (off).
PIPELINE_NODES: tuple[NodeEntry, ...] = (
    NodeEntry("video_source", "reconphys_ros.ros.video_source", "VideoSourceNode", "use_video"),
    NodeEntry("segmentation", "reconphys_ros.ros.segmentation", "SegmentationNode", None),
    NodeEntry("reconstruction", "reconphys_ros.ros.reconstruction", "ReconstructionNode", None),
    NodeEntry("simulation", "reconphys_ros.ros.simulation", "SimulationNode", None),
    NodeEntry("bag_recorder", "reconphys_ros.ros.bag_recorder", "BagRecorderNode", "record"),
    NodeEntry("gripper_controller", "reconphys_ros.ros.gripper_controller", "GripperControllerNode", "controller"),
)
OPTION_DEFAULTS = {"use_video": True, "record": False, "controller": False}


def selected_nodes(**options: bool) -> list[NodeEntry]:
    """Entries enabled by `options` (names from OPTION_DEFAULTS; missing ones take their default)."""
    unknown = set(options) - set(OPTION_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown node options {sorted(unknown)}; known: {sorted(OPTION_DEFAULTS)}")
    enabled = {**OPTION_DEFAULTS, **options}
    return [e for e in PIPELINE_NODES if e.option is None or enabled[e.option]]
