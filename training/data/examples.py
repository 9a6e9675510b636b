"""Build the example clips shipped in reconphys_ros/examples/ (used by the demo and the ROS node tests).

    python -m training.data.examples            # rewrites reconphys_ros/examples/<name>/ (deterministic)

Each clip is one sample in the data set's folder format: a real-sized test-split object (20-30 cm, never seen in
training) dropped onto a checkered ground plane, 30 frames at 128^2 from 4 orthogonal robot-like views (looking down
30-35 deg, the object filling ~30% of the image height; view 0 is the single fixed camera the demo plays), with
ground-truth params, masks, depth and trajectories.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from dataclasses import dataclass

import numpy as np

from reconphys_ros.core.files import package_dir
from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.physics.params import object_size, object_volume
from training.data.objects import split_of
from training.data.params import PARAM_SAMPLING, SampleChoices
from training.data.sample import SampleConfig, _object_with_anchors, generate_sample, resolve_lattice

EXAMPLES_DIR = str(package_dir("examples"))
GROUND = {"kind": "ground", "seed": 0, "color_a": [0.82, 0.8, 0.74], "color_b": [0.55, 0.53, 0.5],
          "sky": [0.78, 0.85, 0.93], "tile": 0.1}


@dataclass(frozen=True)
class ExampleClip:
    """A hand-picked real-sized drop seen from a robot-like camera."""

    object_id: str
    size: float  # m, longest dimension
    size_independent: tuple  # k/m and d/m of the same behaviour at 1 m (1/s^2, 1/s), friction (physics/params.py)
    density: float  # kg/m^3: total mass = density x volume of the anchors
    drop_gap: float  # m between the lowest point and the ground
    velocity: tuple  # m/s
    spin: tuple  # rad/s
    orientation: tuple  # wxyz
    camera: dict  # fixed camera draw: elevation_deg, fill (share of the image height), azimuth_deg


EXAMPLE_CLIPS = {
    # a 25 cm foam cylinder tossed sideways with a slow spin
    "falling_cylinder": ExampleClip("proc-cylinder-00059", 0.25, (100.0, 0.5, 0.6), 60.0, 0.15,
                                    (0.15, 0.05, 0.0), (0.0, 1.5, 0.0), (0.966, 0.259, 0.0, 0.0),
                                    {"elevation_deg": 30.0, "fill": 0.3, "azimuth_deg": 20.0}),
    # a 22 cm plush duck dropped with a little toss
    "falling_duck": ExampleClip("mesh-duck", 0.22, (400.0, 2.0, 0.4), 100.0, 0.12, (0.0, -0.15, 0.4),
                                (1.0, 0.0, 0.5), (0.707, 0.707, 0.0, 0.0),
                                {"elevation_deg": 35.0, "fill": 0.3, "azimuth_deg": -30.0}),
}
EXAMPLE_RESOLUTION = 128


def example_params(clip: ExampleClip, config: SampleConfig) -> tuple[PhysicsParams, dict]:
    """The simulator's params of a clip (at its anchors' size and volume) and the physics record."""
    _, anchors = _object_with_anchors(clip.object_id, clip.size, config.num_gaussians,
                                      resolve_lattice(config.lattice).num_anchors)
    kpm, dpm, friction = clip.size_independent
    values = np.array([np.log(kpm), np.log(dpm), friction])
    params = PhysicsParams.from_size_independent(values, object_size(anchors), clip.density * object_volume(anchors))
    return params.validate(), {"density": clip.density, "size_independent_at_1m": list(clip.size_independent)}


def build_examples(out_dir: str = EXAMPLES_DIR, names=None) -> list[str]:
    written = []
    for name in names or sorted(EXAMPLE_CLIPS):
        clip = EXAMPLE_CLIPS[name]
        config = SampleConfig(resolution=EXAMPLE_RESOLUTION, size_range=(clip.size, clip.size))
        params, physics = example_params(clip, config)
        choices = SampleChoices(params=params, sampling={k: "fixed (example clip)" for k in PARAM_SAMPLING},
                                orientation=list(clip.orientation), drop_gap=clip.drop_gap,
                                velocity=list(clip.velocity), angular_velocity=list(clip.spin),
                                background=dict(GROUND), physics=physics, camera=dict(clip.camera))
        sample_dir = os.path.join(out_dir, name)
        if os.path.exists(sample_dir):
            shutil.rmtree(sample_dir)
        generate_sample(sample_dir, name, clip.object_id, split_of(clip.object_id), 0, config, choices)
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
