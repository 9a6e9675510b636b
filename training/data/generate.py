"""Generate the synthetic ReconPhys data set: falling deformable objects, 4 views x 30 frames, ground truth.

Objects are real-sized (5 cm - 1 m by default), their physics drawn in the size-independent form (params.py), seen
by robot-like cameras (sample.py). generation.json holds the settings and a summary of the finished data set,
including the share of collapsed clips per size bucket (`summarize`).

Run `python -m training.data.generate --help`. See training/data/storage.py for the on-disk format and
training/data/dataset.py for the training reader.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, replace

import numpy as np

from training.data.backgrounds import BACKGROUND_KINDS
from training.data.objects import SPLITS, build_catalogue
from training.data.params import ContactDampingDraw, MotionRanges
from training.data.sample import SampleConfig
from training.data.storage import (MANIFEST_FILE, META_FILE, CorruptSampleError, read_meta, verify_sample,
                                   write_json)

GENERATION_FILE = "generation.json"
PAPER_SIZES = {"train": (450, 10), "val": (24, 2), "test": (46, 2)}  # objects, samples per object
TINY_SIZES = {"train": (2, 1), "val": (0, 1), "test": (1, 1)}
TINY_CONFIG = dict(resolution=32, num_gaussians=512, lattice="tiny", substeps=30)


@dataclass(frozen=True)
class SampleTask:
    sample_id: str
    object_id: str
    split: str
    seed: int


def _sample_seed(dataset_seed: int, sample_id: str) -> int:
    from reconphys_ros.core.physics import object_seed

    return object_seed(f"{dataset_seed}/{sample_id}") % (2**31)


def plan_samples(sizes: dict, seed: int = 0, use_meshes: bool = True) -> list[SampleTask]:
    """Sample tasks for `sizes` = {split: (num_objects, samples_per_object)}; splits are disjoint by object."""
    for split in sizes:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected {SPLITS}")
    counts = {s: int(sizes.get(s, (0, 0))[0]) for s in SPLITS}
    catalogue = build_catalogue(counts["train"], counts["val"], counts["test"], use_meshes=use_meshes)
    tasks = []
    for split in SPLITS:
        per_object = int(sizes.get(split, (0, 0))[1])
        if per_object < 0:
            raise ValueError(f"samples per object must be >= 0, got {per_object} for {split}")
        for object_id in catalogue[split]:
            for k in range(per_object):
                sample_id = f"{object_id}_{k:02d}"
                tasks.append(SampleTask(sample_id, object_id, split, _sample_seed(seed, sample_id)))
    return tasks


def estimate_bytes_per_sample(config: SampleConfig) -> int:
    """Disk use of one sample (measured on 128^2 data: PNG tiles ~0.9 byte/pixel/view/frame all told)."""
    pixels = config.resolution**2 * 4 * config.num_frames
    arrays = config.num_frames * (config.num_gaussians * 6 + 512 * 12) + config.num_gaussians * 56
    return int(pixels * 0.9 + arrays * 0.9)


def _worker_init():
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)


def _run_task(args):
    root, task, config = args
    from training.data.sample import generate_sample

    sample_dir = os.path.join(root, "samples", task.sample_id)
    start = time.process_time()  # CPU time: meaningful even when other jobs share the cores
    try:
        meta = generate_sample(sample_dir, task.sample_id, task.object_id, task.split, task.seed, config)
    except Exception as exc:  # one bad sample must not stop a 3-hour run: report it at the end
        return task, None, f"{type(exc).__name__}: {exc}", time.process_time() - start
    return task, meta, None, time.process_time() - start


def check_existing(root: str, tasks: list[SampleTask]) -> tuple[list[SampleTask], list[str]]:
    """Tasks still to do and messages about corrupt samples found (which are redone)."""
    todo, corrupt = [], []
    for task in tasks:
        sample_dir = os.path.join(root, "samples", task.sample_id)
        if not os.path.exists(os.path.join(sample_dir, META_FILE)):
            todo.append(task)
            continue
        try:
            meta = verify_sample(sample_dir)
            if meta.get("seed") != task.seed:
                raise CorruptSampleError(os.path.join(sample_dir, META_FILE), "seed differs from the plan")
        except CorruptSampleError as exc:
            corrupt.append(str(exc))
            todo.append(task)
    return todo, corrupt


def write_manifest(root: str, tasks: list[SampleTask], config: SampleConfig, seed: int) -> dict:
    """manifest.json over all finished samples of the plan (sorted: the bytes depend only on the content)."""
    entries = []
    for task in sorted(tasks, key=lambda t: t.sample_id):
        sample_dir = os.path.join(root, "samples", task.sample_id)
        try:
            meta = read_meta(sample_dir)
        except CorruptSampleError:
            continue
        from training.data.storage import sha256_file

        entries.append({"sample_id": task.sample_id, "object_id": task.object_id, "split": task.split,
                        "seed": task.seed, "params": meta["params"], "object_size": meta.get("object_size"),
                        "total_mass": meta.get("total_mass"), "size_independent": meta.get("size_independent"),
                        "contact_damping": meta.get("contact_damping", 0.0),
                        "sampling": meta["initial_state"]["sampling"],
                        "lattice": meta["lattice"]["name"], "background": meta["background"]["kind"],
                        "stats": meta["stats"], "meta_sha256": sha256_file(os.path.join(sample_dir, META_FILE))})
    splits = {s: sorted({e["object_id"] for e in entries if e["split"] == s}) for s in SPLITS}
    manifest = {"format_version": 1, "seed": seed, "config": config.to_dict(), "splits": splits, "samples": entries}
    write_json(os.path.join(root, MANIFEST_FILE), manifest)
    return manifest


# Size buckets of the collapse report (m, object_size = diameter of the anchors at rest): [lo, hi)
SIZE_BUCKETS = (("<0.15 m", 0.0, 0.15), ("0.15-0.40 m", 0.15, 0.40), (">0.40 m", 0.40, float("inf")))
COLLAPSE_THRESHOLD = 0.5
COLLAPSE_CRITERION = ("collapse_ratio < 0.5: the final height is below half the height of the rest shape rigidly "
                      "fitted to the final pose (flattened beyond what a rigid rotation explains)")


def is_collapsed(stats: dict) -> bool:
    """The collapse criterion of the data set (COLLAPSE_CRITERION)."""
    return stats["collapse_ratio"] < COLLAPSE_THRESHOLD


def size_bucket(size: float) -> str:
    for name, lo, hi in SIZE_BUCKETS:
        if lo <= size < hi:
            return name
    raise ValueError(f"object size {size!r} m fits no bucket")


def collapse_by_size(entries: list[dict]) -> list[dict]:
    """Per size bucket: clips, collapsed clips and their share (None for an empty bucket)."""
    out = []
    for name, lo, hi in SIZE_BUCKETS:
        stats = [e["stats"] for e in entries if e.get("object_size") is not None and lo <= e["object_size"] < hi]
        collapsed = sum(is_collapsed(s) for s in stats)
        out.append({"bucket": name, "min_m": lo, "max_m": hi if math.isfinite(hi) else None, "samples": len(stats),
                    "collapsed": int(collapsed), "share_collapsed": collapsed / len(stats) if stats else None,
                    "share_final_height_below_half": (float(np.mean([s["final_height_ratio"] < 0.5 for s in stats]))
                                                      if stats else None)})
    return out


def summarize(manifest: dict) -> dict:
    """Deterministic summary of the finished samples (written to generation.json): collapse and late-motion shares,
    overall and per size bucket."""
    entries = manifest["samples"]
    stats = [e["stats"] for e in entries]
    if not stats:
        return {"samples": 0}
    buckets = collapse_by_size(entries)
    shares = [b["share_collapsed"] for b in buckets if b["share_collapsed"] is not None]
    return {
        "samples": len(stats),
        "share_final_height_below_half": float(np.mean([s["final_height_ratio"] < 0.5 for s in stats])),
        "share_collapsed_below_half": float(np.mean([is_collapsed(s) for s in stats])),
        "share_moving_late": float(np.mean([s["late_motion_px_per_frame"] > 1.0 for s in stats])),
        "collapse_criterion": COLLAPSE_CRITERION,
        "size_bucket_key": "object_size in meta.json: diameter of the anchors at rest (m)",
        "collapse_by_size": buckets,
        "collapse_share_spread": (max(shares) - min(shares)) if shares else None,
        "after_impact": after_impact_distribution(stats),
    }


def after_impact_distribution(stats: list[dict]) -> dict:
    """How the clips behave after the impact (issue 20: from "barely bounces" to "bouncy ball"): percentiles of the
    bounce height and roll-out (object sizes) and settling time (s), and the share of clips that barely bounce
    (< 0.05 sizes) or bounce like a ball (> 0.3 sizes). Samples written before these statistics existed are skipped."""
    landed = [s for s in stats if s.get("bounce_sizes") is not None]
    if not landed:
        return {"clips": 0}
    out = {"clips": len(landed), "share_no_impact": 1.0 - len(landed) / len(stats)}
    for key in ("bounce_sizes", "rollout_sizes", "settling_s"):
        values = np.array([s[key] for s in landed])
        out[key] = {f"p{q}": float(np.percentile(values, q)) for q in (10, 50, 90)}
    bounce = np.array([s["bounce_sizes"] for s in landed])
    out["share_barely_bouncing"] = float(np.mean(bounce < 0.05))
    out["share_bouncing_like_a_ball"] = float(np.mean(bounce > 0.3))
    return out


def generate_dataset(root: str, tasks: list[SampleTask], config: SampleConfig, seed: int = 0, workers: int = 1,
                     progress: bool = True, log=print) -> dict:
    """Generate (or resume) all tasks into `root`; returns a report dict. Never raises for a bad sample."""
    config.validate()
    os.makedirs(os.path.join(root, "samples"), exist_ok=True)
    gen_path = os.path.join(root, GENERATION_FILE)
    settings = {"seed": seed, "config": config.to_dict()}
    if os.path.exists(gen_path):
        with open(gen_path) as f:
            previous = json.load(f)
        if {k: previous.get(k) for k in settings} != json.loads(json.dumps(settings)):
            raise ValueError(f"{root} holds a data set made with other settings ({gen_path}); "
                             "use another --out folder or delete it")
    write_json(gen_path, settings)
    todo, corrupt = check_existing(root, tasks)
    for message in corrupt:
        log(f"corrupt, regenerating: {message}")
    need = estimate_bytes_per_sample(config) * len(todo)
    log(f"{len(tasks)} samples planned, {len(tasks) - len(todo)} already done, {len(todo)} to generate; "
        f"about {need / 1e9:.2f} GB of disk needed")
    failures, durations = [], []
    start = time.perf_counter()
    jobs = [(root, t, config) for t in todo]
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), disable=not progress, unit="sample", file=sys.stderr)
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            for task, meta, error, seconds in pool.imap_unordered(_run_task, jobs, chunksize=1):
                bar.update(1)
                durations.append(seconds)
                if error:
                    failures.append(f"{task.sample_id}: {error}")
    else:
        _worker_init()
        for job in jobs:
            task, meta, error, seconds = _run_task(job)
            bar.update(1)
            durations.append(seconds)
            if error:
                failures.append(f"{task.sample_id}: {error}")
    bar.close()
    elapsed = time.perf_counter() - start
    manifest = write_manifest(root, tasks, config, seed)
    report = summarize(manifest)
    write_json(gen_path, {**settings, "summary": report, "failed": sorted(failures)})  # deterministic: no timings
    report.update(generated=len(jobs) - len(failures), failed=failures, corrupt_found=corrupt, seconds=elapsed,
                  samples_per_second=(len(jobs) / elapsed) if jobs and elapsed > 0 else None,
                  cpu_seconds_per_sample=float(np.mean(durations)) if durations else None)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.data.generate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Generate the synthetic ReconPhys data set: procedural and pybullet_data objects as Gaussians, real-sized\n"
            "(longest dimension log-uniform over --size-min..--size-max, default 0.05-1.0 m), dropped or tossed and\n"
            "simulated on the chosen spring lattice, rendered from 4 orthogonal views (30 frames at 30 fps, or --fps) with RGB,\n"
            "alpha, depth, cameras, anchor and Gaussian trajectories. Splits are by object; duck and bunny are\n"
            "test only.\n"
            "\n"
            "Physics is drawn in the size-independent form: m_p, k_p, d_p log-uniform and f uniform in the paper's\n"
            "ranges (its ~1 m objects) give ln k/m, ln d/m at 1 m and f; the total mass is a density (log-uniform\n"
            "30-1200 kg/m^3) times the anchors' convex-hull volume; the simulator gets the metric params at the\n"
            "object's size L (anchor diameter): k/m = (k_p/m_p)/L, d/m = (d_p/m_p)/sqrt(L). meta.json records\n"
            "params (metric, paper convention), object_size, total_mass, density and size_independent. Substeps are\n"
            "raised per sample where stiffness needs it (small stiff objects need many).\n"
            "\n"
            "Cameras stand where a robot's would: 0.4-2.5 m away, looking down 10-50 deg (drawn per sample), 60 deg\n"
            "field of view; the distance makes the object fill a drawn 5-60 % of the image height, raised so the\n"
            "whole drop stays in view, then clamped (meta.json `cameras`). The sideways velocity has a uniform\n"
            "heading, so clips move across, towards and away from each camera (per-view velocity_towards_camera).\n"
            "\n"
            "generation.json reports the share of collapsed clips (collapse_ratio < 0.5) per size bucket\n"
            "(< 0.15 m, 0.15-0.40 m, > 0.40 m of object_size). Deterministic (same seed and flags -> identical\n"
            "files), parallel, resumable: rerun the same command to finish an interrupted run; corrupt samples are\n"
            "reported and regenerated."),
        epilog=(
            "examples:\n"
            "  python -m training.data.generate --out data/synth                 # paper-sized, 128^2\n"
            "  python -m training.data.generate --out data/big --size-min 0.5    # the pre-issue-14 sizes (0.5-1 m)\n"
            "  python -m training.data.generate --out data/small --train-objects 40 --test-objects 8\n"
            "  python -m training.data.generate --out data/hi --resolution 512 --lattice reference --device cuda\n"
            "  python -m training.data.generate --out /tmp/fixture --tiny        # seconds; test fixture\n"
            "  python -m training.data.generate --out data/synth --verify-only   # check hashes, list corrupt samples\n"
            "  python -m training.data.preview data/synth --sample <id>          # contact sheet PNG"))
    p.add_argument("--out", required=True, help="data set folder (created; resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    for split, (objects, samples) in PAPER_SIZES.items():
        p.add_argument(f"--{split}-objects", type=int, default=None, help=f"{split} objects (default {objects})")
        p.add_argument(f"--{split}-samples", type=int, default=None,
                       help=f"physics samples per {split} object (default {samples})")
    p.add_argument("--resolution", type=int, default=None, help="image size in pixels, square (default 128; paper 512)")
    p.add_argument("--frames", type=int, default=30, help="frames per clip (default 30)")
    p.add_argument("--fps", type=float, default=30.0,
                   help="camera frame rate, 5-500 Hz (default 30). The pipeline strides cameras faster than 30 Hz down "
                        "to 30, so the data that adds something is 15-25 Hz (issue 19.3)")
    p.add_argument("--gaussians", type=int, default=None, help="Gaussians per object (default 2048)")
    p.add_argument("--lattice", default=None, choices=["coarse", "coarse64", "medium", "reference", "tiny"],
                   help="spring lattice for simulation (default coarse: 512 anchors, K=32; coarse64: 512, K=64, closer to the reference; reference: 2048, K=256, "
                        "the paper's, for GPU; tiny: 128, K=16, test fixtures only). Parameters are always stored in the paper's convention "
                        "(metric, at the object's size) and in the size-independent form")
    p.add_argument("--substeps", type=int, default=None, help="physics substeps per frame (default 100; raised where a sample needs more for stability)")
    size_lo, size_hi = SampleConfig().size_range
    p.add_argument("--size-min", type=float, default=size_lo,
                   help=f"smallest object size in m, longest dimension, log-uniform (default {size_lo:g}; 0.5 before "
                        "issue 14)")
    p.add_argument("--size-max", type=float, default=size_hi, help=f"largest object size in m (default {size_hi:g})")
    motion = MotionRanges()
    for name, unit in (("drop_height", "gap below the object in object sizes"), ("toss_up_speed", "m/s upwards"),
                       ("sideways_speed", "object sizes per second, heading uniform over 360 deg"),
                       ("spin", "rad/s")):
        lo, hi = getattr(motion, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=float_range, default=None, metavar="MIN,MAX",
                       help=f"initial {name.replace('_', ' ')} range, {unit} (default {lo:g},{hi:g})")
    draw = ContactDampingDraw()
    p.add_argument("--contact-damping", type=float_range, default=draw.range, metavar="MIN,MAX",
                   help="size-independent contact damping after impact, 1/s at 1 m, log-uniform (default "
                        f"{draw.range[0]:g},{draw.range[1]:g}; 0,0: off, the paper's contact as in data sets made "
                        "before it existed)")
    p.add_argument("--contact-damping-off-share", type=float, default=draw.off_share,
                   help=f"share of clips with contact damping 0 (default {draw.off_share:g})")
    p.add_argument("--toss-up-probability", type=float, default=None,
                   help=f"share of clips tossed upwards (default {motion.toss_up_probability:g})")
    p.add_argument("--backgrounds", default=",".join(BACKGROUND_KINDS),
                   help=f"comma-separated background kinds drawn per sample (default {','.join(BACKGROUND_KINDS)})")
    p.add_argument("--no-meshes", action="store_true", help="procedural objects only (no pybullet_data meshes)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default: 2)")
    p.add_argument("--device", default="cpu", help="torch device for simulation and rendering (cpu or cuda)")
    p.add_argument("--tiny", action="store_true",
                   help="test fixture: 2 train + 1 test object, 1 sample each, 32^2, 512 Gaussians, tiny lattice (seconds)")
    p.add_argument("--verify-only", action="store_true", help="only check existing samples against their hashes")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def float_range(text: str) -> tuple[float, float]:
    """'MIN,MAX' -> (MIN, MAX) for argparse."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (two numbers), got {text!r}") from None
    return lo, hi


