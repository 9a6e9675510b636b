"""simulation: steps the latest `asset` in Warp at a fixed rate and lets `gripper/command` grab, lift and drop it.

Outputs: sim/anchors and sim/gaussians (PointCloud2), sim/image (rendered at a lower rate in a worker thread;
skipped whenever the previous render is still running or the last frame overran its period, so physics keeps its
rate), sim/status (SimStatus). An asset starts as it was observed (start: observed): its frame-0 pose, moving with the
fitted velocity and spin (GaussianAsset.initial_motion), so the simulation continues the fall the camera saw; or
(start: drop) from rest at drop_height. Services ~/reset (object at rest on the ground) and ~/drop (start again). Clouds and renders use at most max_render_gaussians Gaussians (a uniform subset of bigger assets, with
a warning). Physics is never slowed silently: keeping_up measures the whole frame (physics step, binding, point
clouds, and the renders' share), and is false, with a warning, when that exceeds the frame period or the simulation
runs below REAL_TIME_MIN x real time. sim/status has its own timer and callback group and never waits for the
physics lock, so a big asset cannot silence it.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image, PointCloud2
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from reconphys_ros.core.physics.control import critical_damping, grasp_stability_margin, grasp_stiffness_per_mass
from reconphys_ros.core.render import focal_from_fov, look_at, render
from reconphys_ros.msg import GaussianAsset, GripperCommand, SimStatus
from reconphys_ros.core.sim_session import (START_MODES, AssetSimulator, GripperSettings, lattice_for,
                                            warm_up_kernels)
from reconphys_ros.ros.conversions import asset_from_msg, numpy_to_image, pointcloud2_from_points, pose_to_numpy
from reconphys_ros.ros.guarded_node import GuardedNode, format_traceback
from reconphys_ros.ros.parameters import ParamSpec, declare_parameters
from reconphys_ros.ros.qos import cloud_qos, command_qos, image_qos, latched_qos, status_qos
from reconphys_ros.ros.spin import run_node

# Gripper targets are clamped into this box (world, m): a far-off target (a unit mix-up, a bad teleop message)
# would otherwise fling a grasped object kilometres away and wreck the float32 state.
GRIPPER_WORKSPACE_M = ((-5.0, -5.0, 0.0), (5.0, 5.0, 5.0))
# keeping_up also needs this real-time factor over a status window of at least REAL_TIME_WINDOW_S (a shorter window
# is too noisy to judge: one late frame in 0.1 s is 30%).
REAL_TIME_MIN = 0.9
REAL_TIME_WINDOW_S = 0.5

NAME = "simulation"
PARAMS = [
    ParamSpec("fps", "float", "physics frames per second (timer rate)", 1.0, 1000.0, read_only=True),
    ParamSpec("substeps", "int", "substeps per frame (raised when unstable for the asset)", 1, 10000,
              read_only=True),
    ParamSpec("lattice", "str", "anchor lattice", choices=("auto", "coarse", "coarse64", "medium", "reference"),
              read_only=True),
    ParamSpec("device", "str", "simulation device", choices=("cpu", "cuda"), read_only=True),
    ParamSpec("start", "str", "how an object starts (on arrival and on ~/drop): observed = replays the observed fall "
              "(the asset's frame-0 pose, velocity and spin; drop when the asset has none), drop = released from "
              "rest at drop_height", choices=START_MODES),
    ParamSpec("drop_height", "float", "~/drop releases the object with its lowest anchor this high, m", 0.0, 100.0),
    ParamSpec("render_rate", "float", "sim/image renders per second; 0 = off", 0.0, 120.0),
    ParamSpec("cloud_rate", "float", "sim/anchors and sim/gaussians per second", 0.0, 1000.0),
    ParamSpec("render_width", "int", "sim/image width, px", 8, 4096, read_only=True),
    ParamSpec("render_height", "int", "sim/image height, px", 8, 4096, read_only=True),
    ParamSpec("render_fov_deg", "float", "sim/image horizontal field of view, degrees", 1.0, 170.0,
              read_only=True),
    ParamSpec("render_camera_position", "float_list", "sim/image camera eye (world, m)", length=3, read_only=True),
    ParamSpec("render_camera_look_at", "float_list", "point the sim/image camera looks at (world, m)", length=3,
              read_only=True),
    ParamSpec("closed_width", "float", "GripperCommand.position at or below this closes the gripper, m", 0.0, 1.0),
    ParamSpec("max_effort", "float", "default cap on the total grasp force, N (a gripper's grip force, tens of N; "
              "GripperCommand.max_effort <= 0 uses it); pulled harder, the object slips out", 1e-3, 1e6),
    ParamSpec("grasp_frequency", "float", "natural frequency of a grasped anchor on its grasp spring, Hz: the "
              "springs scale with the object's mass (per unit mass (2 pi f)^2, critically damped), so any mass is "
              "held alike; keep 2 pi f / (fps * substeps) <~ 0.15 for stability", 0.1, 100.0, read_only=True),
    ParamSpec("gripper_max_speed", "float", "gripper speed limit, m/s", 1e-3, 100.0, read_only=True),
    ParamSpec("home_position", "float_list", "gripper position after reset (world, m)", length=3, read_only=True),
    ParamSpec("status_period_s", "float", "sim/status period, s", 0.05, 60.0, read_only=True),
    ParamSpec("max_render_gaussians", "int", "Gaussians used for sim/gaussians and sim/image (a uniform subset of "
              "bigger assets; physics uses all); 0 = all", 0, 100_000_000),
    ParamSpec("world_frame", "str", "frame id of the outputs", read_only=True),
]


class SimulationNode(GuardedNode):
    executor_threads = 3  # inputs / services and sim/status stay responsive while the physics group steps

    def __init__(self, **node_kwargs):
        super().__init__(NAME, **node_kwargs)
        self.params = declare_parameters(self, PARAMS, NAME, on_change=self._params_changed)
        p = self.params
        self.lattice = lattice_for(p["lattice"], p["device"])
        # kernels are built now, not on the first asset (whose first frames would then look like overruns)
        warm = warm_up_kernels(p["device"])
        if warm > 1.0:
            self.get_logger().info(f"simulation kernels built in {warm:.1f} s (once per user and Warp version)")
        self.lock = threading.Lock()  # guards self.sim (timer, commands, services, asset loads)
        self.sim: AssetSimulator | None = None
        self.render_camera = look_at(p["render_camera_position"], p["render_camera_look_at"],
                                     fx=focal_from_fov(p["render_fov_deg"], p["render_width"]),
                                     width=p["render_width"], height=p["render_height"])
        inputs = MutuallyExclusiveCallbackGroup()
        physics = MutuallyExclusiveCallbackGroup()
        status = MutuallyExclusiveCallbackGroup()  # its own thread: never waits behind a long physics frame
        self.anchor_pub = self.create_publisher(PointCloud2, "sim/anchors", cloud_qos())
        self.gaussian_pub = self.create_publisher(PointCloud2, "sim/gaussians", cloud_qos())
        self.image_pub = self.create_publisher(Image, "sim/image", image_qos())
        self.status_pub = self.create_publisher(SimStatus, "sim/status", status_qos())
        self.create_subscription(GaussianAsset, "asset", self.on_asset, latched_qos(), callback_group=inputs)
        self.create_subscription(GripperCommand, "gripper/command", self.on_command, command_qos(),
                                 callback_group=inputs)
        self.create_service(Trigger, "~/reset", self.on_reset, callback_group=inputs)
        self.create_service(Trigger, "~/drop", self.on_drop, callback_group=inputs)
        self.timer = self.create_timer(1.0 / p["fps"], self.tick, callback_group=physics)
        self.status_timer = self.create_timer(p["status_period_s"], self.publish_status, callback_group=status)
        self._render_thread: threading.Thread | None = None
        self._closing = False
        self._render_times: list[float] = []
        self.renders_skipped = 0
        self.frames_stepped = 0
        self.commands_clamped = 0
        self._divergences_seen = 0
        self._last_cloud = self._last_render = 0.0
        self._window = (time.monotonic(), 0.0)  # (wall time, sim time) at the start of the status window
        self._frame_times: collections.deque = collections.deque(maxlen=100)  # whole tick, s
        self._window_render_s = 0.0  # render seconds since the start of the status window
        self._window_frames = 0  # frames stepped since the start of the status window
        self._stats_lock = threading.Lock()  # the counters above; never held while stepping
        self._event = "waiting for an asset"

    def _params_changed(self, changed: dict) -> None:
        self.params.update(changed)
        if "max_render_gaussians" in changed:
            with self.lock:
                if self.sim is not None:  # the asset being simulated too, not only the next one
                    self.sim.set_view_limit(changed["max_render_gaussians"])

    # ------------------------------------------------------------------ inputs
    def on_asset(self, msg: GaussianAsset) -> None:
        try:
            asset = asset_from_msg(msg)
        except ValueError as exc:
            self.dropped.drop("asset", str(exc))
            return
        p = self.params
        grip = GripperSettings(home_position=tuple(p["home_position"]), max_effort=p["max_effort"],
                               stiffness=grasp_stiffness_per_mass(p["grasp_frequency"]),
                               max_speed=p["gripper_max_speed"])
        try:
            sim = AssetSimulator(asset, self.lattice, p["fps"], p["substeps"], p["device"], grip, p["drop_height"],
                                 max_view_gaussians=p["max_render_gaussians"], start=p["start"])
        except ValueError as exc:
            self.dropped.drop("asset", f"cannot simulate {asset.object_id!r}: {exc}")
            return
        if sim.view_index is not None:  # once per asset
            self.get_logger().warning(
                f"{asset.object_id} has {asset.gaussians.num_gaussians} Gaussians: sim/gaussians and sim/image use "
                f"a uniform subset of {sim.view_gaussians.num_gaussians} (max_render_gaussians); physics uses all")
        with self.lock:
            self.sim = sim
            self._divergences_seen = 0
            self._reset_window()
        dt = 1.0 / (sim.fps * sim.substeps)
        margin = grasp_stability_margin(grip.stiffness, critical_damping(grip.stiffness), dt)
        if margin > 1.0:
            self.get_logger().warning(
                f"grasp_frequency {p['grasp_frequency']:g} Hz is too stiff for {sim.substeps} substeps at "
                f"{sim.fps:g} fps ({margin:.2f}x the stable budget): a grasped object may jitter. Lower "
                "grasp_frequency or raise substeps", throttle_duration_sec=10.0)
        note = "" if sim.substeps == sim.requested_substeps else \
            f" (substeps raised from {sim.requested_substeps} to {sim.substeps} for stability)"
        self._event = f"loaded {asset.object_id}"
        self.get_logger().info(f"simulating {asset.object_id}: {sim.model.num_anchors} anchors, "
                               f"{sim.model.num_springs} springs, lattice {sim.lattice.name}, "
                               f"{sim.substeps} substeps{note}")

    def on_command(self, msg: GripperCommand) -> None:
        try:
            position, orientation = pose_to_numpy(msg.pose)
        except ValueError as exc:
            self.dropped.drop("gripper command", str(exc))
            return
        if not np.isfinite(msg.max_effort):
            self.dropped.drop("gripper command", f"max_effort must be a finite force in N (<= 0: the node's default "
                              f"{self.params['max_effort']:g} N), got {msg.max_effort}")
            return
        if not (np.isfinite(msg.position) and np.isfinite(msg.grasp_radius)):
            self.dropped.drop("gripper command", "position (opening width, m) and grasp_radius (m) must be finite")
            return
        max_effort = self.params["max_effort"]  # N; <= 0 in the message: the node's default
        if msg.max_effort > 0:
            max_effort = float(msg.max_effort)
        elif msg.max_effort < 0:
            self.get_logger().warning(f"gripper command max_effort {msg.max_effort:g} N is negative: using the node's "
                                      f"default {max_effort:g} N (send 0 for the default, or a force > 0 N)",
                                      throttle_duration_sec=5.0)
        low, high = np.asarray(GRIPPER_WORKSPACE_M[0]), np.asarray(GRIPPER_WORKSPACE_M[1])
        clamped = np.clip(position, low, high)
        if not np.array_equal(clamped, position):
            self.commands_clamped += 1
            self.get_logger().warning(f"gripper target {position.tolist()} is outside the workspace {low.tolist()}.."
                                      f"{high.tolist()} m: clamped to {clamped.tolist()}", throttle_duration_sec=5.0)
            position = clamped
        with self.lock:
            if self.sim is None:
                self.dropped.drop("gripper command", "no asset loaded yet")
                return
            if msg.object_id and msg.object_id != self.sim.asset.object_id:
                self.dropped.drop("gripper command", f"unknown object id {msg.object_id!r} (simulating "
                                  f"{self.sim.asset.object_id!r})")
                return
            self.sim.command_gripper(position, orientation, closed=msg.position <= self.params["closed_width"],
                                     grasp_radius=msg.grasp_radius if msg.grasp_radius > 0 else None,
                                     max_effort=max_effort)

    def _service(self, action: str, response):
        with self.lock:
            if self.sim is None:
                response.success, response.message = False, "no asset loaded yet"
                return response
            getattr(self.sim, action)()
            self._reset_window()
        self._event = f"{action} {self.sim.asset.object_id}"
        response.success, response.message = True, self._event
        return response

    def on_reset(self, _request, response):
        return self._service("reset", response)

    def on_drop(self, _request, response):
        return self._service("drop", response)

    # ------------------------------------------------------------------ stepping and outputs
    def _reset_window(self) -> None:
        """Start a new status window (after a load, reset or drop: sim time starts again at 0)."""
        with self._stats_lock:
            self._window = (time.monotonic(), 0.0)
            self._window_render_s, self._window_frames = 0.0, 0
            self._frame_times.clear()

    def _header(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg(), frame_id=self.params["world_frame"])

    def tick(self) -> None:
        start = time.perf_counter()
        try:
            self._tick()
        finally:
            if self.sim is not None:
                with self._stats_lock:
                    self._frame_times.append(time.perf_counter() - start)
                    self._window_frames += 1

    def _tick(self) -> None:
        with self.lock:
            sim = self.sim
            if sim is None:
                return
            sim.step()
            self.frames_stepped += 1
            if sim.divergences != self._divergences_seen:
                self._divergences_seen = sim.divergences
                self._event = (f"simulation of {sim.asset.object_id} diverged (non-finite state, "
                               f"{sim.divergences} times so far): dropped it again")
                self.get_logger().warning(self._event, throttle_duration_sec=5.0)
            now = time.monotonic()
            cloud_due = self.params["cloud_rate"] > 0 and now - self._last_cloud >= 1.0 / self.params["cloud_rate"]
            render_due = self.params["render_rate"] > 0 and now - self._last_render >= 1.0 / self.params["render_rate"]
            if not (cloud_due or render_due):
                return
            anchors = sim.anchors.detach().cpu().numpy().copy()
            means = sim.view_means().detach()
        header = self._header()
        if cloud_due:
            self._last_cloud = now
            self.anchor_pub.publish(pointcloud2_from_points(anchors, header=header))
            colors = sim.view_gaussians.colors.detach().cpu().numpy()
            self.gaussian_pub.publish(pointcloud2_from_points(means.cpu().numpy(), colors, header))
        if render_due:
            self._last_render = now
            busy = self._render_thread is not None and self._render_thread.is_alive()
            if self._closing:
                return
            behind = bool(self._frame_times) and self._frame_times[-1] > 1.0 / self.params["fps"]
            if busy or behind:
                self.renders_skipped += 1  # keep real time: physics first
            else:
                self._render_thread = threading.Thread(target=self._render, args=(sim, means, header), daemon=True)
                self._render_thread.start()

    def _render(self, sim: AssetSimulator, means, header: Header) -> None:
        start = time.perf_counter()
        try:
            out = render(sim.view_gaussians.with_means(means), self.render_camera.to(means.device))
            rgb = (out.rgb.clamp(0, 1) * 255 + 0.5).to("cpu").numpy().astype(np.uint8)
            if not self._closing:
                self.image_pub.publish(numpy_to_image(rgb, "rgb8", header))
        except Exception as exc:  # a failed render must not take the node down; physics goes on
            self.get_logger().error(f"sim/image render failed: {type(exc).__name__}: {exc}\n"
                                    f"{format_traceback(exc)}", throttle_duration_sec=10.0)
        elapsed = time.perf_counter() - start
        self._render_times = (self._render_times + [elapsed])[-20:]
        with self._stats_lock:
            self._window_render_s += elapsed

    def close(self) -> None:
        """Stop stepping and wait for a running render (call before destroy_node)."""
        self._closing = True
        self.timer.cancel()
        self.status_timer.cancel()
        if self._render_thread is not None:
            self._render_thread.join(timeout=30.0)

    def publish_status(self) -> None:
        """sim/status. Reads the simulator without its lock (a frame in progress must not delay the status): the
        numbers are those of the last finished frame."""
        msg = SimStatus(header=self._header())
        sim = self.sim
        period = 1.0 / self.params["fps"]
        now = time.monotonic()
        frame_ms = window_s = 0.0
        if sim is not None:
            sim_time = sim.sim_time
            with self._stats_lock:
                (wall0, sim0), frames, render_s = self._window, self._window_frames, self._window_render_s
                tick_s = float(np.mean(self._frame_times)) if self._frame_times else 0.0
                self._window, self._window_render_s, self._window_frames = (now, sim_time), 0.0, 0
            window_s = now - wall0
            msg.real_time_factor = max(sim_time - sim0, 0.0) / max(window_s, 1e-9)
            # the whole frame: physics, binding and point clouds (the tick) plus the renders' share per frame
            frame_ms = 1000.0 * (tick_s + (render_s / frames if frames else 0.0))
            msg.object_id, msg.sim_time = sim.asset.object_id, sim_time
            step_times = list(sim.step_times)
            msg.step_time_ms = 1000.0 * float(np.mean(step_times)) if step_times else 0.0
            msg.substeps, msg.num_anchors = sim.substeps, sim.model.num_anchors
            msg.num_springs, msg.anchors_grasped = sim.model.num_springs, sim.anchors_grasped
            msg.divergences = sim.divergences
        msg.render_time_ms = 1000.0 * float(np.mean(self._render_times)) if self._render_times else 0.0
        msg.frames_stepped, msg.renders_skipped = self.frames_stepped, self.renders_skipped
        judged = sim is not None and window_s >= REAL_TIME_WINDOW_S
        slow_frame = sim is not None and frame_ms > 1000.0 * period
        slow_clock = judged and msg.real_time_factor < REAL_TIME_MIN
        msg.keeping_up = not (slow_frame or slow_clock)
        msg.message = self._event
        if not msg.keeping_up:
            msg.message = (f"cannot keep real time: a whole frame (physics {msg.step_time_ms:.1f} ms, plus binding, "
                           f"point clouds and renders) takes {frame_ms:.1f} ms for a {1000.0 * period:.1f} ms period; "
                           f"real-time factor {msg.real_time_factor:.2f}. Lower substeps, cloud_rate, render_rate or "
                           "max_render_gaussians, or use a coarser lattice")
            self.get_logger().warning(msg.message, throttle_duration_sec=10.0)
        self.status_pub.publish(msg)


def main(args=None) -> None:
    run_node(SimulationNode, args)


if __name__ == "__main__":
    main()
