"""After-impact behaviour of the contact and dissipation model (issue 20): real-sized soft objects dropped from 0.3 m
with 0.5 m/s sideways, with the old model (Coulomb + inelastic contact) and with the dissipation terms of
ContactSettings at a few settings. Prints bounce height / size, roll-out distance / size (final centroid from where
it landed), settling time, the substep count each needs for stability, the change when the substeps double, and the
wall time per frame (real time is 1/30 s). With data/cross_engine present, also the same figures of its clips.

    python benchmarks/contact_dissipation.py [--frames 60] [--lattice coarse]
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time

import numpy as np
import torch

from reconphys_ros.core.physics import ContactSettings, ModelBuilder, PhysicsParams, drop_state, sample_anchors, simulate
from reconphys_ros.core.physics.lattice import lattice_from_name
from reconphys_ros.core.physics.params import DAMPING_PER_MASS_PRIOR, object_size, object_volume
from training.eval_metrics import after_impact

FPS = 30.0
DROP_GAP = 0.3  # m between the object's lowest point and the ground
SIDEWAYS = 0.5  # m/s

# (name, half extents of the shape (m), ellipsoid?): 10-30 cm
OBJECTS = [("ball10", (0.05, 0.05, 0.05), True), ("ball20", (0.10, 0.10, 0.10), True),
           ("ellipsoid24", (0.12, 0.08, 0.06), True), ("box30", (0.15, 0.10, 0.075), False)]
# size-independent materials (k/m at 1 m; d/m and f the package's priors): the data generator's centre and the
# stiff end the estimator reached on the cross-engine clips
MATERIALS = {"k100": (math.log(100.0), math.log(DAMPING_PER_MASS_PRIOR), 0.5),
             "k1000": (math.log(1000.0), math.log(DAMPING_PER_MASS_PRIOR), 0.5)}
# (label, tangential, deformation, rolling damping) in 1/s at 1 m
SETTINGS = [("old", 0.0, 0.0, 0.0), ("low", 10.0, 30.0, 30.0), ("medium", 30.0, 100.0, 100.0),
            ("high", 100.0, 300.0, 300.0)]


def shape_points(half, ellipsoid: bool, seed: int = 0) -> np.ndarray:
    """(P, 3) points filling a box or an ellipsoid with these half extents."""
    pts = np.random.default_rng(seed).uniform(-1.0, 1.0, (20000, 3))
    if ellipsoid:
        pts = pts[np.linalg.norm(pts, axis=1) <= 1.0]
    return pts * np.asarray(half)


def build(name, half, ellipsoid, lattice, contact, material):
    anchors = sample_anchors(shape_points(half, ellipsoid), lattice.num_anchors, name)
    size = object_size(anchors)
    params = PhysicsParams.from_size_independent(material, size, 150.0 * object_volume(anchors))
    builder = ModelBuilder(contact=contact)
    builder.add_object(anchors, params, lattice, name)
    return builder.finalize("cpu"), size


def dropped(model, size):
    """The drop state: lowest point DROP_GAP above the ground, slightly tilted, SIDEWAYS m/s along x."""
    tilt = (math.cos(0.15), math.sin(0.15), 0.0, 0.0)
    state = drop_state(model, (0.0, 0.0, 0.0), tilt)
    state.x[:, 2] += DROP_GAP - float(state.x[:, 2].min())
    state.v[:, 0] = SIDEWAYS
    return state


def after_impact_sizes(anchors: np.ndarray, size: float, fps: float = FPS) -> dict:
    """Bounce / size, roll-out / size and settling time (s) of a trajectory (training/eval_metrics.after_impact)."""
    after = after_impact(anchors, size, fps)
    if after is None:
        return dict(bounce=float("nan"), roll=float("nan"), settle=float("nan"))
    return dict(bounce=after["bounce"] / size, roll=after["rollout"] / size, settle=after["settling"])


def run(model, state, frames, substeps):
    with torch.no_grad():
        start = time.perf_counter()
        x = simulate(model, state, frames, substeps, stability="off")
        wall = (time.perf_counter() - start) / frames
    return x.double().numpy(), wall


def simulated_rows(frames: int, lattice_name: str) -> list[dict]:
    lattice = lattice_from_name(lattice_name)
    rows = []
    for (name, half, ellipsoid), material in itertools.product(OBJECTS, MATERIALS):
        for label, tangential, deformation, rolling in SETTINGS:
            contact = ContactSettings(tangential_damping=tangential, deformation_damping=deformation,
                                      rolling_damping=rolling)
            model, size = build(name, half, ellipsoid, lattice, contact, MATERIALS[material])
            state = dropped(model, size)
            substeps = max(model.required_substeps(FPS), 20)  # the new rates add no stability limit (exponential)
            x, wall = run(model, state, frames, substeps)
            x2, _ = run(model, state, frames, 2 * substeps)
            row = dict(object=name, material=material, size=size, setting=label, substeps=substeps, wall_ms=1e3 * wall,
                       doubling_gap=float(np.linalg.norm(x2.mean(1) - x.mean(1), axis=1).max()) / size,
                       **after_impact_sizes(x, size))
            _, wall100 = run(model, state, 10, 100)  # the simulation node's default substeps
            row["wall_ms_100"] = 1e3 * wall100
            rows.append(row)
    return rows


def cross_engine_rows(root: str) -> list[dict]:
    """The true after-impact figures of the cross-engine clips (pybullet FEM soft bodies; anchors (T, N, 3))."""
    with open(os.path.join(root, "manifest.json")) as f:
        manifest = json.load(f)
    rows = []
    for entry in manifest["samples"]:
        folder = os.path.join(root, "samples", entry["sample_id"])
        anchors = np.load(os.path.join(folder, "arrays.npz"))["anchors"].astype(np.float64)
        with open(os.path.join(folder, "meta.json")) as f:
            meta = json.load(f)
        size = float(meta.get("size_m") or object_size(anchors[0]))
        rows.append(dict(sample=entry["sample_id"], motion=entry["motion"], size=size,
                         **after_impact_sizes(anchors, size, float(meta.get("fps", FPS)))))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames simulated (30 fps)")
    parser.add_argument("--lattice", default="coarse", help="lattice name (LATTICES)")
    parser.add_argument("--cross-engine", default="data/cross_engine")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    print(f"drop from {DROP_GAP} m with {SIDEWAYS} m/s sideways, {args.frames} frames at {FPS:g} fps, lattice "
          f"{args.lattice}; materials at 1 m (ln k/m, ln d/m, f): {MATERIALS}; settings (tangential, deformation, "
          "rolling damping, 1/s at 1 m): " + ", ".join(f"{s[0]} {s[1:]}" for s in SETTINGS))
    print("| object | material | size m | setting | bounce / size | roll-out / size | settling s | substeps | centroid "
          "change at 2x substeps / size | ms per frame (at substeps) | ms per frame (100 substeps) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in simulated_rows(args.frames, args.lattice):
        print(f"| {r['object']} | {r['material']} | {r['size']:.3f} | {r['setting']} | {r['bounce']:.3f} | {r['roll']:.3f} | "
              f"{r['settle']:.2f} | {r['substeps']} | {r['doubling_gap']:.4f} | {r['wall_ms']:.1f} | "
              f"{r['wall_ms_100']:.1f} |")
    if os.path.isdir(args.cross_engine):
        rows = cross_engine_rows(args.cross_engine)
        print("\ncross-engine clips (true trajectories, 30 frames = 1 s, so settling is capped by the clip):")
        print("| clip | motion | size m | bounce / size | roll-out / size | settling s |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sample']} | {r['motion']} | {r['size']:.3f} | {r['bounce']:.3f} | {r['roll']:.3f} | "
                  f"{r['settle']:.2f} |")
        for motion in ("drop", "toss"):
            pick = [r for r in rows if r["motion"] == motion and np.isfinite(r["bounce"])]
            if pick:
                print(f"| median of {len(pick)} | {motion} | | {np.median([r['bounce'] for r in pick]):.3f} | "
                      f"{np.median([r['roll'] for r in pick]):.3f} | {np.median([r['settle'] for r in pick]):.2f} |")


if __name__ == "__main__":
    main()
