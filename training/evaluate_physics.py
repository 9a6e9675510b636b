"""Physics-only (oracle) evaluation: the physics predictor and baselines given the true shape and initial state.

    reconphys-evaluate-physics --data data/test128 --out runs/eval_physics

The end-to-end evaluation of what a user runs is training/evaluate.py (reconphys-evaluate); this one isolates
the physics stage, so its figures are ORACLE figures for the rest of the pipeline.

Protocol (single input view 0, frames 0..19 observed; 0-based frame indices):
- every method gives params (or frames); params are simulated on the data set's own lattice from the true
  canonical state (anchors, Gaussians and initial velocity of frame 0: an oracle for the Gaussian predictor, which
  is not learned in this version) with the data set's substeps, bound to the Gaussians and rendered over the
  sample's background (training.data.backgrounds), so the only difference between methods is the physics;
- recon = frames 1..19, future = frames 20..29. PSNR over whole frames, PSNR inside the union of the true and the
  predicted object masks (whole-frame PSNR is dominated by background), SSIM (torchmetrics), Chamfer distance and
  EMD between predicted and true anchor positions (mean over the window's frames);
- params: MAE of m, k, d, f, k/m, d/m with the mass prior and with the true mass given; calibration = share of
  test truths inside the predicted 90% intervals of ln k/m, ln d/m, f; time per object of the predictor;
- methods: learned (the predictor), learned+refine (physics_by_simulation from the prediction), learned+check (the
  pipeline's default without `refine`: a 3-point sweep of +-0.3 in ln k/m around the prediction, no Adam), per-scene (physics_by_simulation
  from mid-range with a larger budget: our Spring-Gaus-style per-scene optimisation, one view), const-mean (the
  training set's mean params), truth-params (upper bound of this render path), hold-last-frame and first-frame
  (video baselines: frames only, no params);
- the Table 2 disentanglement case: pairs of test samples of the same object with two param sets: share of pairs
  whose predicted ln k/m orders the pair like the truth.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from reconphys_ros.core.binding import apply_binding, compute_binding
from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.images import to_uint8
from reconphys_ros.core.metrics import psnr
from reconphys_ros.core.models.physics_predictor import estimate_from_prediction, load as load_predictor
from reconphys_ros.core.models.physics_by_simulation import RefineConfig, estimate_physics
from reconphys_ros.core.physics import ModelBuilder, PhysicsParams, State, simulate
from reconphys_ros.core.physics.params import object_volume
from reconphys_ros.core.render import Camera, render_sequence
from training.data.backgrounds import render_background
from training.data.dataset import SyntheticDataset
from training.data.sample import resolve_lattice
from training.eval_metrics import (FUTURE, MOVING_WIDTH_FRACTION, PAPER_MAE, constant_size_independent, interval_coverage,
                                   window_metrics)
from training.rollout import initial_velocities

RECON = slice(1, 20)  # this protocol scores the re-simulated frames after the given frame 0
PARAM_KEYS = ("mass", "stiffness", "damping", "friction", "stiffness_per_mass", "damping_per_mass")
# learned+check: a 3-point simulation check around the learned guess (the pipeline's default before v7; it now
# uses the prediction as it is, kept here for comparison)
PIPELINE_CHECK = RefineConfig(sweep_points=3, sweep_span=0.3, max_adam_steps=0)


# simulation + rendering of one sample ---------------------------------------------------------------------------
class SampleRenderer:
    """Simulate a sample's object with given params from its true frame-0 state and render view 0 over its
    background (the data generator's own path, so truth params reproduce the clip)."""

    def __init__(self, item: dict, meta: dict, device: str = "cpu"):
        self.meta, self.device = meta, device
        self.anchors0 = item["anchors"][0].numpy().astype(np.float64)  # (N_A, 3)
        init = meta["initial_state"]
        self.velocity = initial_velocities(self.anchors0, self.anchors0.mean(0), init["velocity"],
                                           init["angular_velocity"])
        self.lattice = resolve_lattice(meta["lattice"]["name"])
        self.substeps = int(meta["substeps"])
        self.num_frames = item["anchors"].shape[0]
        g = item["gaussians"]
        self.cloud = GaussianCloud(item["gaussian_means"][0].float(), g["log_scales"], g["quats"], g["colors"],
                                   g["opacity_logits"]).to(device)
        H, W = item["rgb"].shape[-2:]
        self.camera = Camera(item["K"].float(), item["world_to_cam"].float(), W, H).to(device)
        self.background = render_background(meta["background"], item["K"].numpy(), item["world_to_cam"].numpy(), W, H, 0)
        rest = torch.as_tensor(self.anchors0, dtype=torch.float32, device=device)
        self.binding = compute_binding(self.cloud.means, rest, int(meta["binding"]["neighbors"]),
                                       float(meta["binding"]["power"]))
        self.rest = rest

    @torch.no_grad()
    def run(self, params: PhysicsParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> rgb (T, H, W, 3) in [0, 1], masks (T, H, W) bool, anchors (T, N_A, 3)."""
        builder = ModelBuilder()
        builder.add_object(self.anchors0, params, self.lattice, object_id=self.meta["object_id"], check_range=False)
        model = builder.finalize(self.device)
        state = State(model.rest_positions.clone(), torch.as_tensor(self.velocity, device=self.device))
        substeps = max(self.substeps, model.required_substeps(30.0))
        traj = simulate(model, state, num_frames=self.num_frames - 1, substeps=substeps, fps=30.0)
        traj = torch.cat([model.rest_positions[None], traj])  # (T, N_A, 3)
        means = apply_binding(self.binding, traj, self.rest, self.cloud.means)
        out = render_sequence(self.cloud, means, self.camera, background=(0.0, 0.0, 0.0))
        alpha = out.alpha.clamp(0, 1).cpu().numpy()
        rgb = out.rgb.cpu().numpy() + (1.0 - alpha)[..., None] * self.background
        return np.clip(rgb, 0, 1), alpha >= 0.5, traj.cpu().numpy()


def _params_row(pred: PhysicsParams, truth: PhysicsParams) -> dict:
    row = {k: abs(getattr(pred, k) - getattr(truth, k)) for k in ("mass", "stiffness", "damping", "friction")}
    row["stiffness_per_mass"] = abs(pred.stiffness_per_mass - truth.stiffness_per_mass)
    row["damping_per_mass"] = abs(pred.damping_per_mass - truth.damping_per_mass)
    row["log_kpm_abs"] = abs(math.log(pred.stiffness_per_mass / truth.stiffness_per_mass))
    return row


@dataclass
class _Tally:
    """What the evaluation collects over the samples, per method."""

    methods: list
    per_frame: dict = field(init=False)  # method -> per sample: (T,) whole-frame PSNR
    windows: dict = field(init=False)  # method -> {"recon": [...], "future": [...]} per sample window metrics
    param_rows: dict = field(default_factory=lambda: {m: [] for m in ("learned", "learned-mass-given",
                                                                       "learned+refine", "learned+check",
                                                                       "per-scene", "const-mean")})
    times: dict = field(default_factory=lambda: {m: [] for m in ("learned", "learned+refine", "learned+check",
                                                                  "per-scene")})
    pred_ratio: list = field(default_factory=list)  # per sample: predicted (ln k/m, ln d/m, f)
    pred_sigma: list = field(default_factory=list)
    true_ratio: list = field(default_factory=list)
    moving: list = field(default_factory=list)  # per sample: still moving in frames 21-30
    objects: list = field(default_factory=list)

    def __post_init__(self):
        self.per_frame = {m: [] for m in self.methods}
        self.windows = {m: {"recon": [], "future": []} for m in self.methods}


def evaluate(data: str, out: str, weights: str | None, train_root: str | None = None, split: str = "test",
             max_samples: int | None = None, per_scene_samples: int = 4, per_scene_budget_s: float = 8.0,
             refine_budget_s: float = 0.6, device: str = "cpu") -> dict:
    os.makedirs(out, exist_ok=True)
    ds = SyntheticDataset(data, split, views=0, with_depth=False)
    count = len(ds) if max_samples is None else min(len(ds), max_samples)
    predictor = load_predictor(weights, device) if weights else None
    const = constant_size_independent(train_root)
    methods = ["truth-params", "const-mean", "hold-last-frame", "first-frame"]
    if predictor is not None:
        methods[1:1] = ["learned", "learned+refine", "learned+check"]
    methods.append("per-scene")
    tally = _Tally(methods)
    for i in range(count):
        item, meta = ds[i], ds.meta(i)
        truth = PhysicsParams.from_dict(meta["params"])
        size = float(item["object_size"])
        volume = object_volume(item["anchors"][0].numpy())
        true_rgb = item["rgb"].permute(0, 2, 3, 1).numpy()  # (T, H, W, 3)
        true_mask = item["mask"][:, 0].numpy()
        masks_u8 = true_mask[:20].astype(np.uint8) * 255
        renderer = SampleRenderer(item, meta, device)
        # "still moving": the mean anchor moves > 1/64 of the image width per frame in frames 21-30 (1 px at 64²)
        tally.moving.append(meta["stats"]["late_motion_px_per_frame"] > meta["width"] / MOVING_WIDTH_FRACTION)
        tally.objects.append(meta["object_id"])
        candidates: dict[str, PhysicsParams] = {
            "truth-params": truth, "const-mean": PhysicsParams.from_size_independent(const, size, truth.total_mass)}
        if predictor is not None:
            candidates |= _learned_candidates(predictor, renderer, meta, truth, to_uint8(true_rgb[:20]), masks_u8,
                                              refine_budget_s, device, tally, size, volume)
        if i < per_scene_samples:
            candidates["per-scene"] = _per_scene_candidate(renderer, meta, masks_u8, per_scene_budget_s, device,
                                                           tally)
        for name, params in candidates.items():
            _score_params(name, params, truth, renderer, true_rgb, true_mask, item["anchors"].numpy(), tally)
        _score_video_baselines(true_rgb, true_mask, tally)
        print(f"[{i + 1}/{count}] {meta['sample_id']}", flush=True)

    summary = _summary(tally, count, per_scene_samples)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown_table(summary))
    _plots(out, tally.per_frame, tally.pred_ratio, tally.true_ratio)
    return summary


def _learned_candidates(predictor, renderer: SampleRenderer, meta: dict, truth: PhysicsParams,
                        frames_u8: np.ndarray, masks_u8: np.ndarray, refine_budget_s: float, device: str,
                        tally: _Tally, size: float, volume: float) -> dict:
    """The predictor's params, refined (learned+refine) and checked (learned+check); records times, the
    mass-given row and the ratios for calibration."""
    tick = time.perf_counter()
    mean, sigma = predictor.predict_raw(frames_u8, masks_u8, size, float(meta.get("fps", 30.0)))
    estimate = estimate_from_prediction(mean, sigma, size, volume)
    tally.times["learned"].append(time.perf_counter() - tick)
    tally.param_rows["learned-mass-given"].append(
        _params_row(estimate_from_prediction(mean, sigma, size, volume, truth.total_mass).params, truth))
    tally.pred_ratio.append(mean)  # size-independent, as the truth below
    tally.pred_sigma.append(sigma)
    tally.true_ratio.append(truth.size_independent(size))
    candidates = {"learned": estimate.params}
    refine = RefineConfig(budget_s=refine_budget_s)
    for name, config in (("learned+refine", refine), ("learned+check", PIPELINE_CHECK)):
        tick = time.perf_counter()
        result = estimate_physics(renderer.cloud, masks_u8, renderer.camera, meta["object_id"],
                                  renderer.velocity.mean(0), initial_guess=estimate.params, config=config,
                                  device=device, size=size, volume=volume)
        tally.times[name].append(time.perf_counter() - tick + tally.times["learned"][-1])
        candidates[name] = result.estimate.params
    return candidates


def _per_scene_candidate(renderer: SampleRenderer, meta: dict, masks_u8: np.ndarray, budget_s: float, device: str,
                         tally: _Tally) -> PhysicsParams:
    """physics_by_simulation from mid-range with a larger budget: the per-scene optimisation baseline."""
    tick = time.perf_counter()
    result = estimate_physics(renderer.cloud, masks_u8, renderer.camera, meta["object_id"], renderer.velocity.mean(0),
                              device=device, config=RefineConfig(budget_s=budget_s, sweep_points=17,
                                                                 max_adam_steps=40))
    tally.times["per-scene"].append(time.perf_counter() - tick)
    return result.estimate.params


def _score_params(name: str, params: PhysicsParams, truth: PhysicsParams, renderer: SampleRenderer,
                  true_rgb: np.ndarray, true_mask: np.ndarray, true_anchors: np.ndarray, tally: _Tally) -> None:
    """Simulate and render one method's params; its per-frame PSNR, window metrics and param errors."""
    rgb, mask, anchors = renderer.run(params)
    tally.per_frame[name].append([psnr(rgb[t], true_rgb[t]) for t in range(len(rgb))])
    for win, sl in (("recon", RECON), ("future", FUTURE)):
        tally.windows[name][win].append(window_metrics(rgb[sl], true_rgb[sl], mask[sl], true_mask[sl], anchors[sl],
                                                       true_anchors[sl]))
    if name in tally.param_rows:
        tally.param_rows[name].append(_params_row(params, truth))


def _score_video_baselines(true_rgb: np.ndarray, true_mask: np.ndarray, tally: _Tally) -> None:
    """hold-last-frame (frame 20 repeated; scored on the future only) and first-frame: frames, no params."""
    for name, source in (("hold-last-frame", 19), ("first-frame", 0)):
        rgb = np.repeat(true_rgb[source][None], len(true_rgb), 0)
        mask = np.repeat(true_mask[source][None], len(true_mask), 0)
        tally.per_frame[name].append([psnr(rgb[t], true_rgb[t]) for t in range(len(rgb))])
        for win, sl in (("recon", RECON), ("future", FUTURE)):
            if name == "hold-last-frame" and win == "recon":
                continue  # the observed frames themselves: not a prediction
            tally.windows[name][win].append(window_metrics(rgb[sl], true_rgb[sl], mask[sl], true_mask[sl]))


def _method_entry(windows: dict, moving: np.ndarray, count: int, per_scene_samples: int) -> dict:
    """One method's mean window metrics, its moving-clip means and its means on the per-scene baseline's clips."""
    entry = {}
    for win in ("recon", "future"):
        rows = windows[win]
        if not rows:
            continue
        for key in rows[0]:
            entry[f"{win}_{key}"] = float(np.mean([r[key] for r in rows]))
        if win == "future" and len(rows) == count and moving.any():
            entry["future_psnr_moving"] = float(np.mean([r["psnr"] for r, mv in zip(rows, moving) if mv]))
            entry["future_psnr_object_moving"] = float(np.mean([r["psnr_object"] for r, mv in zip(rows, moving) if mv]))
        if win == "future" and len(rows) == count and per_scene_samples > 0:
            # the same clips as the (slow) per-scene baseline, for a paired comparison
            paired = rows[:per_scene_samples]
            entry["future_psnr_per_scene_clips"] = float(np.mean([r["psnr"] for r in paired]))
            entry["future_psnr_object_per_scene_clips"] = float(np.mean([r["psnr_object"] for r in paired]))
    entry["n"] = len(windows["future"])
    return entry


def _summary(tally: _Tally, count: int, per_scene_samples: int) -> dict:
    moving = np.asarray(tally.moving)
    summary = {"samples": count, "moving_samples": int(moving.sum()), "methods": {}, "params": {}, "time_s": {}}
    for name in tally.methods:
        summary["methods"][name] = _method_entry(tally.windows[name], moving, count, per_scene_samples)
    for name, rows in tally.param_rows.items():
        if rows:
            summary["params"][name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} | {"n": len(rows)}
    summary["time_s"] = {k: float(np.mean(v)) for k, v in tally.times.items() if v}
    if tally.pred_ratio:
        summary |= _calibration(tally)
    return summary


def _calibration(tally: _Tally) -> dict:
    """Share of truths inside the predicted 90% intervals, and the Table 2 disentanglement pairs (same object,
    two param sets: does the predicted ln k/m order them like the truth?)."""
    pred, true = tally.pred_ratio, tally.true_ratio
    cov = interval_coverage(np.array(pred), np.array(tally.pred_sigma), np.array(true))
    pairs = {}
    for idx, obj in enumerate(tally.objects):
        pairs.setdefault(obj, []).append(idx)
    ordered = [(np.sign(pred[a][0] - pred[b][0]) == np.sign(true[a][0] - true[b][0]))
               for a, b, *_ in (v for v in pairs.values() if len(v) >= 2)]
    return {"calibration_90": dict(zip(("ln_k_per_m", "ln_d_per_m", "friction"), map(float, cov))),
            "disentanglement_pairs": {"pairs": len(ordered),
                                      "k_per_m_order_correct": float(np.mean(ordered)) if ordered else None}}


def markdown_table(summary: dict) -> str:
    lines = [f"Test samples: {summary['samples']} ({summary['moving_samples']} still moving > 1/64 of the image width "
             "per frame in frames 21-30)",
             "", "| method | n | recon PSNR | recon PSNR obj | future PSNR | future PSNR obj | future PSNR (moving) | "
             "future PSNR obj (moving) | future SSIM | future CD | future EMD |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(entry, key, fmt="{:.2f}"):
        return fmt.format(entry[key]) if key in entry else "-"

    for name, e in summary["methods"].items():
        lines.append(f"| {name} | {e['n']} | {f(e, 'recon_psnr')} | {f(e, 'recon_psnr_object')} | {f(e, 'future_psnr')} | "
                     f"{f(e, 'future_psnr_object')} | {f(e, 'future_psnr_moving')} | {f(e, 'future_psnr_object_moving')} | "
                     f"{f(e, 'future_ssim', '{:.3f}')} | "
                     f"{f(e, 'future_cd', '{:.5f}')} | {f(e, 'future_emd', '{:.4f}')} |")
    paired = {name: e for name, e in summary["methods"].items() if "future_psnr_per_scene_clips" in e}
    per_scene = summary["methods"].get("per-scene", {})
    if paired and per_scene.get("n"):
        lines += ["", f"On the per-scene baseline's {per_scene['n']} clips (paired):", "",
                  "| method | future PSNR | future PSNR obj |", "|---|---|---|"]
        lines += [f"| {name} | {e['future_psnr_per_scene_clips']:.2f} | {e['future_psnr_object_per_scene_clips']:.2f} |"
                  for name, e in paired.items()]
        lines.append(f"| per-scene | {f(per_scene, 'future_psnr')} | {f(per_scene, 'future_psnr_object')} |")
    lines += ["", "| params MAE | n | m | k | d | f | k/m | d/m | mean abs ln(k/m ratio) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, e in summary["params"].items():
        lines.append(f"| {name} | {e['n']} | {e['mass']:.3f} | {e['stiffness']:.1f} | {e['damping']:.3f} | {e['friction']:.3f} | "
                     f"{e['stiffness_per_mass']:.1f} | {e['damping_per_mass']:.3f} | {e['log_kpm_abs']:.3f} |")
    lines.append(f"| paper (Table 3) | 46 | {PAPER_MAE['mass']} | {PAPER_MAE['stiffness']} | {PAPER_MAE['damping']} | "
                 f"{PAPER_MAE['friction']} | - | - | - |")
    lines += ["", "Time per object (s): " + ", ".join(f"{k} {v:.3f}" for k, v in summary["time_s"].items())]
    if "calibration_90" in summary:
        lines.append("Share of test truths inside the predicted 90% intervals: " +
                     ", ".join(f"{k} {v:.2f}" for k, v in summary["calibration_90"].items()))
        d = summary["disentanglement_pairs"]
        lines.append(f"Disentanglement (same object, two param sets): {d['pairs']} pairs, k/m order correct in "
                     f"{d['k_per_m_order_correct']}")
    return "\n".join(lines) + "\n"


def _plots(out: str, per_frame: dict, pred_ratio: list, true_ratio: list) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in per_frame.items():
        if rows:
            ax.plot(np.arange(1, 31), np.mean(np.minimum(np.array(rows), 60.0), 0), label=name)
    ax.axvline(20.5, color="gray", ls="--")
    ax.set_xlabel("frame (1-based; 21-30 future)")
    ax.set_ylabel("PSNR (dB, capped at 60)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "psnr_per_frame.png"), dpi=100)
    plt.close(fig)
    if pred_ratio:
        p, t = np.array(pred_ratio), np.array(true_ratio)
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
        for q, (ax, label) in enumerate(zip(axes, ("ln k/m", "ln d/m", "f"))):
            ax.scatter(t[:, q], p[:, q], s=12)
            lo, hi = min(t[:, q].min(), p[:, q].min()), max(t[:, q].max(), p[:, q].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_xlabel(f"true {label}")
            ax.set_ylabel(f"predicted {label}")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "param_scatter.png"), dpi=100)
        plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="data set root holding the test split")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="runs/eval")
    parser.add_argument("--weights", default=None, help="physics predictor weights (default: the shipped ones)")
    parser.add_argument("--no-learned", action="store_true", help="baselines only")
    parser.add_argument("--train-data", default=None, help="training data root for the constant-params baseline")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--per-scene-samples", type=int, default=4, help="samples given the (slow) per-scene baseline")
    parser.add_argument("--per-scene-budget", type=float, default=8.0, help="seconds per sample for per-scene")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    weights = None
    if not args.no_learned:
        from reconphys_ros.core.models.predictors import default_weights_dir

        weights = args.weights or os.path.join(default_weights_dir(), "physics_predictor.pt")
    summary = evaluate(args.data, args.out, weights, args.train_data, args.split, args.max_samples,
                       args.per_scene_samples, args.per_scene_budget, device=args.device)
    print(markdown_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
