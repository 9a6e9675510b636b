"""Physics throughput per lattice: substeps/s, spring evaluations/s, real-time factor (30 fps x 100 substeps),
forward and forward+backward (best of 5 runs), Warp vs the torch reference, the forward real-time factor with the
contact damping on (its rigid-motion stage runs every substep; c = 100 1/s at 1 m) and each coarse lattice's drop
mapping error.

    .venv/bin/python benchmarks/bench_physics.py [--device cpu|cuda] [--substeps 200] [--mapping]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reconphys_ros.core.physics import (COARSE64_LATTICE, COARSE_LATTICE, MEDIUM_LATTICE, REFERENCE_LATTICE,
                                        ModelBuilder,
                                        PhysicsParams, drop_state, sample_anchors, simulate)
from reconphys_ros.core.physics.calibration import CALIBRATION_PARAMS, calibration_object, mapping_report
from reconphys_ros.core.physics.params import dissipation_from_contact_damping

REALTIME_SUBSTEPS_PER_S = 30 * 100


def timed(fn, repeats=5):
    """Best of `repeats` runs after a warm-up: on a shared machine the minimum is the reproducible figure."""
    fn()  # warm-up (kernel load, allocations)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_lattice(lattice, substeps, device, torch_ref: bool):
    pts = calibration_object()
    b = ModelBuilder()
    b.add_object(sample_anchors(pts, lattice.num_anchors, "bench"), PhysicsParams(1.0, 300.0, 1.0, 0.5), lattice, "bench")
    model = b.finalize(device)
    state = drop_state(model, (0.0, 0.0, 0.35))
    state.x, state.v = state.x.to(device), state.v.to(device)

    damped = model.with_dissipation(dissipation_from_contact_damping(100.0))

    def fwd(backend="warp", m=model):
        with torch.no_grad():
            simulate(m, state, 1, substeps, backend=backend, stability="off")
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def fwd_bwd():
        params = model.paper_params.clone().requires_grad_(True)
        simulate(model, state, 1, substeps, params=params, stability="off")[..., 2].sum().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    row = {"lattice": f"{lattice.name} {lattice.num_anchors}/{lattice.k_neighbors}", "springs": model.num_springs}
    t_f = timed(fwd) / substeps
    row["fwd substeps/s"] = 1.0 / t_f
    row["fwd Mspring/s"] = model.num_springs / t_f / 1e6
    row["fwd RTF"] = 1.0 / t_f / REALTIME_SUBSTEPS_PER_S
    row["fwd RTF damped"] = 1.0 / (timed(lambda: fwd(m=damped)) / substeps) / REALTIME_SUBSTEPS_PER_S
    t_fb = timed(fwd_bwd) / substeps
    row["fwd+bwd substeps/s"] = 1.0 / t_fb
    row["fwd+bwd RTF"] = 1.0 / t_fb / REALTIME_SUBSTEPS_PER_S
    if torch_ref:
        row["warp/torch fwd"] = timed(lambda: fwd("torch")) / substeps / t_f
    return row


def mapping_error(lattice, params_list):
    """(mean, max) ensemble drop error and the reference's mean own spread, fractions of the object size."""
    reports = mapping_report(lattice, params_list)  # reference drops cached under ~/.cache/reconphys_ros/calibration
    errs = [r.ensemble_error for r in reports]
    return float(np.mean(errs)), float(np.max(errs)), float(np.mean([r.reference_spread for r in reports]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--substeps", type=int, default=200)
    ap.add_argument("--mapping", action="store_true", help="also run reference drops for the mapping error (slow on CPU)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference lattice timing")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    lattices = [COARSE_LATTICE, COARSE64_LATTICE, MEDIUM_LATTICE] + ([] if args.no_reference else [REFERENCE_LATTICE])
    rows = [bench_lattice(lat, args.substeps if not lat.is_reference else max(args.substeps // 10, 10), args.device,
                          torch_ref=True) for lat in lattices]
    keys = list(rows[0])
    print(" | ".join(f"{k:>18}" for k in keys))
    for r in rows:
        print(" | ".join(f"{r[k]:>18.3g}" if isinstance(r[k], float) else f"{r[k]:>18}" for k in keys))
    if args.mapping:
        for lat in (COARSE_LATTICE, COARSE64_LATTICE, MEDIUM_LATTICE):
            mean, worst, spread = mapping_error(lat, CALIBRATION_PARAMS)
            print(f"mapping error {lat.name}: mean {mean:.3f}, max {worst:.3f} of object size over "
                  f"{len(CALIBRATION_PARAMS)} drops (mean of 4 anchor samplings; the reference differs from itself "
                  f"by {spread:.3f} between samplings)")


if __name__ == "__main__":
    main()
