"""bag_recorder: records the listed topics to rosbag2 MCAP with `rosbags` (ros2 bag / rosbag2_py are not on PyPI).

Subscribes with raw=True and writes the serialized CDR bytes unchanged; the typestore (reconphys_ros.bags) embeds
the custom message definitions so `ros2 bag info` and Foxglove decode them. Topics are subscribed once a publisher
appears (a subscriber alone, e.g. the reconstruction node's on camera/pose, is not enough), with a QoS compatible
with its publishers: TRANSIENT_LOCAL when every publisher is, so latched assets and a camera pose published once are
recorded. When the publishers change so that another QoS fits (a latched publisher replaces a volatile one), the
topic is subscribed again with it; a latched message the old subscription already recorded is not written twice.
A recording is a folder <output_dir>/<prefix>_<date>/ holding one bag per split (part_000, part_001, ...), each a
complete rosbag2 that any reader opens. SIGINT / SIGTERM close the current bag properly. A write error (disk
full, storage gone) stops the recording with an error on the log and closes what it can; the node stays up, so
the rest of the graph goes on.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from datetime import datetime

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer

from reconphys_ros.bags import make_typestore
from reconphys_ros.core.asset import validate_object_id
from reconphys_ros.ros.guarded_node import GuardedNode
from reconphys_ros.ros.parameters import ParamSpec, declare_parameters
from reconphys_ros.ros.qos import recording_qos
from reconphys_ros.ros.spin import run_node

def _check_prefix(value: str) -> str | None:
    """The prefix names a folder under output_dir: a safe file name, never a path."""
    try:
        validate_object_id(value)
    except ValueError as exc:
        return f"prefix: {exc}"
    return None


NAME = "bag_recorder"
PARAMS = [
    ParamSpec("output_dir", "str", "folder that receives the recordings", read_only=True),
    ParamSpec("prefix", "str", "recording folder name prefix", read_only=True, check=_check_prefix),
    ParamSpec("topics", "str_list", "topics to record (relative names resolve in the node's namespace)",
              check=lambda v: None if v else "topics must name at least one topic", read_only=True),
    ParamSpec("split_size_mb", "float", "start a new bag after this many MB; 0 = never", 0.0, 1e6),
    ParamSpec("split_duration_s", "float", "start a new bag after this many seconds; 0 = never", 0.0, 1e7),
    ParamSpec("discovery_period_s", "float", "how often to look for publishers of the listed topics", 0.05, 60.0,
              read_only=True),
]


def message_class(type_name: str):
    """'pkg/msg/Name' -> the rclpy message class."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagRecorderNode(GuardedNode):
    def __init__(self, **node_kwargs):
        super().__init__(NAME, **node_kwargs)
        self.params = declare_parameters(self, PARAMS, NAME, on_change=self._params_changed)
        p = self.params
        self.typestore = make_typestore()
        stamp = datetime.now().strftime("%Y%m%d_%H%M%S_%f")
        self.recording_dir = os.path.join(p["output_dir"], f"{p['prefix']}_{stamp}")
        os.makedirs(self.recording_dir, exist_ok=True)
        self.topics = [self.resolve_topic_name(t) for t in p["topics"]]
        self._lock = threading.Lock()
        self._types: dict[str, str] = {}       # topic -> message type, once subscribed
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {t: 0 for t in self.topics}
        self.bag_paths: list[str] = []
        self._writer: Writer | None = None
        self.write_error: str | None = None  # why recording stopped early, if it did
        self._open_part()
        self._group = MutuallyExclusiveCallbackGroup()
        self._recording_subs = {}
        self._sub_qos: dict[str, tuple[bool, bool]] = {}  # topic -> (reliable, latched) of its subscription
        self._last_data: dict[str, bytes] = {}  # topic -> last message written
        self._skip_repeat: set[str] = set()  # re-subscribed latched topics: skip the re-delivered last message
        self.resubscriptions = 0
        self.discovery_timer = self.create_timer(p["discovery_period_s"], self.discover)
        self.discover()
        self.get_logger().info(f"recording {self.topics} to {self.recording_dir}")

    def _params_changed(self, changed: dict) -> None:
        self.params.update(changed)

    # ------------------------------------------------------------------ bag files
    def _open_part(self) -> None:
        path = os.path.join(self.recording_dir, f"part_{len(self.bag_paths):03d}")
        self._writer = None  # until the new part is open: a failed open leaves nothing half-usable behind
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        self._writer = writer
        self.bag_paths.append(path)
        self._part_bytes = 0
        self._part_start = time.monotonic()
        self._connections = {topic: self._writer.add_connection(topic, msgtype, typestore=self.typestore)
                             for topic, msgtype in self._types.items()}

    def _finish_bag(self, writer: Writer) -> bool:
        """Close a bag (index, metadata.yaml); on failure release its file and say how to recover it."""
        try:
            writer.close()
            return True
        except Exception as exc:
            with contextlib.suppress(Exception):
                writer.abort()
            self.get_logger().error(f"could not finish {self.bag_paths[-1]}: {type(exc).__name__}: {exc}; recover "
                                    f"its messages with `reconphys-from-bags {self.bag_paths[-1]} --recover --out DIR`")
            return False

    def _stop_recording(self, action: str, exc: OSError) -> None:
        """After a write error (disk full, storage gone): log it, close what can be closed, record nothing more.
        Called with self._lock held."""
        self.write_error = f"{action} failed: {type(exc).__name__}: {exc}"
        self.get_logger().error(f"stopped recording: {self.write_error}; {self.recording_dir} keeps what was "
                                f"written before ({sum(self.counts.values())} messages)")
        self.discovery_timer.cancel()  # nothing more will be recorded: stop looking for topics
        writer, self._writer = self._writer, None
        if writer is not None:
            self._finish_bag(writer)

    def _split_due(self) -> bool:
        size, duration = self.params["split_size_mb"], self.params["split_duration_s"]
        return ((size > 0 and self._part_bytes >= size * 1e6) or
                (duration > 0 and time.monotonic() - self._part_start >= duration))

    # ------------------------------------------------------------------ subscriptions
    def _publisher_qos(self, topic: str) -> tuple[bool, bool] | None:
        """(reliable, latched) that matches every current publisher of `topic`; None while it has none."""
        infos = self.get_publishers_info_by_topic(topic)
        if not infos:
            return None
        latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        return reliable, latched

    def discover(self) -> None:
        if self._writer is None:
            return  # closed, or stopped after a write error
        for topic, sub in list(self._recording_subs.items()):  # publishers changed: subscribe again to fit them
            wanted = None if sub is None else self._publisher_qos(topic)
            if wanted is not None and wanted != self._sub_qos.get(topic):
                self._subscribe(topic, self._types[topic], wanted, resubscribe=True)
        missing = [t for t in self.topics if t not in self._recording_subs]
        if not missing:
            return
        available = dict(self.get_topic_names_and_types())
        for topic in missing:
            types = available.get(topic)
            if not types:
                continue
            wanted = self._publisher_qos(topic)
            if wanted is None:
                continue  # only subscribers so far: the first publisher decides the QoS (latched or not)
            msgtype = types[0]
            try:
                message_class(msgtype)
                self.typestore.types[msgtype]  # noqa: B018 (raises KeyError for types the bag cannot describe)
            except (ImportError, AttributeError, KeyError, ValueError):
                self.get_logger().warning(f"cannot record {topic}: unknown message type {msgtype}")
                self._recording_subs[topic] = None
                continue
            with self._lock:
                if self._writer is None:
                    return  # closed, or stopped after a write error
                try:
                    self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
                except OSError as exc:
                    self._stop_recording(f"adding {topic}", exc)
                    return
                self._types[topic] = msgtype
            self._subscribe(topic, msgtype, wanted)

    def _subscribe(self, topic: str, msgtype: str, qos_flags: tuple[bool, bool], resubscribe: bool = False) -> None:
        """(Re-)subscribe `topic` with (reliable, latched) = qos_flags."""
        reliable, latched = qos_flags
        old = self._recording_subs.get(topic)
        if old is not None:
            self.destroy_subscription(old)
            self.resubscriptions += 1
        with self._lock:
            if latched and topic in self._last_data:
                self._skip_repeat.add(topic)  # the publisher re-delivers what the old subscription recorded
            else:
                self._skip_repeat.discard(topic)
        self._sub_qos[topic] = qos_flags
        self._recording_subs[topic] = self.create_subscription(
            message_class(msgtype), topic, lambda data, t=topic: self.on_message(t, data),
            recording_qos(reliable, latched), raw=True, callback_group=self._group)
        what = "re-subscribed" if resubscribe else "recording"
        self.get_logger().info(f"{what} {topic} ({msgtype}{', latched' if latched else ''}"
                               f"{'' if reliable else ', best effort'})")

    def on_message(self, topic: str, data: bytes) -> None:
        with self._lock:
            if self._writer is None:
                return  # closed, or stopped after a write error
            if topic in self._skip_repeat:
                self._skip_repeat.discard(topic)
                if data == self._last_data.get(topic):
                    return  # re-delivered by the latched publisher after a re-subscription: already in the bag
            try:
                if self._split_due():
                    self._writer.close()
                    self._open_part()
                self._writer.write(self._connections[topic], self.get_clock().now().nanoseconds, data)
            except OSError as exc:
                self._stop_recording(f"writing {topic}", exc)
                return
            self._part_bytes += len(data)
            self.counts[topic] += 1
            self._last_data[topic] = data  # (a reference) to recognise a latched re-delivery after re-subscribing

    def close(self) -> None:
        """Finish the current bag (writes its metadata.yaml); safe to call twice."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None and self._finish_bag(writer):
                self.get_logger().info(f"closed {self.bag_paths[-1]}: {sum(self.counts.values())} messages")


def main(args=None) -> None:
    run_node(BagRecorderNode, args)


if __name__ == "__main__":
    main()
