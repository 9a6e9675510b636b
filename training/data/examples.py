"""Build the example clips shipped in reconphys_ros/examples/ (used by the demo and the ROS node tests).

    python -m training.data.examples            # rewrites reconphys_ros/examples/<name>/ (deterministic)

Each clip is one sample in the data set's folder format: a test-split object (never seen in training)
dropped onto a checkered ground plane, 30 frames at 128^2 from 4 orthogonal views (view 0 is the
single fixed camera the demo plays), with ground-truth params, masks, depth and trajectories.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from reconphys_ros.core.files import package_dir
from reconphys_ros.core.physics import PhysicsParams
from training.data.objects import split_of
from training.data.params import PARAM_SAMPLING, SampleChoices
from training.data.sample import SampleConfig, generate_sample

EXAMPLES_DIR = str(package_dir("examples"))
GROUND = {"kind": "ground", "seed": 0, "color_a": [0.82, 0.8, 0.74], "color_b": [0.55, 0.53, 0.5],
          "sky": [0.78, 0.85, 0.93], "tile": 0.25}
# name -> (object id, params (paper convention), drop gap m, velocity m/s, spin rad/s, orientation wxyz)
EXAMPLE_CLIPS = {
    "falling_cylinder": ("proc-cylinder-00059", PhysicsParams(1.0, 150.0, 0.5, 0.6), 0.35,
                         [0.25, 0.1, 0.0], [0.0, 1.5, 0.0], [0.966, 0.259, 0.0, 0.0]),
    "falling_duck": ("mesh-duck", PhysicsParams(0.5, 300.0, 1.0, 0.4), 0.3,
                     [0.0, -0.3, 0.5], [1.0, 0.0, 0.5], [0.707, 0.707, 0.0, 0.0]),
}
EXAMPLE_CONFIG = SampleConfig(resolution=128)


def build_examples(out_dir: str = EXAMPLES_DIR, names=None) -> list[str]:
    written = []
    for name in names or sorted(EXAMPLE_CLIPS):
        object_id, params, gap, velocity, spin, orientation = EXAMPLE_CLIPS[name]
        choices = SampleChoices(params=params, sampling={k: "fixed (example clip)" for k in PARAM_SAMPLING},
                                orientation=orientation, drop_gap=gap, velocity=velocity, angular_velocity=spin,
                                background=dict(GROUND))
        sample_dir = os.path.join(out_dir, name)
        if os.path.exists(sample_dir):
            shutil.rmtree(sample_dir)
        generate_sample(sample_dir, name, object_id, split_of(object_id), 0, EXAMPLE_CONFIG, choices)
        written.append(sample_dir)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.data.examples", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=EXAMPLES_DIR, help=f"output folder (default {EXAMPLES_DIR})")
    p.add_argument("names", nargs="*", help=f"clips to build (default all: {', '.join(sorted(EXAMPLE_CLIPS))})")
    args = p.parse_args(argv)
    for path in build_examples(args.out, args.names or None):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    sys.exit(main())
