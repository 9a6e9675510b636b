"""Segmentation cost against camera resolution: first frame (background initialisation) and later frames, for the
bounded working size (default max_side 512) and the native resolution, measured in one run.

    .venv/bin/python benchmarks/bench_segmentation.py [--sizes 640x480,1280x720,1920x1080,4000x4000]

The scene: the embedded example clip's frames (128^2) scaled up to each size; native runs above 1280x720 are
skipped (their first frame took 14.6 s at 1920x1080 and over 5 min at 4000^2 before the bound).
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from reconphys_ros.core.segment import OpenCvSegmenter
from reconphys_ros.examples import DEFAULT_EXAMPLE, load_example

NATIVE_LIMIT = 1280 * 720  # pixels: larger native runs take minutes


def time_stream(segmenter: OpenCvSegmenter, frames: list) -> tuple[float, float]:
    """-> (first frame s, median later frame s)."""
    tick = time.perf_counter()
    segmenter.segment(frames[0])
    first = time.perf_counter() - tick
    later = []
    for frame in frames[1:]:
        tick = time.perf_counter()
        segmenter.segment(frame)
        later.append(time.perf_counter() - tick)
    return first, float(np.median(later))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x480,1280x720,1920x1080,4000x4000")
    parser.add_argument("--frames", type=int, default=10, help="frames per stream (default 10)")
    args = parser.parse_args(argv)
    base = load_example(DEFAULT_EXAMPLE, views=[0])["rgb"][0][:args.frames]  # (T, 128, 128, 3) uint8
    print("| camera | bounded first frame | bounded per frame | frames/s | native first frame | native per frame | "
          "speed-up per frame |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.lower().split("x"))
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in base]
        first, per = time_stream(OpenCvSegmenter(), frames)
        native = "skipped", "skipped", "-"
        if width * height <= NATIVE_LIMIT:
            n_first, n_per = time_stream(OpenCvSegmenter(max_side=None), frames)
            native = f"{n_first:.3f} s", f"{n_per * 1e3:.1f} ms", f"{n_per / per:.1f}x"
        print(f"| {width}x{height} | {first:.3f} s | {per * 1e3:.1f} ms | {1.0 / per:.0f} | {native[0]} | {native[1]} "
              f"| {native[2]} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
