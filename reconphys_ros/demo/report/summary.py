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


def _vector(values, digits: int = 2) -> str:
    return "n/a" if values is None else "(" + ", ".join(f"{v:.{digits}f}" for v in values) + ")"


def _motion_line(motion: dict | None) -> str:
    """The fitted motion at the first observed frame against the clip's truth (when the asset carries one)."""
    if not motion:
        return "Frame-0 motion: not measured."
    est, truth = motion["estimate"], motion.get("truth") or {}
    return (f"Frame-0 motion (world, centroid): velocity {_vector(est['velocity'])} m/s (truth "
            f"{_vector(truth.get('velocity'))}), spin {_vector(est['angular_velocity'], 1)} rad/s (truth "
            f"{_vector(truth.get('angular_velocity'), 1)}), depth {_f(est.get('depth'))} m"
            f"{'' if est.get('depth_trusted') else ' (fallback)'}.")


def summary_markdown(s: dict) -> str:
    p = s["params"]
    est, truth = p["estimate"], p.get("truth") or {}
    lines = [f"# reconphys demo: {s['example']} ({s['object_id']})", "",
             f"Wall time {s['wall_time_s']:.1f} s. Physics in SI; only k/m, d/m and f are identifiable from video "
             f"(mass {'given' if p['mass_given'] else 'from a density prior times the volume'}). The size-independent "
             "values are the k/m and d/m the same behaviour would have at 1 m (the paper's ranges apply there).", "",
             "| parameter | estimate | std | truth | range |", "| --- | --- | --- | --- | --- |"]
    ranges = {"stiffness_per_mass_at_1m": "log_stiffness_per_mass", "damping_per_mass_at_1m": "log_damping_per_mass",
              "friction": "friction"}
    units = {"total_mass": "kg", "stiffness_per_mass": "1/s²", "damping_per_mass": "1/s", "size": "m",
             "stiffness_per_mass_at_1m": "1/s²", "damping_per_mass_at_1m": "1/s", "friction": "",
             "contact_damping": "1/s", "contact_damping_at_1m": "1/s"}
    for name, unit in units.items():
        key = ranges.get(name)
        rng = p.get("size_independent_ranges", {}).get(key) if key else None
        if rng is not None and key != "friction":
            rng = [math.exp(rng[0]), math.exp(rng[1])]
        lines.append(f"| {name}{f' ({unit})' if unit else ''} | {_f(est.get(name), 4)} | "
                     f"{_f(est.get(f'{name}_std'), 3)} | {_f(truth.get(name), 4)} | "
                     f"{'' if rng is None else f'[{rng[0]:.3g}, {rng[1]:.3g}]'} |")
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
              _motion_line(s.get("initial_motion")),
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
