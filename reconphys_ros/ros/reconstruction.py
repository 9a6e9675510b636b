"""reconstruction: image + mask -> detects a drop, runs the pipeline on its first frames, publishes the asset.

Images and masks pair by stamp. A DropDetector (core) finds the drop and buffers its first 0.633 s (`num_frames`
frames at 30 Hz; a faster camera strided to 30 Hz, dropped frames left out and fitted at their own stamps); the
pipeline then runs in a worker thread so the executor keeps serving (clips that complete while it is busy are
ignored). Results: `asset` (GaussianAsset) and `physics` (PhysicsParams), both TRANSIENT_LOCAL in `world_frame`,
plus <object_id>.ply and <object_id>.json (core/asset_record.py) in output_dir. The camera is the last
camera/camera_info with the last camera/pose (camera optical frame in the world), or the camera_position /
camera_look_at parameters (core/render/camera.py: camera_from_calibration). Stamps that jump back start a new
stream (core/drop_detector.py: StreamRestartDetector).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from reconphys_ros.core.asset import validate_object_id
from reconphys_ros.core.asset_record import AssetRecord, write_asset_record, write_refusal_record
from reconphys_ros.core.drop_detector import DropClip, DropDetector, StreamRestartDetector
from reconphys_ros.core.gaussians import write_ply
from reconphys_ros.core.geometry import pose_matrix
from reconphys_ros.core.render import Camera, camera_from_calibration
from reconphys_ros.msg import GaussianAsset, PhysicsParams
from reconphys_ros.ros.conversions import (asset_to_msg, camera_info_to_k, image_to_numpy,
                                           pose_to_numpy)
from reconphys_ros.ros.guarded_node import GuardedNode, describe_exception, format_traceback
from reconphys_ros.ros.parameters import ParamSpec, declare_parameters
from reconphys_ros.ros.qos import image_qos, latched_qos
from reconphys_ros.ros.spin import run_node
from reconphys_ros.ros.stamp_pairing import StampPairer


def _check_prefix(value: str) -> str | None:
    try:
        validate_object_id(f"{value}_000")
    except ValueError as exc:
        return f"object_id_prefix: {exc}"
    return None


NAME = "reconstruction"
PARAMS = [
    ParamSpec("output_dir", "str", "folder for <object_id>.ply and <object_id>.json"),
    ParamSpec("object_id_prefix", "str", "object ids are <prefix>_<n>", check=_check_prefix),
    ParamSpec("num_frames", "int", "the drop window in frames at 30 Hz (20 = 0.633 s after the release); a faster "
              "camera is strided to 30 Hz, a slower one gives fewer frames over the same time", 2, 300, read_only=True),
    ParamSpec("known_mass", "float", "the object's total mass in kg when known (fixes the scale of k and d, N/m); "
              "0 = estimate from a density prior times the reconstructed volume", 0.0, 1000.0),
    ParamSpec("fps", "float", "frame rate of the clip as filmed, when the image stamps do not tell it (a clip "
              "replayed slower than filmed: frames count as consecutive); 0 = from the image stamps, which also "
              "handles dropped frames and cameras faster than 30 Hz (strided to 30 Hz)", 0.0, 1000.0),
    ParamSpec("lattice", "str", "anchor lattice of the asset", choices=("coarse", "coarse64", "medium", "reference"),
              read_only=True),
    ParamSpec("refine", "bool", "test-time refinement of the physics through the simulator"),
    ParamSpec("contact_search", "bool", "search the contact damping (bounce, roll-out) on the frames after the "
              "observed impact; off, or without an impact in the clip: the learned predictor's value or the prior"),
    ParamSpec("gaussian_model", "str", "Gaussians at frame 0: learned predictor (better shape, blurrier texture), "
              "mask inflation (sharper texture), or auto (learned when its weights ship)",
              choices=("auto", "learned", "inflation"), read_only=True),
    ParamSpec("physics_model", "str", "physics: learned predictor, simulation (non-learned per-scene estimate), or "
              "auto (learned when its weights ship)", choices=("auto", "learned", "simulation"), read_only=True),
    ParamSpec("device", "str", "torch device of the pipeline", choices=("cpu", "cuda"), read_only=True),
    ParamSpec("camera_position", "float_list", "camera eye (world, m) while no camera/pose was received",
              length=3),
    ParamSpec("camera_look_at", "float_list", "point the fallback camera looks at (world, m)", length=3),
    ParamSpec("min_drop_px", "float", "downward mask motion that starts a drop, pixels", 0.0, 1000.0,
              read_only=True),
    ParamSpec("pair_window", "int", "unpaired images / masks kept while waiting for their partner", 1, 1000,
              read_only=True),
    ParamSpec("world_frame", "str", "frame id of asset and physics", read_only=True),
]


PIPELINE_PARAMS = {"refine", "known_mass", "contact_search"}  # writable parameters read by build_pipeline


def build_pipeline(params: dict):
    """The core pipeline configured from node parameters (imported lazily: it loads models)."""
    from reconphys_ros.core.pipeline import PipelineConfig, ReconstructionPipeline
    return ReconstructionPipeline(PipelineConfig(
        num_frames=params["num_frames"], lattice=params["lattice"], refine=params["refine"],
        known_mass=params["known_mass"] or None, device=params["device"], gaussian_model=params["gaussian_model"],
        physics_model=params["physics_model"], estimate_contact=params["contact_search"]))


CLOSE_WAIT_S = 0.2  # close() waits this long for a reconstruction in flight (the SIGINT budget is 0.5 s)


class ReconstructionNode(GuardedNode):
    def __init__(self, **node_kwargs):
        super().__init__(NAME, **node_kwargs)
        self.params = declare_parameters(self, PARAMS, NAME, on_change=self._params_changed)
        p = self.params
        self.pipeline = build_pipeline(p)
        # the networks' and fits' first-call set-up now, not on the first drop (~0.2 s of its latency)
        self.get_logger().info(f"pipeline warmed up in {self.pipeline.warm_up():.2f} s")
        self.detector = DropDetector(num_frames=p["num_frames"], min_drop_px=p["min_drop_px"])
        self.pairer = StampPairer(p["pair_window"])
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconstruction")
        self._busy = threading.Event()
        self._closing = threading.Event()  # set by close(): a reconstruction still running publishes nothing
        self._lock = threading.Lock()  # pairer, detector, camera
        self._camera_info: tuple[np.ndarray, int, int] | None = None
        self._cam_to_world: np.ndarray | None = None
        self.stream_clock = StreamRestartDetector()  # per side: masks lag images by the segmentation time
        self.stream_restarts = 0
        self.drops_done = 0
        self.frames_paired = 0  # the frame clock when the fps parameter sets the timing
        self.drops_refused = 0  # drops the pipeline refused (ValueError: a reason on the log)
        self.drops_abandoned = 0  # drops still being reconstructed when close() stopped waiting (nothing published)
        self.clips_ignored = 0
        self.latencies: list[float] = []
        self.last_result = None
        group = MutuallyExclusiveCallbackGroup()  # inputs in order; the pipeline runs outside the executor
        self.asset_pub = self.create_publisher(GaussianAsset, "asset", latched_qos())
        self.physics_pub = self.create_publisher(PhysicsParams, "physics", latched_qos())
        self.create_subscription(Image, "camera/image_raw", lambda m: self.on_frame("image", m), image_qos(),
                                 callback_group=group)
        self.create_subscription(Image, "mask", lambda m: self.on_frame("mask", m), image_qos(),
                                 callback_group=group)
        self.create_subscription(CameraInfo, "camera/camera_info", self.on_camera_info, image_qos(),
                                 callback_group=group)
        self.create_subscription(PoseStamped, "camera/pose", self.on_pose, latched_qos(), callback_group=group)

    def _params_changed(self, changed: dict) -> None:
        """Apply accepted parameter changes: a new pipeline when its settings changed (a drop already being
        reconstructed finishes with the old one). num_frames, lattice, device and min_drop_px are read-only."""
        self.params.update(changed)
        if PIPELINE_PARAMS & set(changed):
            self.pipeline = build_pipeline(self.params)

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    # ------------------------------------------------------------------ inputs
    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._camera_info = camera_info_to_k(msg)
        except ValueError as exc:
            self.dropped.drop("camera info", str(exc))

    def on_pose(self, msg: PoseStamped) -> None:
        try:
            self._cam_to_world = pose_matrix(*pose_to_numpy(msg.pose))
        except ValueError as exc:
            self.dropped.drop("camera pose", str(exc))

    def on_frame(self, side: str, msg: Image) -> None:
        try:
            array = image_to_numpy(msg, encoding="rgb8" if side == "image" else None)
        except ValueError as exc:
            self.dropped.drop(side, str(exc))
            return
        if side == "image" and array.ndim != 3:
            self.dropped.drop("image", f"encoding {msg.encoding!r} is not a colour image (rgb8 / bgr8)")
            return
        if side == "mask" and (array.ndim != 2 or array.dtype != np.uint8):
            self.dropped.drop("mask", f"encoding {msg.encoding!r} is not mono8")
            return
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            newest = self.stream_clock.observe(side, stamp_ns)
            if newest is not None:
                self._restart_stream(side, stamp_ns, newest)
            for stamp, image, mask in self.pairer.add(side, stamp_ns, array):
                self._feed(stamp, image, mask)

    def _restart_stream(self, side: str, stamp_ns: int, newest_ns: int) -> None:
        self.dropped.drop("stream restart", f"{side} stamp {stamp_ns * 1e-9:.3f} s is more than "
                          f"{self.stream_clock.restart_ns * 1e-9:g} s before the newest {side} "
                          f"({newest_ns * 1e-9:.3f} s): treating it as a new stream (pairing and drop detection "
                          "start again)")
        self.stream_restarts += 1
        self.pairer = StampPairer(self.params["pair_window"])
        self.detector.reset()

    def _feed(self, stamp_ns: int, image: np.ndarray, mask: np.ndarray) -> None:
        if image.shape[:2] != mask.shape:
            self.dropped.drop("frame", f"mask size {mask.shape[::-1]} does not match image size "
                              f"{image.shape[1::-1]}")
            return
        fps = self.params["fps"]
        self.frames_paired += 1
        try:
            clip = self.detector.feed(image, mask, stamp_ns * 1e-9, self.frames_paired / fps if fps > 0 else None)
        except ValueError as exc:
            self.dropped.drop("frame", str(exc))
            return
        if clip is None:
            return
        if self.busy:
            self.clips_ignored += 1
            self.dropped.drop("drop clip", "the pipeline is still busy with the previous drop")
            return
        try:
            camera = self._camera(image.shape[1], image.shape[0])
        except ValueError as exc:
            self.dropped.drop("drop clip", str(exc))
            return
        object_id = f"{self.params['object_id_prefix']}_{self.drops_done:03d}"
        self.drops_done += 1
        self._busy.set()
        future = self.worker.submit(self._reconstruct, clip, camera, object_id, time.monotonic())
        future.add_done_callback(self._log_worker_failure)

    def _camera(self, width: int, height: int) -> Camera:
        if self._camera_info is None:
            raise ValueError("no camera/camera_info received yet: cannot reconstruct without intrinsics")
        k, info_w, info_h = self._camera_info
        return camera_from_calibration(k, (info_w, info_h), (width, height), self._cam_to_world,
                                       self.params["camera_position"], self.params["camera_look_at"])

    # ------------------------------------------------------------------ worker thread
    def _reconstruct(self, clip: DropClip, camera: Camera, object_id: str, start: float) -> None:
        try:
            try:
                # the detector's clock is the stamps, or frames / fps when the fps parameter is set: either way the clip
                # carries its own grid rate and frame times
                result = self.pipeline.run(clip.images, clip.masks, camera, object_id, fps=clip.rate,
                                           times=clip.times)
            except ValueError as exc:  # the clip is refused (no fall, implausible size, ...): a reason, no traceback
                self.drops_refused += 1
                self.dropped.drop("drop clip", f"{object_id} not reconstructed: {exc}")
                self._write_refusal(object_id, str(exc), clip.stamps)
                return
            if self._closing.is_set():  # close() gave up waiting for this one: the node is going away
                self.drops_abandoned += 1
                return
            asset = result.asset
            header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.params["world_frame"])
            asset_msg = asset_to_msg(asset, header)
            self.asset_pub.publish(asset_msg)
            self.physics_pub.publish(asset_msg.physics)  # the same PhysicsParams the asset carries
            latency = time.monotonic() - start
            self.latencies.append(latency)
            self.last_result = result
            self._write_outputs(asset, camera, clip, result, latency)
            p = asset.physics.params
            self.get_logger().info(
                f"{object_id}: {asset.gaussians.num_gaussians} Gaussians, {asset.num_anchors} anchors, "
                f"m={p.mass:.3g} k={p.stiffness:.4g} d={p.damping:.3g} f={p.friction:.2f}; "
                f"latency {latency * 1000:.0f} ms from the last frame to the published asset")
            self._log_initial_state(object_id, result)
        except Exception as exc:  # keep serving: one failed drop must not end the node
            self.get_logger().error(f"reconstruction of {object_id} failed: {type(exc).__name__}: {exc}\n"
                                    f"{format_traceback(exc)}")
        finally:
            self._busy.clear()

    def _log_worker_failure(self, future) -> None:
        """Whatever escaped _reconstruct (its own handler failing) reaches the log instead of vanishing in the
        future."""
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            self.get_logger().error(f"reconstruction worker failed: {describe_exception(exc)}\n"
                                    f"{format_traceback(exc)}")

    def _log_initial_state(self, object_id: str, result) -> None:
        """The fitted frame-0 state in one line; a depth the fit could not trust (a fallback prior) is a warning
        with the pipeline's notes on why."""
        motion = result.asset.initial_motion
        if motion is None:
            return
        v, w = np.asarray(motion.velocity), np.asarray(motion.angular_velocity)
        line = (f"{object_id}: frame-0 velocity ({v[0]:.2f}, {v[1]:.2f}, {v[2]:.2f}) m/s, spin ({w[0]:.1f}, "
                f"{w[1]:.1f}, {w[2]:.1f}) rad/s, depth {motion.depth:.3f} +- {motion.depth_std:.3f} m")
        if motion.depth_trusted:
            self.get_logger().info(line)
            return
        why = [n for n in result.notes if "depth" in n] or ["no note"]
        self.get_logger().warning(f"{line} (fallback depth: {'; '.join(why)})")

    def _write_refusal(self, object_id: str, reason: str, stamps) -> None:
        try:
            os.makedirs(self.params["output_dir"], exist_ok=True)
            write_refusal_record(os.path.join(self.params["output_dir"], f"{object_id}.refused.json"), object_id,
                                 reason, stamps)
        except OSError as exc:  # a full or read-only output_dir: the refusal is in the log already
            self.get_logger().error(f"cannot write the refusal record of {object_id}: {exc}",
                                    throttle_duration_sec=10.0)

    def _write_outputs(self, asset, camera: Camera, clip: DropClip, result, latency: float) -> None:
        folder = self.params["output_dir"]
        os.makedirs(folder, exist_ok=True)
        # temp name + rename: a crash mid-write never leaves a partial <id>.ply that looks complete
        ply_path = os.path.join(folder, f"{asset.object_id}.ply")
        try:
            write_ply(asset.gaussians, ply_path + ".tmp")
            os.replace(ply_path + ".tmp", ply_path)
        finally:
            if os.path.exists(ply_path + ".tmp"):
                os.remove(ply_path + ".tmp")
        record = AssetRecord.of_asset(asset, camera, clip.stamps, latency, getattr(result, "notes", []),
                                      getattr(result, "timings", None))
        write_asset_record(os.path.join(folder, f"{asset.object_id}.json"), record)

    def close(self) -> None:
        """Cancel queued drops; one being reconstructed gets CLOSE_WAIT_S to finish, else it is left to run out
        in its thread without publishing or writing (Ctrl-C must not wait seconds for a drop). Outputs are
        written under a temporary name and renamed, so a process that exits meanwhile leaves nothing partial."""
        self._closing.set()
        self.worker.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + CLOSE_WAIT_S
        while self._busy.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._busy.is_set():
            self.get_logger().info(f"closing during a reconstruction: not waiting more than {CLOSE_WAIT_S:g} s "
                                   "for it, it publishes nothing")


def main(args=None) -> None:
    run_node(ReconstructionNode, args)


if __name__ == "__main__":
    main()
