"""Recorded rosbag2 bags (camera + mask, optionally camera info / pose / physics) -> training clips in the data set
format of training/data/storage.py, readable by SyntheticDataset.

Images and masks pair by header stamp; a DropDetector (the one the reconstruction node uses) cuts each drop into a
clip of `num_frames` frames. A clip has one view; the arrays the simulator writes for synthetic samples (anchor and
Gaussian trajectories, rest Gaussians) are empty, and params are the PhysicsParams the pipeline published for that
drop when the bag has them (else NaN, meta["params_known"] = false): such clips serve the self-supervised
(photometric / silhouette) losses.

    python -m training.data.from_bags bags/reconphys_2025... --out data/from_bags --split train

Camera geometry is checked: each clip takes the camera info and camera pose in force at its first frame (the newest
received before it; else the first received before its last frame, as a latched pose delivered a moment after the
images). A bag without any camera pose is an error unless `--camera-pose X Y Z QW QX QY QZ` supplies one (never a
silent identity). A message that cannot be read (a truncated image, NaN or zero-quaternion pose, a K that is no
plausible pinhole matrix) is skipped with a warning naming the bag, topic and time, and the count is reported at
the end; so is a clip without usable geometry.

A bag whose writer was killed (SIGKILL, power loss) has no metadata.yaml and no MCAP footer; `--recover` rewrites
every complete chunk of it into a new, closed bag (the messages of the last, unfinished chunk are lost):

    python -m training.data.from_bags bags/reconphys_2025.../part_000 --recover --out bags/recovered
"""
from __future__ import annotations

import argparse
import bisect
import logging
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.highlevel.anyreader import AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer

from reconphys_ros.bags import make_typestore
from reconphys_ros.core.clip_timing import evenly_spaced
from reconphys_ros.core.drop_detector import DropDetector
from reconphys_ros.core.geometry import check_rigid_transform, pose_matrix
from reconphys_ros.core.images import image_to_numpy
from reconphys_ros.core.physics.params import REFERENCE_NUM_ANCHORS
from reconphys_ros.core.render.camera import check_intrinsics
from training.data.dataset import GAUSSIAN_FIELDS, PARAM_ORDER
from training.data.storage import MANIFEST_FILE, write_json, write_sample

LOG = logging.getLogger("reconphys-from-bags")
DEFAULT_TOPICS = {"image": "/camera/image_raw", "mask": "/mask", "camera_info": "/camera/camera_info",
                  "pose": "/camera/pose", "physics": "/physics"}


@dataclass
class BagClip:
    images: np.ndarray  # (T, H, W, 3) uint8
    masks: np.ndarray  # (T, H, W) uint8
    stamps: np.ndarray  # (T,) s of the frame in each slot (a dropped frame's slot repeats its neighbour)
    K: np.ndarray  # (3, 3)
    world_to_cam: np.ndarray  # (4, 4)
    params: dict | None = None  # {"params": paper m, k, d, f, "object_size": m} of the pipeline's estimate, if any
    source: str = ""
    fps: float = 30.0  # the clip's evenly spaced frame rate (a faster camera strided to 30 Hz)


@dataclass
class _Recording:
    frames: list = field(default_factory=list)  # (stamp_s, image, mask)
    frame_times: dict = field(default_factory=dict)  # image stamp s -> receive time s (bag log time)
    cameras: list = field(default_factory=list)  # (receive time s, K (3, 3)), in receive order
    poses: list = field(default_factory=list)  # (receive time s, world_to_cam (4, 4)), in receive order
    physics: list = field(default_factory=list)  # (receive time s, params dict)
    skipped: list = field(default_factory=list)  # why each unusable message or clip was skipped

    def skip(self, reason: str) -> None:
        LOG.warning("skipped %s", reason)
        self.skipped.append(reason)


