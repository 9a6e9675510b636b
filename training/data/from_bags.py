"""Recorded rosbag2 bags (camera + mask, optionally camera info / pose / physics) -> training clips in the data set
format of training/data/storage.py, readable by SyntheticDataset.

Images and masks pair by header stamp; a DropDetector (the one the reconstruction node uses) cuts each drop into a
clip of `num_frames` frames. A clip has one view; the arrays the simulator writes for synthetic samples (anchor and
Gaussian trajectories, rest Gaussians) are empty, and params are the PhysicsParams the pipeline published for that
drop when the bag has them (else NaN, meta["params_known"] = false): such clips serve the self-supervised
(photometric / silhouette) losses.

    python -m training.data.from_bags bags/reconphys_2025... --out data/from_bags --split train
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader

from reconphys_ros.bags import make_typestore
from reconphys_ros.core.drop_detector import DropDetector
from reconphys_ros.core.physics.control import quat_to_matrix
from reconphys_ros.ros.conversions import image_to_numpy
from training.data.dataset import GAUSSIAN_FIELDS, PARAM_ORDER
from training.data.storage import MANIFEST_FILE, write_json, write_sample

DEFAULT_TOPICS = {"image": "/camera/image_raw", "mask": "/mask", "camera_info": "/camera/camera_info",
                  "pose": "/camera/pose", "physics": "/physics"}


@dataclass
class BagClip:
    images: np.ndarray  # (T, H, W, 3) uint8
    masks: np.ndarray  # (T, H, W) uint8
    stamps: np.ndarray  # (T,) s
    K: np.ndarray  # (3, 3)
    world_to_cam: np.ndarray  # (4, 4)
    params: dict | None = None  # paper m, k, d, f when the bag has the pipeline's estimate for this drop
    source: str = ""


@dataclass
class _Recording:
    frames: list = field(default_factory=list)  # (stamp_s, image, mask)
    K: np.ndarray | None = None
    world_to_cam: np.ndarray | None = None
    physics: list = field(default_factory=list)  # (receive time s, params dict)


def _bag_folders(path: Path) -> list[Path]:
    """A bag folder (has metadata.yaml) or a recording folder of split bags."""
    if (path / "metadata.yaml").is_file():
        return [path]
    parts = sorted(p.parent for p in path.glob("*/metadata.yaml"))
    if not parts:
        raise ValueError(f"{path} is neither a rosbag2 folder (metadata.yaml) nor a folder of them")
    return parts


def _stamp(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def read_recording(path: str | os.PathLike, topics: dict | None = None) -> _Recording:
    topics = {**DEFAULT_TOPICS, **(topics or {})}
    store = make_typestore()
    rec = _Recording()
    images, masks = {}, {}
    with AnyReader(_bag_folders(Path(path)), default_typestore=store) as reader:
        wanted = [c for c in reader.connections if c.topic in topics.values()]
        for conn, timestamp, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == topics["image"]:
                images[_stamp(msg.header)] = image_to_numpy(msg, encoding="rgb8")
            elif conn.topic == topics["mask"]:
                masks[_stamp(msg.header)] = image_to_numpy(msg)
            elif conn.topic == topics["camera_info"] and rec.K is None:
                rec.K = np.asarray(msg.k, np.float64).reshape(3, 3)
            elif conn.topic == topics["pose"]:
                p, q = msg.pose.position, msg.pose.orientation
                cam_to_world = np.eye(4)
                cam_to_world[:3, :3] = quat_to_matrix([q.w, q.x, q.y, q.z])
                cam_to_world[:3, 3] = [p.x, p.y, p.z]
                rec.world_to_cam = np.linalg.inv(cam_to_world)
            elif conn.topic == topics["physics"]:
                rec.physics.append((timestamp * 1e-9, {n: float(getattr(msg, n)) for n in PARAM_ORDER}))
    rec.frames = [(s, images[s], masks[s]) for s in sorted(set(images) & set(masks))]
    return rec


def clips_from_bag(path: str | os.PathLike, num_frames: int = 30, topics: dict | None = None,
                   min_drop_px: float = 2.0) -> list[BagClip]:
    """Every drop in the bag as a clip of num_frames frames."""
    rec = read_recording(path, topics)
    if not rec.frames:
        raise ValueError(f"{path}: no image / mask pairs with matching stamps")
    if rec.K is None:
        raise ValueError(f"{path}: no camera info recorded; the clip needs intrinsics")
    world_to_cam = rec.world_to_cam if rec.world_to_cam is not None else np.eye(4)
    detector = DropDetector(num_frames=num_frames, min_drop_px=min_drop_px)
    clips = []
    for stamp, image, mask in rec.frames:
        if mask.shape != image.shape[:2]:
            continue
        clip = detector.feed(image, mask, stamp)
        if clip is not None:
            clips.append(BagClip(clip.images, clip.masks, clip.stamps, rec.K, world_to_cam, source=str(path)))
    # the pipeline's estimate of a drop is the first physics message after the drop's 20th frame
    for i, clip in enumerate(clips):
        end = clips[i + 1].stamps[0] if i + 1 < len(clips) else np.inf
        after = [p for t, p in rec.physics if clip.stamps[min(19, len(clip.stamps) - 1)] <= t < end]
        clip.params = after[0] if after else None
    return clips


def write_clip(root: str | os.PathLike, sample_id: str, clip: BagClip, object_id: str) -> dict:
    t, h, w = clip.masks.shape
    alpha = (clip.masks > 0).astype(np.float32)[None]  # (1, T, H, W)
    arrays = {"anchors": np.zeros((t, 0, 3), np.float32), "gaussian_means": np.zeros((t, 0, 3), np.float16),
              "K": clip.K[None].astype(np.float32), "world_to_cam": clip.world_to_cam[None].astype(np.float32)}
    widths = {"means": 3, "log_scales": 3, "quats": 4, "colors": 3, "opacity_logits": 0}
    for name in GAUSSIAN_FIELDS:
        arrays["rest_" + name] = np.zeros((0, widths[name]) if widths[name] else (0,), np.float32)
    params = clip.params or {n: float("nan") for n in PARAM_ORDER}
    meta = {"sample_id": sample_id, "object_id": object_id, "params": params, "params_known": clip.params is not None,
            "fps": float(1.0 / np.median(np.diff(clip.stamps))) if t > 1 else 30.0, "source": "rosbag",
            "bag": clip.source, "stamps": clip.stamps.tolist()}
    return write_sample(os.path.join(root, "samples", sample_id), clip.images[None].astype(np.float32) / 255.0,
                        alpha, np.zeros_like(alpha), arrays, meta)


def convert(bags: list[str], out_root: str, split: str = "train", num_frames: int = 30,
            topics: dict | None = None) -> dict:
    """Write every drop of every bag as a sample under out_root and a manifest listing them; returns it."""
    entries = []
    for b, bag in enumerate(bags):
        for c, clip in enumerate(clips_from_bag(bag, num_frames, topics)):
            object_id = f"bag{b:03d}_drop{c:03d}"
            sample_id = object_id
            meta = write_clip(out_root, sample_id, clip, object_id)
            entries.append({"sample_id": sample_id, "object_id": object_id, "split": split,
                            "params": meta["params"], "stats": {}})
    if not entries:
        raise ValueError(f"no drops found in {bags}")
    manifest = {"format_version": 1, "source": "rosbag", "splits": {split: sorted(e["object_id"] for e in entries)},
                "samples": sorted(entries, key=lambda e: e["sample_id"])}
    write_json(os.path.join(out_root, MANIFEST_FILE), manifest)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bags", nargs="+", help="rosbag2 folders (or recording folders of split bags)")
    parser.add_argument("--out", required=True, help="data set root to write")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--num-frames", type=int, default=30)
    for key, topic in DEFAULT_TOPICS.items():
        parser.add_argument(f"--{key.replace('_', '-')}-topic", default=topic)
    args = parser.parse_args(argv)
    topics = {key: getattr(args, f"{key}_topic") for key in DEFAULT_TOPICS}
    manifest = convert(args.bags, args.out, args.split, args.num_frames, topics)
    print(f"wrote {len(manifest['samples'])} clips to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
