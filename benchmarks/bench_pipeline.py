"""Pipeline latency per stage (median of several runs) on a drop clip with known physics.

Usage: python benchmarks/bench_pipeline.py [--runs 3] [--refine]
Uses the synthetic ellipsoid drop (core/models/synthetic_drop.py): 30 frames of 96x96, k/m = 200 1/s^2."""
from __future__ import annotations

import argparse
import statistics

import torch

from reconphys_ros.core.models.synthetic_drop import make_drop_clip
from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.pipeline import PipelineConfig, ReconstructionPipeline


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--refine", action="store_true", help="allow Adam refinement steps")
    parser.add_argument("--budget", type=float, default=0.6, help="refine_budget_s")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    truth = PhysicsParams(1.0, 200.0, 1.0, 0.5)
    clip = make_drop_clip(truth)
    pipe = ReconstructionPipeline(PipelineConfig(refine=args.refine, refine_budget_s=args.budget))
    pipe.run(clip.frames, clip.masks, clip.camera, "warmup")  # kernel load, lazy imports
    runs = [pipe.run(clip.frames, clip.masks, clip.camera, f"bench_{i}") for i in range(args.runs)]
    print(f"pipeline latency, median of {args.runs} runs ({clip.frames.shape[2]}x{clip.frames.shape[1]}, "
          f"{pipe.config.num_frames} frames, lattice {pipe.config.lattice}, refine={args.refine})")
    print(f"{'stage':<18}{'median s':>10}{'min s':>10}")
    for stage in runs[0].timings:
        values = [r.timings[stage] for r in runs]
        print(f"{stage:<18}{statistics.median(values):>10.3f}{min(values):>10.3f}")
    p = runs[-1].asset.physics.params
    print(f"k/m estimate {p.stiffness_per_mass:.1f} (truth {truth.stiffness_per_mass:.1f}); notes: {runs[-1].notes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