def _bag_folders(path: Path) -> list[Path]:
    """A bag folder (has metadata.yaml) or a recording folder of split bags."""
    if (path / "metadata.yaml").is_file():
        return [path]
    parts = sorted(p.parent for p in path.glob("*/metadata.yaml"))
    unfinished = sorted(path.glob("*.mcap")) + sorted(p for p in path.glob("*/*.mcap")
                                                        if not (p.parent / "metadata.yaml").exists())
    if unfinished:  # a recorder killed before close() leaves an .mcap without metadata.yaml
        raise ValueError(f"{unfinished[0]} was never closed (its recorder was killed?); recover it with "
                         f"`python -m training.data.from_bags {unfinished[0].parent} --recover --out RECOVERED`")
    if not parts:
        raise ValueError(f"{path} is neither a rosbag2 folder (metadata.yaml) nor a folder of them")
    return parts


def _stamp(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _camera_k(msg) -> np.ndarray:
    """K of a CameraInfo message, checked as a pinhole matrix for its own image size when it states one."""
    k = np.asarray(msg.k, np.float64).reshape(3, 3)
    if msg.width > 0 and msg.height > 0:
        check_intrinsics(k, int(msg.width), int(msg.height))
    elif not np.isfinite(k).all():
        raise ValueError(f"K must be finite, got {k.tolist()}")
    return k


def _world_to_cam(msg) -> np.ndarray:
    """world -> camera of a camera/pose PoseStamped (the camera optical frame in the world)."""
    p, q = msg.pose.position, msg.pose.orientation
    return np.linalg.inv(pose_matrix([p.x, p.y, p.z], [q.w, q.x, q.y, q.z]))


def read_recording(path: str | os.PathLike, topics: dict | None = None) -> _Recording:
    """Every usable message of the bag; unreadable ones are skipped with a warning naming bag, topic and time
    (collected in `skipped`)."""
    topics = {**DEFAULT_TOPICS, **(topics or {})}
    store = make_typestore()
    rec = _Recording()
    images, masks = {}, {}
    reader = AnyReader(_bag_folders(Path(path)), default_typestore=store)
    try:
        reader.open()
    except AnyReaderError as exc:
        raise ValueError(f"{path}: not a readable rosbag2 ({exc}); if its recorder was killed, recover it with "
                         f"`python -m training.data.from_bags {path} --recover --out RECOVERED`") from None
    try:
        wanted = [c for c in reader.connections if c.topic in topics.values()]
        for conn, timestamp, raw in reader.messages(connections=wanted):
            received = timestamp * 1e-9
            when = f"received at {received:.9f} s"
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                if hasattr(msg, "header"):
                    when = f"stamp {_stamp(msg.header):.9f} s"
                if conn.topic == topics["image"]:
                    images[_stamp(msg.header)] = (image_to_numpy(msg, encoding="rgb8"), received)
                elif conn.topic == topics["mask"]:
                    masks[_stamp(msg.header)] = image_to_numpy(msg)
                elif conn.topic == topics["camera_info"]:
                    rec.cameras.append((received, _camera_k(msg)))
                elif conn.topic == topics["pose"]:
                    rec.poses.append((received, _world_to_cam(msg)))
                elif conn.topic == topics["physics"]:
                    rec.physics.append((received, _physics_record(msg)))
            except Exception as exc:  # truncated CDR, wrong sizes, NaN geometry: all mean "skip this message"
                rec.skip(f"bag {path} topic {conn.topic} {when}: {type(exc).__name__}: {exc}")
    finally:
        reader.close()
    rec.cameras.sort(key=lambda e: e[0])
    rec.poses.sort(key=lambda e: e[0])
    rec.frames = [(s, images[s][0], masks[s]) for s in sorted(set(images) & set(masks))]
    rec.frame_times = {s: images[s][1] for s in images}
    return rec


def _in_force(entries: list, first: float, last: float):
    """The value of (receive time, value) entries in force for a clip received from `first` to `last`: the newest
    received at or before `first`, else the first received before `last` (a latched message delivered a moment
    after the first images), else None."""
    times = [t for t, _ in entries]
    i = bisect.bisect_right(times, first)
    if i > 0:
        return entries[i - 1][1]
    if entries and times[0] <= last:
        return entries[0][1]
    return None


def clips_from_bag(path: str | os.PathLike, num_frames: int = 30, topics: dict | None = None,
                   min_drop_px: float = 2.0, camera_pose=None, skipped: list | None = None) -> list[BagClip]:
    """Every drop in the bag as a clip of num_frames frames, with the camera info and pose in force at its time.

    camera_pose: (4, 4) world -> camera to use where the bag has no camera pose for a clip (None: such a bag is an
    error, and such a clip is skipped). Reasons for skipped messages and clips are logged and appended to
    `skipped`."""
    topics = {**DEFAULT_TOPICS, **(topics or {})}
    rec = read_recording(path, topics)
    if skipped is not None:
        skipped.extend(rec.skipped)
    if not rec.frames:
        raise ValueError(f"{path}: no image / mask pairs with matching stamps")
    if not rec.cameras:
        refused = [r for r in rec.skipped if f"topic {topics['camera_info']} " in r]
        raise ValueError(f"{path}: no usable camera info on {topics['camera_info']}; the clip needs intrinsics"
                         + (f" ({len(refused)} refused, the first: {refused[0]})" if refused else ""))
    if camera_pose is not None:
        camera_pose = check_rigid_transform(camera_pose, "camera_pose (world -> camera)")
    if not rec.poses and camera_pose is None:
        refused = [r for r in rec.skipped if f"topic {topics['pose']} " in r]
        raise ValueError(f"{path}: no usable camera pose on {topics['pose']}"
                         + (f" ({len(refused)} refused, the first: {refused[0]})" if refused else "")
                         + "; record it, or give the camera's pose with --camera-pose X Y Z QW QX QY QZ "
                         "(camera optical frame in the world)")

    def skip(reason: str) -> None:
        LOG.warning("skipped %s", reason)
        if skipped is not None:
            skipped.append(reason)

    detector = DropDetector(num_frames=num_frames, min_drop_px=min_drop_px)
    clips = []
    for stamp, image, mask in rec.frames:
        if mask.shape != image.shape[:2]:
            skip(f"bag {path} topic {topics['mask']} stamp {stamp:.9f} s: mask {mask.shape[::-1]} does not match "
                 f"image {image.shape[1::-1]}")
            continue
        clip = detector.feed(image, mask, stamp)
        if clip is None:
            continue
        first, last = rec.frame_times[clip.stamps[0]], rec.frame_times[clip.stamps[-1]]
        where = f"bag {path} drop clip of stamps {clip.stamps[0]:.9f}-{clip.stamps[-1]:.9f} s"
        K = _in_force(rec.cameras, first, last)
        world_to_cam = _in_force(rec.poses, first, last)
        if world_to_cam is None:
            world_to_cam = camera_pose
        if K is None or world_to_cam is None:
            skip(f"{where}: no {'camera info' if K is None else 'camera pose'} received before it")
            continue
        try:
            check_intrinsics(K, image.shape[1], image.shape[0])
        except ValueError as exc:
            skip(f"{where}: {exc}")
            continue
        # training samples are evenly spaced: a dropped frame's slot repeats its nearest neighbour
        even = evenly_spaced(clip.times, clip.rate)
        if clip.missing:
            LOG.warning("%s: %d dropped frame(s); their nearest frames stand in for them", where, clip.missing)
        clips.append(BagClip(clip.images[even], clip.masks[even], clip.stamps[even], K, world_to_cam,
                             source=str(path), fps=clip.rate))
    # the pipeline's estimate of a drop is the first physics message after the drop's 20th frame
    for i, clip in enumerate(clips):
        end = clips[i + 1].stamps[0] if i + 1 < len(clips) else np.inf
        after = [p for t, p in rec.physics if clip.stamps[min(19, len(clip.stamps) - 1)] <= t < end]
        clip.params = after[0] if after else None
    return clips


def _physics_record(msg) -> dict:
    """A PhysicsParams message -> {"params": the simulator's paper-convention params (from the SI fields that
    define the physics: total mass, k/m, d/m, friction), "object_size": m}."""
    m = float(msg.mass) / REFERENCE_NUM_ANCHORS
    params = {"mass": m, "stiffness": m * float(msg.stiffness_per_mass), "damping": m * float(msg.damping_per_mass),
              "friction": float(msg.friction)}
    return {"params": params, "object_size": float(msg.size)}


def write_clip(root: str | os.PathLike, sample_id: str, clip: BagClip, object_id: str) -> dict:
    t, h, w = clip.masks.shape
    alpha = (clip.masks > 0).astype(np.float32)[None]  # (1, T, H, W)
    arrays = {"anchors": np.zeros((t, 0, 3), np.float32), "gaussian_means": np.zeros((t, 0, 3), np.float16),
              "K": clip.K[None].astype(np.float32), "world_to_cam": clip.world_to_cam[None].astype(np.float32)}
    widths = {"means": 3, "log_scales": 3, "quats": 4, "colors": 3, "opacity_logits": 0}
    for name in GAUSSIAN_FIELDS:
        arrays["rest_" + name] = np.zeros((0, widths[name]) if widths[name] else (0,), np.float32)
    known = clip.params is not None
    params = dict(clip.params["params"]) if known else {n: float("nan") for n in PARAM_ORDER}
    meta = {"sample_id": sample_id, "object_id": object_id, "params": params, "params_known": known,
            "object_size": clip.params["object_size"] if known else None,
            "fps": float(clip.fps), "source": "rosbag",
            "bag": clip.source, "stamps": clip.stamps.tolist()}
    return write_sample(os.path.join(root, "samples", sample_id), clip.images[None].astype(np.float32) / 255.0,
                        alpha, np.zeros_like(alpha), arrays, meta)


def convert(bags: list[str], out_root: str, split: str = "train", num_frames: int = 30,
            topics: dict | None = None, camera_pose=None) -> dict:
    """Write every drop of every bag as a sample under out_root and a manifest listing them; returns it, with
    "skipped": the reasons for every message and clip skipped (each also logged as a warning)."""
    entries, skipped = [], []
    for b, bag in enumerate(bags):
        for c, clip in enumerate(clips_from_bag(bag, num_frames, topics, camera_pose=camera_pose, skipped=skipped)):
            object_id = f"bag{b:03d}_drop{c:03d}"
            sample_id = object_id
            meta = write_clip(out_root, sample_id, clip, object_id)
            entries.append({"sample_id": sample_id, "object_id": object_id, "split": split,
                            "params": meta["params"], "stats": {}})
    if not entries:
        raise ValueError(f"no drops found in {bags}" + (f" ({len(skipped)} messages or clips skipped)" if skipped else ""))
    manifest = {"format_version": 1, "source": "rosbag", "splits": {split: sorted(e["object_id"] for e in entries)},
                "samples": sorted(entries, key=lambda e: e["sample_id"]), "skipped": len(skipped)}
    write_json(os.path.join(out_root, MANIFEST_FILE), manifest)
    return dict(manifest, skipped=skipped)


_MCAP_MAGIC = b"\x89MCAP0\r\n"


def _mcap_records(data: bytes, start: int = 0):
    """(opcode, body) of every complete record from `start`; stops silently at a truncated one."""
    pos = start
    while pos + 9 <= len(data):
        op, length = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if pos + 9 + length > len(data):
            return
        yield op, data[pos + 9:pos + 9 + length]
        pos += 9 + length


def _mcap_string(body: bytes, pos: int) -> tuple[str, int]:
    n = struct.unpack_from("<I", body, pos)[0]
    return body[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def recover_bag(bag: str | os.PathLike, out: str | os.PathLike) -> dict[str, int]:
    """Rewrite the complete chunks of a killed recorder's MCAP bag (folder or .mcap file) into a closed bag at
    `out`. Returns {topic: messages recovered}. Raises ValueError naming the file when nothing is recoverable."""
    bag = Path(bag)
    files = [bag] if bag.is_file() else sorted(bag.glob("*.mcap"))
    if not files:
        raise ValueError(f"{bag}: no .mcap file to recover")
    data = files[0].read_bytes()
    if not data.startswith(_MCAP_MAGIC):
        raise ValueError(f"{files[0]}: not an MCAP file (bad magic)")
    store = make_typestore()
    schemas, channels, messages = {}, {}, []
    for op, body in _mcap_records(data, len(_MCAP_MAGIC)):
        if op != 0x06:  # only chunks hold schemas, channels and messages in rosbags' layout
            continue
        pos = 8 * 3 + 4
        compression, pos = _mcap_string(body, pos)
        size = struct.unpack_from("<Q", body, pos)[0]
        payload = body[pos + 8:pos + 8 + size]
        if compression:
            from rosbags.rosbag2.storage_mcap import DECOMPRESSORS  # rosbags' own zstd / lz4 decoders
            if compression not in DECOMPRESSORS:
                raise ValueError(f"{files[0]}: chunk compression {compression!r} is not supported")
            payload = DECOMPRESSORS[compression](payload, struct.unpack_from("<Q", body, 16)[0])
        for inner, rec in _mcap_records(payload):
            if inner == 0x03:
                sid = struct.unpack_from("<H", rec, 0)[0]
                schemas[sid] = _mcap_string(rec, 2)[0]
            elif inner == 0x04:
                cid, sid = struct.unpack_from("<HH", rec, 0)
                channels[cid] = (_mcap_string(rec, 4)[0], schemas.get(sid, ""))
            elif inner == 0x05:
                cid = struct.unpack_from("<H", rec, 0)[0]
                log_time = struct.unpack_from("<Q", rec, 6)[0]
                messages.append((cid, log_time, bytes(rec[22:])))
    if not messages:
        raise ValueError(f"{files[0]}: no complete chunk to recover (the recorder died before writing one)")
    counts: dict[str, int] = {}
    with Writer(Path(out), version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for cid, (topic, msgtype) in channels.items():
            if msgtype in store.types:
                conns[cid] = writer.add_connection(topic, msgtype, typestore=store)
        for cid, stamp, raw in messages:
            if cid in conns:
                writer.write(conns[cid], stamp, raw)
                topic = channels[cid][0]
                counts[topic] = counts.get(topic, 0) + 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bags", nargs="+", help="rosbag2 folders (or recording folders of split bags)")
    parser.add_argument("--out", required=True, help="data set root to write")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--num-frames", type=int, default=30)
    parser.add_argument("--recover", action="store_true",
                        help="rewrite the complete chunks of killed recorders' bags into closed bags under --out")
    parser.add_argument("--camera-pose", nargs=7, type=float, metavar=("X", "Y", "Z", "QW", "QX", "QY", "QZ"),
                        help="the camera optical frame's pose in the world (m, unit quaternion), for clips the bag "
                             "has no camera pose for")
    for key, topic in DEFAULT_TOPICS.items():
        parser.add_argument(f"--{key.replace('_', '-')}-topic", default=topic)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        if args.recover:
            for bag in args.bags:
                out = os.path.join(args.out, Path(bag).name)
                counts = recover_bag(bag, out)
                print(f"recovered {sum(counts.values())} messages of {bag} into {out}: {counts}")
            return 0
        camera_pose = None
        if args.camera_pose is not None:
            camera_pose = np.linalg.inv(pose_matrix(args.camera_pose[:3], args.camera_pose[3:]))
        topics = {key: getattr(args, f"{key}_topic") for key in DEFAULT_TOPICS}
        manifest = convert(args.bags, args.out, args.split, args.num_frames, topics, camera_pose)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skipped = manifest["skipped"]
    print(f"wrote {len(manifest['samples'])} clips to {args.out}"
          + (f"; skipped {len(skipped)} unusable messages or clips (warnings above)" if skipped else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
