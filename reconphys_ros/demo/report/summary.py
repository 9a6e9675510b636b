"""summary.json (machine-readable) and summary.md (the same figures for people)."""
from __future__ import annotations

import json
import math
import os

__all__ = ["SUMMARY_KEYS", "write_summary", "summary_markdown"]

SUMMARY_KEYS = ("example", "object_id", "params", "latency_s", "psnr", "trajectory", "simulation", "gripper",
                "bag", "outputs", "wall_time_s", "stage_times_s")


def _finite(value):
    """JSON has no NaN / Inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _f(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}g}"


def summary_markdown(s: dict) -> str:
    p = s["params"]
    est, std, truth = p["estimate"], p["std"], p.get("truth") or {}
    lines = [f"# reconphys demo: {s['example']} ({s['object_id']})", "",
             f"Wall time {s['wall_time_s']:.1f} s. Parameters in the paper's convention (mass per anchor, k and d "
             "per spring on the 2048-anchor / K=256 reference lattice); only k/m, d/m and f are identifiable "
             f"from video (mass {'given' if p['mass_given'] else 'from the prior'}).", "",
             "| parameter | estimate | std | truth | paper range |", "| --- | --- | --- | --- | --- |"]
    for name in ("mass", "stiffness", "damping", "friction", "stiffness_per_mass", "damping_per_mass"):
        rng = p["paper_ranges"].get(name)
        lines.append(f"| {name} | {_f(est[name], 4)} | {_f(std.get(name), 3)} | {_f(truth.get(name), 4)} | "
                     f"{'' if rng is None else f'[{rng[0]:g}, {rng[1]:g}]'} |")
    ps = s["psnr"]
    lines += ["", f"Future frames ({ps['future_frames']} held back, clip frames {ps['future_range'][0]}-"
              f"{ps['future_range'][1]}): PSNR in dB, whole image / inside the object masks (true or predicted):", "",
              "| frames | method | PSNR | PSNR in mask |", "| --- | --- | --- | --- |"]
    for window in ("future", "resimulated"):
        for method, v in ps[window].items():
            lines.append(f"| {window} | {method} | {_f(v['full'], 4)} | {_f(v['in_mask'], 4)} |")
    lat = s["latency_s"]
    lines += ["", "Latency per stage (s): " + ", ".join(f"{k} {_f(v)}" for k, v in lat.items() if v is not None),
              "", f"Simulation: real-time factor {_f(s['simulation'].get('real_time_factor'))}, frame step "
              f"{_f(s['simulation'].get('step_time_ms'))} ms ({s['simulation'].get('substeps')} substeps, "
              f"{s['simulation'].get('num_anchors')} anchors, {s['simulation'].get('num_springs')} springs).",
              f"Gripper: {s['gripper'].get('commands')} commands, up to {s['gripper'].get('max_anchors_grasped')} "
              f"anchors grasped, object centroid lifted from {_f(s['gripper'].get('rest_height_m'))} m to "
              f"{_f(s['gripper'].get('max_lift_height_m'))} m while closed.",
              f"Trajectory: centroid height RMSE {_f(s['trajectory'].get('rmse_all_m'))} m over the clip, "
              f"{_f(s['trajectory'].get('rmse_future_m'))} m over the future frames.", "",
              "Stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in s["stage_times_s"].items()), "",
              "Outputs:"]
    lines += [f"- {k}: `{v}`" for k, v in s["outputs"].items() if v]
    if s.get("bag"):
        lines += ["", f"Bag: `{s['bag']['path']}` ({s['bag']['messages']} messages on {len(s['bag']['topics'])} "
                  "topics)"]
    if s.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in s["notes"]]
    return "\n".join(lines) + "\n"


def write_summary(folder: str, summary: dict) -> tuple[str, str]:
    """Writes summary.json and summary.md into `folder`; returns their paths."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(f"summary lacks {missing}")
    os.makedirs(folder, exist_ok=True)
    json_path, md_path = os.path.join(folder, "summary.json"), os.path.join(folder, "summary.md")
    with open(json_path, "w") as f:
        json.dump(_finite(summary), f, indent=1, default=float)
    with open(md_path, "w") as f:
        f.write(summary_markdown(summary))
    return json_path, md_path