def motion_from_args(args) -> MotionRanges:
    """The default motion ranges with the ones given on the command line replaced."""
    changes = {name: getattr(args, name) for name in MotionRanges.RANGE_FIELDS if getattr(args, name) is not None}
    if args.toss_up_probability is not None:
        changes["toss_up_probability"] = args.toss_up_probability
    return replace(MotionRanges(), **changes)


def config_from_args(args) -> tuple[dict, SampleConfig]:
    base = TINY_SIZES if args.tiny else PAPER_SIZES
    sizes = {}
    for split, (objects, samples) in base.items():
        o, s = getattr(args, f"{split}_objects"), getattr(args, f"{split}_samples")
        sizes[split] = (objects if o is None else o, samples if s is None else s)
    defaults = TINY_CONFIG if args.tiny else {}
    config = SampleConfig(
        resolution=args.resolution or defaults.get("resolution", 128),
        num_frames=args.frames,
        fps=args.fps,
        num_gaussians=args.gaussians or defaults.get("num_gaussians", 2048),
        lattice=args.lattice or defaults.get("lattice", "coarse"),
        # per frame: the default keeps the 30 fps step (100 substeps per 1/30 s) at any frame rate
        substeps=args.substeps or max(1, round(defaults.get("substeps", 100) * 30.0 / args.fps)),
        size_range=(args.size_min, args.size_max),
        backgrounds=tuple(b.strip() for b in args.backgrounds.split(",") if b.strip()),
        device=args.device,
        motion=motion_from_args(args),
        contact_damping=ContactDampingDraw(tuple(args.contact_damping), args.contact_damping_off_share),
    )
    return sizes, config.validate()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        sizes, config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    tasks = plan_samples(sizes, args.seed, use_meshes=not args.no_meshes)
    if args.verify_only:
        todo, corrupt = check_existing(args.out, tasks)
        for message in corrupt:
            print(message)
        print(f"{len(tasks) - len(todo)} samples verified, {len(corrupt)} corrupt, "
              f"{len(todo) - len(corrupt)} missing")
        return 1 if corrupt else 0
    try:
        report = generate_dataset(args.out, tasks, config, args.seed, args.workers, not args.no_progress)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rate = report["samples_per_second"]
    print(f"done: {report['generated']} generated in {report['seconds']:.1f} s"
          + (f" ({rate:.3f} samples/s with {args.workers} workers at {config.resolution}^2; "
             f"{4 * config.num_frames} images per sample; {report['cpu_seconds_per_sample']:.1f} CPU s per sample)"
             if rate else ""))
    if report.get("samples"):
        print(f"share of samples whose final height < half the initial height: "
              f"{report['share_final_height_below_half']:.1%} (flattened beyond a rigid rotation: "
              f"{report['share_collapsed_below_half']:.1%})")
        print(f"share of clips moving > 1 px per frame in frames 21-30: {report['share_moving_late']:.1%}")
        print("collapsed (collapse_ratio < 0.5) per size bucket: " + ", ".join(
            f"{b['bucket']}: {b['collapsed']}/{b['samples']}"
            + (f" = {b['share_collapsed']:.0%}" if b["share_collapsed"] is not None else "")
            for b in report["collapse_by_size"]))
    for failure in report["failed"]:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
