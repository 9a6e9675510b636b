"""video_source: plays a video file, image folder or dataset clip as camera/image_raw + camera/camera_info.

Dataset clips also publish camera/pose (geometry_msgs/PoseStamped, TRANSIENT_LOCAL): the camera optical frame's
pose in the world frame (tf convention world -> camera_optical; its inverse is the world->camera extrinsic),
because CameraInfo has no extrinsics and tf2 is not available from pip.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from reconphys_ros.ros.conversions import camera_info_from_k, numpy_to_image
from reconphys_ros.ros.frame_sources import FrameSource, intrinsics_from_fov, open_source
from reconphys_ros.ros.guarded_node import GuardedNode
from reconphys_ros.ros.parameters import ParamSpec, declare_parameters
from reconphys_ros.ros.qos import image_qos, latched_qos
from reconphys_ros.ros.spin import run_node

NAME = "video_source"
PARAMS = [
    ParamSpec("source", "str", "video file, image folder or dataset sample folder; empty = embedded example clip",
              read_only=True),
    ParamSpec("view", "int", "camera view of a dataset clip", 0, 15, read_only=True),
    ParamSpec("fps", "float", "publish rate in Hz; 0 = the source's own rate", 0.0, 240.0, read_only=True),
    ParamSpec("loop", "bool", "start again after the last frame"),
    ParamSpec("hold_last_frames", "int", "repeat the last frame this often before looping", 0, 1000),
    ParamSpec("start_delay_s", "float", "wait before the first frame, s", 0.0, 3600.0, read_only=True),
    ParamSpec("wait_for_subscribers", "int", "publish only once this many subscribers match the image topic",
              0, 64),
    ParamSpec("frame_id", "str", "frame id of images and camera info", read_only=True),
    ParamSpec("world_frame", "str", "frame id of camera/pose", read_only=True),
    ParamSpec("output_width", "int", "publish frames resized to this width, px; 0 = the source's own size "
              "(with output_height)", 0, 8192, read_only=True),
    ParamSpec("output_height", "int", "publish frames resized to this height, px; 0 = the source's own size",
              0, 8192, read_only=True),
    ParamSpec("fov_deg", "float", "horizontal field of view for sources without intrinsics, degrees",
              1.0, 170.0, read_only=True),
]


def matrix_to_pose(cam_to_world: np.ndarray, msg: PoseStamped) -> PoseStamped:
    """(4, 4) rigid transform -> PoseStamped position + unit quaternion (Shepperd's method)."""
    r, t = cam_to_world[:3, :3], cam_to_world[:3, 3]
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0] * 4
        q[0] = (r[k, j] - r[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (r[j, i] + r[i, j]) / s
        q[1 + k] = (r[k, i] + r[i, k]) / s
    q = np.asarray(q) / np.linalg.norm(q)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in t)
    msg.pose.orientation.w, msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z = \
        (float(v) for v in q)
    return msg


class VideoSourceNode(GuardedNode):
    def __init__(self, **node_kwargs):
        super().__init__(NAME, **node_kwargs)
        self.params = declare_parameters(self, PARAMS, NAME, on_change=self.params_changed)
        p = self.params
        self.source: FrameSource = open_source(p["source"], p["view"], p["fps"])
        if (p["output_width"] > 0) != (p["output_height"] > 0):
            raise ValueError("set both output_width and output_height (or neither)")
        if p["output_width"] > 0:
            self.source = self.source.resized(p["output_width"], p["output_height"])
        k = self.source.K if self.source.K is not None else intrinsics_from_fov(
            p["fov_deg"], self.source.width, self.source.height)
        self.camera_info = camera_info_from_k(k, self.source.width, self.source.height)
        self.camera_info.header.frame_id = p["frame_id"]
        self.image_pub = self.create_publisher(Image, "camera/image_raw", image_qos())
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", image_qos())
        if self.source.world_to_cam is not None:
            self.pose_pub = self.create_publisher(PoseStamped, "camera/pose", latched_qos())
            pose = matrix_to_pose(np.linalg.inv(self.source.world_to_cam), PoseStamped())
            pose.header.frame_id = p["world_frame"]
            pose.header.stamp = self.get_clock().now().to_msg()
            self.pose_pub.publish(pose)
        self.frames_published = 0
        self.passes = 0
        self._iterator = None
        self._held = 0
        self._last_frame: np.ndarray | None = None
        self._start_time = self.get_clock().now()
        self._pass_start_ns: int | None = None
        self._timeline_pass = self._pass_frames = self._last_stamp_ns = 0
        self.timer = self.create_timer(1.0 / self.source.fps, self.tick)
        self.get_logger().info(f"playing {self.source.name} ({self.source.width}x{self.source.height} at "
                               f"{self.source.fps:g} fps, loop={p['loop']})")

    def params_changed(self, changed: dict) -> None:
        self.params.update(changed)

    def _next_frame(self) -> np.ndarray | None:
        if self._iterator is None:
            self._iterator = self.source.frames()
        frame = next(self._iterator, None)
        if frame is not None:
            self._last_frame = frame
            return frame
        if self._last_frame is not None and self._held < self.params["hold_last_frames"]:
            self._held += 1
            return self._last_frame
        self.passes += 1
        self._held = 0
        if not self.params["loop"]:
            return None
        self._iterator = self.source.frames()
        frame = next(self._iterator, None)
        self._last_frame = frame
        return frame

    def tick(self) -> None:
        elapsed = (self.get_clock().now() - self._start_time).nanoseconds * 1e-9
        if elapsed < self.params["start_delay_s"]:
            return
        if self.image_pub.get_subscription_count() < self.params["wait_for_subscribers"]:
            return
        if not self.params["loop"] and self.passes > 0:
            return
        frame = self._next_frame()
        if frame is None:
            # also the end of a looping source that yields no frames at all (an unreadable video): stop the
            # timer instead of logging this at the frame rate forever
            self.timer.cancel()
            note = "" if self.frames_published else " (the source yielded no frames: unreadable or empty?)"
            self.get_logger().info(f"finished {self.source.name} after {self.frames_published} frames{note}")
            return
        # Stamps follow the clip's timeline (first frame + i / fps), not the publish time, so a late timer on a
        # busy machine does not distort the motion the reconstruction measures.
        # The timeline restarts at every pass, so lag never accumulates across loops.
        if self._pass_start_ns is None or self.passes != self._timeline_pass:
            self._timeline_pass, self._pass_frames = self.passes, 0
            now = self.get_clock().now().nanoseconds
            # at least a frame period after the previous pass's last stamp: 1 ns later would collide once stamps
            # become float seconds (float64 resolves ~240 ns at today's epoch), seen once in a 10-minute soak
            period_ns = round(1e9 / self.source.fps)
            self._pass_start_ns = max(now, self._last_stamp_ns + period_ns) if self._last_stamp_ns else now
        stamp_ns = self._pass_start_ns + round(self._pass_frames * 1e9 / self.source.fps)
        self._pass_frames += 1
        self._last_stamp_ns = stamp_ns
        stamp = Time(nanoseconds=stamp_ns, clock_type=self.get_clock().clock_type).to_msg()
        image = numpy_to_image(frame, "rgb8")
        image.header.stamp, image.header.frame_id = stamp, self.params["frame_id"]
        self.camera_info.header.stamp = stamp
        self.image_pub.publish(image)
        self.info_pub.publish(self.camera_info)
        self.frames_published += 1


def main(args=None) -> None:
    run_node(VideoSourceNode, args)


if __name__ == "__main__":
    main()
