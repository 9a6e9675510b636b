"""gripper_controller: a scripted example that drives the simulation's gripper with GripperCommand messages.

Watches sim/anchors; once the object has landed (anchors slower than settle_speed) it moves above the object,
descends to its centre (following it while it still rolls), closes, lifts, shakes sideways, and opens (drops it); with `repeat` it starts again after
the next landing. Copy it as a starting point for your own controller or teleoperation. Units are SI: positions in
m, the grip force cap `max_effort` in N (default 40 N: enough for objects up to about 3 kg; a heavier one slips out).
"""
from __future__ import annotations

import math
import time

import numpy as np
from sensor_msgs.msg import PointCloud2

from reconphys_ros.msg import GripperCommand, SimStatus
from reconphys_ros.ros.conversions import points_from_pointcloud2
from reconphys_ros.ros.guarded_node import GuardedNode
from reconphys_ros.ros.parameters import ParamSpec, declare_parameters
from reconphys_ros.ros.qos import cloud_qos, command_qos, status_qos
from reconphys_ros.ros.spin import run_node

NAME = "gripper_controller"
PARAMS = [
    ParamSpec("rate", "float", "GripperCommand messages per second", 0.5, 1000.0, read_only=True),
    ParamSpec("grasp_radius", "float", "anchors this close to the gripper centre are grasped, m", 1e-3, 10.0),
    ParamSpec("max_effort", "float", "cap on the total grasp force sent in GripperCommand.max_effort, N (a gripper's "
              "grip force, tens of N: it must exceed the object's weight m g, or the object slips out)", 1e-3, 1e6),
    ParamSpec("open_width", "float", "opening width while open, m", 0.0, 1.0),
    ParamSpec("lift_height", "float", "height the grasped object is lifted to, m", 0.0, 10.0),
    ParamSpec("shake_amplitude", "float", "sideways shake amplitude, m", 0.0, 1.0),
    ParamSpec("shake_frequency", "float", "shake frequency, Hz", 0.0, 20.0),
    ParamSpec("shake_s", "float", "shake duration, simulated s", 0.0, 60.0),
    ParamSpec("hold_s", "float", "pause at each waypoint, simulated s", 0.0, 60.0),
    ParamSpec("settle_speed", "float", "the object has landed when its anchors move slower than this, m/s",
              1e-4, 10.0),
    ParamSpec("repeat", "bool", "start again after the next landing"),
    ParamSpec("world_frame", "str", "frame id of gripper/command", read_only=True),
]

# (phase, minimum duration in s or a parameter name); 'wait_landed' ends on landing instead.
# Durations and the anchors' speed are in simulation seconds (sim_clock): the simulated gripper moves in simulation
# time (rate-limited to gripper_max_speed), and a simulation behind real time (real-time factor 0.26-0.5 seen on 2
# loaded cores) would otherwise see the gripper close while still above the object, and the object look "landed"
# while it still rolls (a loaded test run once grasped no anchor at all).
SCRIPT = (("wait_landed", 0.0), ("approach", 3.0), ("descend", 3.0), ("close", "hold_s"), ("lift", 1.5),
          ("shake", "shake_s"), ("release", "hold_s"))


class GripperControllerNode(GuardedNode):
    def __init__(self, **node_kwargs):
        super().__init__(NAME, **node_kwargs)
        self.params = declare_parameters(self, PARAMS, NAME, on_change=self._params_changed)
        self.command_pub = self.create_publisher(GripperCommand, "gripper/command", command_qos())
        self.create_subscription(PointCloud2, "sim/anchors", self.on_anchors, cloud_qos())
        self.create_subscription(SimStatus, "sim/status", self.on_status, status_qos())
        self.timer = self.create_timer(1.0 / self.params["rate"], self.tick)
        self.real_time_factor = 1.0  # the simulation's, from sim/status
        self._sim_clock_s, self._sim_clock_wall = 0.0, time.monotonic()
        self.phase_index = 0
        self.phase_start = self.sim_clock()
        self.cycles = 0
        self._anchors: np.ndarray | None = None
        self._anchor_time = 0.0
        self._still_count = 0
        self._grasp_point: np.ndarray | None = None

    def _params_changed(self, changed: dict) -> None:
        self.params.update(changed)

    @property
    def phase(self) -> str:
        return SCRIPT[self.phase_index][0]

    def sim_clock(self) -> float:
        """Simulation seconds, advanced by wall time times the simulation's latest real-time factor."""
        now = time.monotonic()
        self._sim_clock_s += (now - self._sim_clock_wall) * self.real_time_factor
        self._sim_clock_wall = now
        return self._sim_clock_s

    def on_status(self, msg: SimStatus) -> None:
        factor = float(msg.real_time_factor)
        if msg.object_id and math.isfinite(factor) and factor > 0:
            self.sim_clock()  # the time so far at the old factor
            self.real_time_factor = min(max(factor, 0.02), 2.0)

    def on_anchors(self, msg: PointCloud2) -> None:
        try:
            points, _ = points_from_pointcloud2(msg)
        except ValueError as exc:
            self.dropped.drop("anchors", str(exc))
            return
        if not np.isfinite(points).all():  # a NaN anchor would become a NaN gripper target
            self.dropped.drop("anchors", "sim/anchors contains NaN or Inf")
            return
        now = self.sim_clock()
        if self._anchors is not None and self._anchors.shape == points.shape and len(points):
            speed = float(np.abs(points - self._anchors).max()) / max(now - self._anchor_time, 1e-3)
            self._still_count = self._still_count + 1 if speed < self.params["settle_speed"] else 0
        self._anchors, self._anchor_time = points, now

    def _advance(self) -> None:
        self.phase_index = (self.phase_index + 1) % len(SCRIPT)
        self.phase_start = self.sim_clock()
        if self.phase_index == 0:
            self.cycles += 1

    def tick(self) -> None:
        p = self.params
        if self._anchors is None or len(self._anchors) == 0:
            return
        if not p["repeat"] and self.cycles > 0:
            return
        elapsed = self.sim_clock() - self.phase_start
        phase, duration = SCRIPT[self.phase_index]
        duration = p[duration] if isinstance(duration, str) else duration
        if phase == "wait_landed":
            if self._still_count >= 3:
                self._grasp_point = self._anchors.mean(0)
                self._advance()
            return
        if phase in ("approach", "descend"):  # follow the object until the fingers close: it may still roll
            self._grasp_point = self._anchors.mean(0)
        target, closed = self._grasp_point.copy(), phase in ("close", "lift", "shake")
        top = float(self._anchors[:, 2].max())
        if phase == "approach":
            target[2] = top + p["grasp_radius"] + 0.1
        elif phase in ("lift", "shake", "release"):
            target[2] = self._grasp_point[2] + p["lift_height"]
        if phase == "shake":
            target[0] += p["shake_amplitude"] * math.sin(2 * math.pi * p["shake_frequency"] * elapsed)
        self.publish_command(target, closed)
        if elapsed >= duration:
            self._advance()

    def publish_command(self, position: np.ndarray, closed: bool) -> None:
        msg = GripperCommand()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["world_frame"]
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
        msg.pose.orientation.w = 1.0
        msg.position = 0.0 if closed else self.params["open_width"]
        msg.max_effort = self.params["max_effort"]
        msg.grasp_radius = self.params["grasp_radius"]
        self.command_pub.publish(msg)


def main(args=None) -> None:
    run_node(GripperControllerNode, args)


if __name__ == "__main__":
    main()
