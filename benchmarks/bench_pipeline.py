"""Pipeline latency per stage (median of several runs) on a drop clip with known physics.

Usage: python benchmarks/bench_pipeline.py [--runs 3] [--refine] [--accuracy]
Uses the synthetic ellipsoid drop (core/models/synthetic_drop.py): 30 frames of 96x96, k/m = 200 1/s^2.
--accuracy also prints the k/m ratio (estimate / truth) and latency on the example clips (view 0) and synthetic
drops of k/m 100, 200, 600."""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from reconphys_ros.testing.synthetic_drop import make_drop_clip
from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.pipeline import PipelineConfig, ReconstructionPipeline


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--refine", action="store_true", help="allow Adam refinement steps")
    parser.add_argument("--budget", type=float, default=0.6, help="refine_budget_s")
    parser.add_argument("--accuracy", action="store_true", help="k/m ratios on the example clips and synthetic drops")
    parser.add_argument("--no-learned", action="store_true",
                        help="ignore shipped predictor weights (the non-learned fallback path)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    truth = PhysicsParams(1.0, 200.0, 1.0, 0.5)
    clip = make_drop_clip(truth)
    weights_dir = tempfile.mkdtemp(prefix="no_weights_") if args.no_learned else None
    pipe = ReconstructionPipeline(PipelineConfig(refine=args.refine, refine_budget_s=args.budget,
                                                 weights_dir=weights_dir))
    pipe.run(clip.frames, clip.masks, clip.camera, "warmup")  # kernel load, lazy imports
    runs = [pipe.run(clip.frames, clip.masks, clip.camera, f"bench_{i}") for i in range(args.runs)]
    learned = "learned physics + check" if pipe.physics_predictor is not None else "non-learned"
    print(f"{learned} pipeline latency, median of {args.runs} runs ({clip.frames.shape[2]}x{clip.frames.shape[1]}, "
          f"{pipe.config.num_frames} frames, lattice {pipe.config.lattice}, refine={args.refine})")
    print(f"{'stage':<18}{'median s':>10}{'min s':>10}")
    for stage in runs[0].timings:
        values = [r.timings[stage] for r in runs]
        print(f"{stage:<18}{statistics.median(values):>10.3f}{min(values):>10.3f}")
    p = runs[-1].asset.physics.params
    print(f"k/m estimate {p.stiffness_per_mass:.1f} (truth {truth.stiffness_per_mass:.1f}); notes: {runs[-1].notes}")
    if args.accuracy:
        accuracy(pipe)
    return 0


def accuracy(pipe: ReconstructionPipeline) -> None:
    import numpy as np

    from reconphys_ros.core.render import Camera
    from reconphys_ros.examples import list_examples, load_example

    cases = []
    for name in list_examples():
        clip = load_example(name, views=[0])
        camera = Camera(torch.as_tensor(clip["K"][0]), torch.as_tensor(clip["world_to_cam"][0]),
                        clip["rgb"].shape[3], clip["rgb"].shape[2])
        params = clip["params"]
        cases.append((name, clip["rgb"][0], np.where(clip["mask"][0], 255, 0).astype(np.uint8), camera,
                      params["stiffness"] / params["mass"], clip["object_id"]))
    for kpm in (100.0, 200.0, 600.0):
        drop = make_drop_clip(PhysicsParams(1.0, kpm, 1.0, 0.5))
        cases.append((f"synthetic_{int(kpm)}", drop.frames, drop.masks, drop.camera, kpm, f"synthetic_{int(kpm)}"))
    print(f"{'clip':<20}{'k/m truth':>10}{'estimate':>10}{'ratio':>8}{'total s':>9}")
    for name, frames, masks, camera, truth, object_id in cases:
        result = pipe.run(frames, masks, camera, object_id)
        kpm = result.asset.physics.params.stiffness_per_mass
        print(f"{name:<20}{truth:>10.1f}{kpm:>10.1f}{kpm / truth:>8.2f}{result.timings['total']:>9.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
