"""The demo's live part: the pipeline's real nodes in one process (ros/runner.py's machinery) plus an observer node.

video_source -> segmentation -> reconstruction -> simulation (+ bag_recorder, + gripper_controller) are created
from the shared node list (ros/graph.py) with run.create_nodes; the observer only listens (camera images, masks,
physics, sim/image, sim/status, sim/anchors, gripper/command) and keeps what the report needs. DemoGraph.wait()
spins the executor until a stage's condition holds, and raises StageFailed with a clear message on a timeout or
when a node reports the stage failed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["StageFailed", "GraphSettings", "Observations", "DemoGraph"]


class StageFailed(RuntimeError):
    """A demo stage failed or timed out; `stage` names it."""

    def __init__(self, stage: str, message: str):
        super().__init__(f"stage '{stage}' failed: {message}")
        self.stage = stage


@dataclass
class GraphSettings:
    source: str  # video_source.source (the example clip folder)
    view: int  # camera view of the clip
    playback_fps: float  # publish rate of video_source (the stamps keep this rate)
    clip_fps: float  # the clip's real frame rate (handed to the reconstruction)
    asset_dir: str
    bag_dir: str | None  # None = no bag_recorder
    render_camera: dict  # simulation render_camera_position / _look_at / render_fov_deg / render_width / _height
    render_rate: float = 5.0  # sim/image per second
    gripper: dict = field(default_factory=dict)  # gripper_controller parameter overrides
    closed_width: float = 0.01  # simulation.closed_width (commands at or below it close the gripper)
    max_effort: float = 0.0  # N: the gripper's grip force cap (gripper_controller.max_effort); 0 = the params file's
    # default (40 N, a real gripper's; objects heavier than max_effort / g slip out)
    known_mass: float = 0.0  # reconstruction.known_mass (0 = estimate)
    domain_id: int | None = None  # DDS domain of the demo's nodes (None = ROS_DOMAIN_ID or 0)


@dataclass
class Observations:
    """What the observer node saw; times are time.monotonic() seconds at arrival."""

    images: dict = field(default_factory=dict)  # stamp_ns -> (arrival, (H, W, 3) uint8)
    masks: dict = field(default_factory=dict)  # stamp_ns -> (arrival, (H, W) uint8)
    physics: object | None = None  # the last PhysicsParams message
    sim_images: list = field(default_factory=list)  # (arrival, (H, W, 3) uint8)
    statuses: list = field(default_factory=list)  # (arrival, SimStatus)
    heights: list = field(default_factory=list)  # (arrival, centroid z, max anchor speed estimate) of sim/anchors
    commands: list = field(default_factory=list)  # (arrival, (3,) target position, closed)
    max_efforts: list = field(default_factory=list)  # GripperCommand.max_effort of each command, N (same order)

    def segmentation_latencies(self) -> np.ndarray:
        """Seconds from an image's arrival to its mask's arrival, for every stamp seen on both."""
        both = sorted(set(self.images) & set(self.masks))
        return np.array([self.masks[s][0] - self.images[s][0] for s in both])


def _make_observer(context, obs: Observations, closed_width: float):
    from rclpy.node import Node
    from sensor_msgs.msg import Image, PointCloud2

    from reconphys_ros.msg import GripperCommand, PhysicsParams, SimStatus
    from reconphys_ros.ros.conversions import image_to_numpy, points_from_pointcloud2
    from reconphys_ros.ros.qos import latched_qos, recording_qos

    deep = recording_qos()
    node = Node("demo_observer", context=context)

    def stamp_ns(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def on_image(msg):
        obs.images[stamp_ns(msg)] = (time.monotonic(), image_to_numpy(msg, encoding="rgb8").copy())

    def on_mask(msg):
        obs.masks[stamp_ns(msg)] = (time.monotonic(), image_to_numpy(msg).copy())

    def on_physics(msg):
        obs.physics = msg

    def on_sim_image(msg):
        obs.sim_images.append((time.monotonic(), image_to_numpy(msg, encoding="rgb8").copy()))

    def on_status(msg):
        obs.statuses.append((time.monotonic(), msg))

    last = {}

    def on_anchors(msg):
        points, _ = points_from_pointcloud2(msg)
        now = time.monotonic()
        speed = float("nan")
        if "points" in last and last["points"].shape == points.shape and len(points):
            speed = float(np.abs(points - last["points"]).max()) / max(now - last["time"], 1e-3)
        last.update(points=points, time=now)
        if len(points):
            obs.heights.append((now, float(points[:, 2].mean()), speed))

    def on_command(msg):
        p = msg.pose.position
        obs.commands.append((time.monotonic(), np.array([p.x, p.y, p.z]), msg.position <= closed_width))
        obs.max_efforts.append(float(msg.max_effort))

    node.create_subscription(Image, "camera/image_raw", on_image, deep)
    node.create_subscription(Image, "mask", on_mask, deep)
    node.create_subscription(PhysicsParams, "physics", on_physics, latched_qos())
    node.create_subscription(Image, "sim/image", on_sim_image, deep)
    node.create_subscription(SimStatus, "sim/status", on_status, deep)
    node.create_subscription(PointCloud2, "sim/anchors", on_anchors, deep)
    node.create_subscription(GripperCommand, "gripper/command", on_command, deep)
    return node


class DemoGraph:
    """Start with `start()`, advance with `wait(stage, condition, timeout_s)`, always `close()`."""

    def __init__(self, settings: GraphSettings):
        self.settings = settings
        self.obs = Observations()
        self.nodes: dict = {}
        self._context = self._executor = self._observer = None

    def overrides(self) -> dict[str, dict]:
        s = self.settings
        # Subscribers of camera/image_raw that must match before playback: segmentation, reconstruction,
        # observer (+ bag recorder), so no frame of the single pass is lost to discovery.
        overrides = {
            "video_source": {"source": s.source, "view": s.view, "fps": float(s.playback_fps), "loop": False,
                             "hold_last_frames": 0, "wait_for_subscribers": 3 + (s.bag_dir is not None)},
            "reconstruction": {"output_dir": s.asset_dir, "fps": float(s.clip_fps),
                               "known_mass": float(s.known_mass)},
            "simulation": {"render_rate": float(s.render_rate), "closed_width": float(s.closed_width),
                           **s.render_camera},
            "gripper_controller": {"repeat": False, **({"max_effort": float(s.max_effort)} if s.max_effort > 0 else {}),
                                   **s.gripper},
        }
        if s.bag_dir is not None:
            overrides["bag_recorder"] = {"output_dir": s.bag_dir, "prefix": "demo"}
        return overrides

    def start(self) -> None:
        import rclpy
        from rclpy.signals import SignalHandlerOptions

        from reconphys_ros.ros.graph import selected_nodes
        from reconphys_ros.ros.spin import IsolatedExecutor
        from reconphys_ros.ros.runner import create_nodes

        entries = selected_nodes(use_video=True, record=self.settings.bag_dir is not None, controller=True)
        self._context = rclpy.context.Context()
        rclpy.init(args=[], context=self._context, domain_id=self.settings.domain_id,
                   signal_handler_options=SignalHandlerOptions.NO)
        try:
            nodes = create_nodes(entries, self.overrides(), self._context)
        except Exception as exc:
            rclpy.try_shutdown(context=self._context)
            raise StageFailed("start nodes", f"{type(exc).__name__}: {exc}") from exc
        self.nodes = {entry.name: node for entry, node in zip(entries, nodes)}
        self._observer = _make_observer(self._context, self.obs, self.settings.closed_width)
        self._executor = IsolatedExecutor(self._context)
        for node in [*nodes, self._observer]:
            self._executor.add_node(node)

    def wait(self, stage: str, done: Callable[[], bool], timeout_s: float,
             failed: Callable[[], str | None] = lambda: None) -> float:
        """Spin until done() (returns the seconds waited); StageFailed when failed() returns a reason or on a
        timeout."""
        start = time.monotonic()
        while not done():
            reason = failed()
            if reason:
                raise StageFailed(stage, reason)
            if time.monotonic() - start > timeout_s:
                raise StageFailed(stage, f"timed out after {timeout_s:.0f} s")
            self._executor.spin_once(timeout_sec=0.05)
        return time.monotonic() - start

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Stop the nodes (the bag recorder closes its bag) and shut the context down; safe to call twice."""
        if self._context is None:
            return
        import rclpy

        from reconphys_ros.ros.spin import shutdown_nodes
        nodes = list(self.nodes.values()) + ([self._observer] if self._observer is not None else [])
        if self._executor is not None:
            shutdown_nodes(nodes, self._executor)  # spin threads stop first, then close(), then destroy
        else:  # start() failed before the executor existed
            for node in nodes:
                node.destroy_node()
        rclpy.try_shutdown(context=self._context)
        self._context = None
