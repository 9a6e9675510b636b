"""Soak run (issue 10): the whole pipeline, composed in one process as `reconphys-launch pipeline --record
--controller` composes it, loops the example clip for a configurable time; reports RSS growth after warm-up,
dropped messages (every node's DroppedInputLog, unpaired frames, drop clips ignored while busy), bag messages lost
(camera frames published but not in the bag), errors (failed reconstructions, simulation divergences, exceptions),
throughput, drops refused, and how much k/m varies from loop to loop (every loop is the same drop: issue 19.2).

    .venv/bin/python benchmarks/soak.py                 # 10 minutes, 512^2 camera at 30 Hz
    .venv/bin/python benchmarks/soak.py --duration 30 --json soak.json

Targets (issue 10): RSS flat (<= 5 % growth after warm-up: median of the last quarter of the run against the first
quarter after warm-up), 0 errors, 0 lost bag messages.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import tempfile
import time

import rclpy
import torch
from reconphys_ros.ros.memory import limit_malloc_arenas
from reconphys_ros.ros.spin import IsolatedExecutor

from reconphys_ros.ros.graph import selected_nodes
from reconphys_ros.ros.runner import create_nodes


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def soak(duration_s: float, warmup_s: float, out_dir: str, size: int = 512, fps: float = 30.0,
         sample_s: float = 2.0) -> dict:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    entries = selected_nodes(record=True, controller=True)
    overrides = {"reconstruction": {"output_dir": f"{out_dir}/out"},
                 "bag_recorder": {"output_dir": f"{out_dir}/bags", "split_duration_s": 60.0,
                                  "topics": ["camera/image_raw", "mask", "asset", "physics", "gripper/command",
                                             "sim/status"]},
                 "video_source": {"wait_for_subscribers": 3, "fps": fps, "output_width": size,
                                  "output_height": size}}
    context = rclpy.context.Context()
    rclpy.init(context=context)
    nodes = create_nodes(entries, overrides, context)
    by_name = {n.get_name(): n for n in nodes}
    executor = IsolatedExecutor(context)
    for node in nodes:
        executor.add_node(node)
    samples, exceptions = [], []
    start = time.monotonic()
    next_sample = start
    try:
        while time.monotonic() - start < duration_s:
            try:
                executor.spin_once(timeout_sec=0.05)
            except Exception as exc:  # a callback raised: the node would have died in its own process
                exceptions.append(f"{type(exc).__name__}: {exc}")
            if time.monotonic() >= next_sample:
                samples.append((time.monotonic() - start, rss_mb()))
                next_sample += sample_s
        video, recorder = by_name["video_source"], by_name["bag_recorder"]
        video.timer.cancel()
        published = video.frames_published
        deadline = time.monotonic() + 30.0  # drain: every published frame should reach the bag
        while recorder.counts.get("/camera/image_raw", 0) < published and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        recorded = recorder.counts.get("/camera/image_raw", 0)
    finally:
        for node in nodes:
            if hasattr(node, "close"):
                node.close()
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
    rec, sim, seg = by_name["reconstruction"], by_name["simulation"], by_name["segmentation"]
    after = [r for t, r in samples if t >= warmup_s] or [samples[-1][1]]
    # Medians of the first and the last quarter after warm-up: RSS swings by +-10% as 512^2 buffers come and go,
    # so a few samples at each end would measure the swing, not a trend.
    quarter = max(1, len(after) // 4)
    base = statistics.median(after[:quarter])
    end = statistics.median(after[-quarter:])
    dropped = {name: dict(getattr(node, "dropped").counts) for name, node in by_name.items()
               if hasattr(node, "dropped") and node.dropped.counts}
    # Not failures: a drop in flight when the run ends (still busy, or abandoned by close(), which waits 0.2 s) and a
    # refusal (it has a reason; reported as drops_refused).
    failed = rec.drops_done - len(rec.latencies) - int(rec.busy) - rec.drops_abandoned - rec.drops_refused
    km = []  # k/m (1/s^2) of every asset written: the same drop in every loop
    for path in glob.glob(os.path.join(out_dir, "out", "*.json")):
        if not path.endswith(".refused.json"):
            with open(path) as f:
                km.append(float(json.load(f)["physics"]["stiffness_per_mass"]))
    return {
        "duration_s": duration_s, "warmup_s": warmup_s, "image_size": size, "fps_requested": fps,
        "frames_published": published, "masks_published": seg.masks_published,
        "fps_achieved": published / duration_s,
        "drops_reconstructed": len(rec.latencies), "drops_refused": rec.drops_refused,
        "stiffness_per_mass_over_loops": ({"median": round(statistics.median(km), 2), "min": round(min(km), 2),
                                           "max": round(max(km), 2), "assets": len(km)} if km else None),
        "median_reconstruction_latency_s": statistics.median(rec.latencies) if rec.latencies else None,
        "sim_frames_stepped": sim.frames_stepped,
        "rss_mb_after_warmup": round(base, 1), "rss_mb_end": round(end, 1),
        "rss_growth_pct": round(100.0 * (end - base) / base, 2),
        "rss_peak_mb": round(max(r for _, r in samples), 1),
        "rss_mb_every_30s": [round(r, 1) for t, r in samples[::max(1, round(30.0 / sample_s))]],
        "dropped_inputs": dropped, "unpaired_frames_dropped": rec.pairer.unpaired_dropped,
        "drop_clips_ignored_busy": rec.clips_ignored,
        "bag_frames_recorded": recorded, "bag_frames_lost": published - recorded,
        "errors": {"reconstruction_failed": failed, "sim_divergences": sim.sim.divergences if sim.sim else 0,
                   "callback_exceptions": exceptions[:10], "callback_exception_count": len(exceptions)},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds to run (default 10 min)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before RSS is the baseline "
                        "(default: 20%% of the run, at most 60 s)")
    parser.add_argument("--size", type=int, default=512, help="camera images are size x size (the 128^2 clip "
                        "resized by video_source; default 512)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate, Hz (default 30)")
    parser.add_argument("--out-dir", default=None, help="folder for outputs and bags (default: a temp folder)")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    if not args.duration > 0:
        parser.error("--duration must be > 0")
    if not (8 <= args.size <= 8192 and 0 < args.fps <= 240):
        parser.error("--size must lie in [8, 8192] and --fps in (0, 240]")
    warmup = args.warmup if args.warmup is not None else min(0.2 * args.duration, 60.0)
    limit_malloc_arenas()  # as every node process does (reconphys_ros.ros.spin)
    with tempfile.TemporaryDirectory(prefix="reconphys_soak_") as tmp:
        report = soak(args.duration, warmup, args.out_dir or tmp, args.size, args.fps)
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    errors = report["errors"]
    ok = (report["rss_growth_pct"] <= 5.0 and report["bag_frames_lost"] == 0 and errors["reconstruction_failed"] == 0
          and report["drops_refused"] == 0
          and errors["callback_exception_count"] == 0)
    print("targets met" if ok else "TARGETS MISSED (RSS <= 5 % growth, 0 errors, 0 refused drops, 0 lost bag messages)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
