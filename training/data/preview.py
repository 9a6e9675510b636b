"""Contact sheet of one sample: rows = the 4 views, columns = frames (PNG; optional MP4 of all frames).

    python -m training.data.preview DATASET_ROOT [--sample ID] [--out sheet.png] [--every 3] [--mp4 clip.mp4]
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

from training.data.dataset import list_samples
from training.data.storage import read_meta, read_sample_frames, write_png


def contact_sheet(sample_dir: str, every: int = 3, mask_overlay: bool = False) -> np.ndarray:
    """(V*H, ceil(T/every)*W, 3) uint8 image: each row one view, each column one frame (frame number drawn)."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    meta = read_meta(sample_dir)
    rows = []
    for v in range(meta["num_views"]):
        rgb, alpha, _ = read_sample_frames(sample_dir, meta, v)
        frames = []
        for t in range(0, meta["num_frames"], every):
            tile = rgb[t].copy()
            if mask_overlay:
                edge = cv2.morphologyEx((alpha[t] >= 128).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
                tile[edge > 0] = (255, 0, 255)
            scale = max(0.3, tile.shape[0] / 256)
            cv2.putText(tile, str(t + 1), (2, int(12 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
            frames.append(tile)
        rows.append(np.concatenate(frames, axis=1))
    return np.concatenate(rows, axis=0)


def write_mp4(sample_dir: str, path: str, fps: float = 10.0) -> None:
    """The 4 views side by side over time (mp4v codec)."""
    meta = read_meta(sample_dir)
    views = [read_sample_frames(sample_dir, meta, v)[0] for v in range(meta["num_views"])]
    strip = np.concatenate(views, axis=2)  # (T, H, V*W, 3)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (strip.shape[2], strip.shape[1]))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    for frame in strip:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.data.preview", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="data set folder (with manifest.json) or a single sample folder")
    p.add_argument("--sample", default=None, help="sample id (default: the first in the manifest)")
    p.add_argument("--out", default=None, help="PNG path (default: <sample>_sheet.png in the current folder)")
    p.add_argument("--every", type=int, default=3, help="show every n-th frame (default 3)")
    p.add_argument("--mask", action="store_true", help="outline the alpha mask in magenta")
    p.add_argument("--mp4", default=None, help="also write an MP4 of the 4 views over time")
    args = p.parse_args(argv)
    if os.path.exists(os.path.join(args.root, "meta.json")):
        sample_dir = args.root
    else:
        sample_id = args.sample or list_samples(args.root)[0]["sample_id"]
        sample_dir = os.path.join(args.root, "samples", sample_id)
    name = os.path.basename(os.path.normpath(sample_dir))
    out = args.out or f"{name}_sheet.png"
    write_png(out, contact_sheet(sample_dir, args.every, args.mask))
    print(f"wrote {out}")
    if args.mp4:
        write_mp4(sample_dir, args.mp4)
        print(f"wrote {args.mp4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
