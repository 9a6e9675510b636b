"""Mapping error of a coarse lattice against the reference lattice on drops, and the fit of its
per-lattice stiffness correction. Run `python -m reconphys_ros.core.physics.calibration` to refit."""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from .anchors import sample_anchors
from .control import drop_state
from .integrator import simulate
from .lattice import COARSE_LATTICE, MEDIUM_LATTICE, REFERENCE_LATTICE, LatticeConfig, estimate_reference_r2_sum
from .model import ModelBuilder
from .params import PhysicsParams

# Parameter sets spanning the paper ranges (k/m from 5 to 6000 1/s^2 is not all useful: very soft objects
# collapse on both lattices alike; these cover soft to stiff and low to high damping and friction).
CALIBRATION_PARAMS = [
    PhysicsParams(1.0, 100.0, 0.5, 0.5),
    PhysicsParams(2.0, 1200.0, 5.0, 0.2),
    PhysicsParams(0.5, 300.0, 0.3, 0.8),
    PhysicsParams(4.0, 600.0, 2.0, 0.0),
]


def calibration_object(size: float = 0.4, seed: int = 0) -> np.ndarray:
    """Points filling a box of the given longest side (2:1.5:1 proportions). (M, 3)."""
    rng = np.random.default_rng(seed)
    half = np.array([0.5, 0.375, 0.25]) * size
    return rng.uniform(-half, half, size=(20000, 3))


def drop_trajectory(points, object_id: str, params: PhysicsParams, lattice: LatticeConfig, num_frames: int = 30,
                    substeps: int = 100, height: float = 0.35, device: str = "cpu") -> np.ndarray:
    """Anchor positions (T, N_A, 3) of the object dropped with a tilt from `height` (centroid)."""
    anchors = sample_anchors(points, lattice.num_anchors, object_id)
    builder = ModelBuilder()
    builder.add_object(anchors, params, lattice, object_id)
    model = builder.finalize(device)
    tilt = np.array([np.cos(0.2), np.sin(0.2), 0.0, 0.0])
    state = drop_state(model, (0.0, 0.0, height), tilt)
    state.v[:, 0] = 0.5  # some sliding so friction matters
    with torch.no_grad():
        return simulate(model, state, num_frames, substeps).cpu().numpy()


def trajectory_error(reference: np.ndarray, other: np.ndarray) -> float:
    """Max over frames of centroid and bounding-box corner differences, relative to the object size."""
    size = float(np.max(reference[0].max(0) - reference[0].min(0)))
    centroid = np.abs(reference.mean(1) - other.mean(1)).max()
    lo = np.abs(reference.min(1) - other.min(1)).max()
    hi = np.abs(reference.max(1) - other.max(1)).max()
    return float(max(centroid, lo, hi) / size)


def fit_correction(lattice: LatticeConfig, corrections=(0.6, 0.8, 1.0, 1.25, 1.5), params_list=None,
                   objects=(("calib_box", 0.4),), verbose: bool = True, substeps: int = 100):
    """Grid-search the stiffness/damping correction of `lattice` minimising the mean drop error."""
    params_list = params_list or CALIBRATION_PARAMS
    refs = []
    for name, size in objects:
        pts = calibration_object(size)
        for p in params_list:
            refs.append((pts, name, p, drop_trajectory(pts, name, p, REFERENCE_LATTICE, substeps=substeps)))
    table = {}
    for c in corrections:
        lat = replace(lattice, stiffness_correction=c, damping_correction=c)
        errs = [trajectory_error(ref, drop_trajectory(pts, name, p, lat, substeps=substeps)) for pts, name, p, ref in refs]
        table[c] = errs
        if verbose:
            print(f"{lattice.name} correction {c:.3f}: mean err {np.mean(errs):.4f} max {np.max(errs):.4f} {np.round(errs, 4)}")
    best = min(table, key=lambda c: np.mean(table[c]))
    return best, table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lattice", default="coarse", choices=["coarse", "medium"])
    parser.add_argument("--corrections", default="0.6,0.8,1.0,1.25,1.5")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    lattice = COARSE_LATTICE if args.lattice == "coarse" else MEDIUM_LATTICE
    best, table = fit_correction(replace(lattice, stiffness_correction=1.0, damping_correction=1.0),
                                 [float(c) for c in args.corrections.split(",")])
    print(f"best correction for {lattice.name}: {best} (mean error {np.mean(table[best]):.4f})")


if __name__ == "__main__":
    main()
