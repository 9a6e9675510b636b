"""The main job: `make demo` / `reconphys-demo` / `python -m reconphys_ros.demo` runs the whole pipeline on an
embedded example clip and writes what it found.

1. plays the clip's view 0 through the REAL nodes in one process (ros/runner.py's machinery; `ros2 launch` is not
   needed): video_source -> segmentation -> reconstruction -> simulation, plus bag_recorder and the scripted
   gripper_controller, which grabs the reconstructed object once it has landed in the simulation, lifts, shakes
   and drops it through gripper/command messages;
2. records the run to an MCAP bag;
3. compares the re-simulated (frames 1-20) and predicted-future (21-30) frames with the clip's frames;
4. writes to --out: asset/ (3DGS PLY + physics JSON, from the reconstruction node), bag/, comparison_strip.png
   (+ .mp4), interaction_strip.png (+ .mp4), trajectory.png, summary.md, summary.json.
Exits non-zero with the failing stage named when a stage fails or times out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from reconphys_ros.demo.graph import DemoGraph, GraphSettings, StageFailed
from reconphys_ros.ros.memory import limit_malloc_arenas

DEFAULT_OUT = os.path.join("out", "demo")


def parse_args(argv=None) -> argparse.Namespace:
    from reconphys_ros.examples import DEFAULT_EXAMPLE, list_examples
    parser = argparse.ArgumentParser(prog="reconphys-demo", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--example", default=DEFAULT_EXAMPLE, choices=list_examples(),
                        help=f"embedded clip to play (default {DEFAULT_EXAMPLE})")
    parser.add_argument("--view", type=int, default=0, help="camera view of the clip (default 0)")
    parser.add_argument("--rate", type=float, default=15.0,
                        help="playback rate in frames/s; frames keep the clip's 30 fps timing (default 15: "
                             "2 CPU cores keep up)")
    parser.add_argument("--known-mass", type=float, default=0.0,
                        help="the object's total mass in kg when known (fixes the scale of k and d); 0 = a density prior "
                             "times the reconstructed volume (default)")
    parser.add_argument("--quick", action="store_true",
                        help="shorter gripper script, no MP4s (for tests and CI)")
    parser.add_argument("--no-bag", action="store_true", help="do not record the MCAP bag")
    parser.add_argument("--domain-id", type=int, default=None,
                        help="DDS domain of the demo's nodes (default: a private one from the process id, so "
                             "other ROS graphs on this machine neither disturb nor see the demo)")
    parser.add_argument("--stage-timeout", type=float, default=90.0,
                        help="seconds any one stage may take before the demo gives up (default 90)")
    args = parser.parse_args(argv)
    if not args.rate > 0 or args.rate > 240:
        parser.error(f"--rate must be in (0, 240], got {args.rate}")
    if args.domain_id is None:
        args.domain_id = private_domain_id()
    if not 0 <= args.domain_id <= 232:
        parser.error(f"--domain-id must lie in [0, 232] (Fast DDS ports), got {args.domain_id}")
    if not args.stage_timeout > 0:
        parser.error("--stage-timeout must be > 0")
    if args.known_mass:
        from reconphys_ros.core.physics.params import check_known_mass
        try:
            check_known_mass(args.known_mass)
        except ValueError as error:
            parser.error(f"--known-mass: {error}")
    return args


def private_domain_id() -> int:
    """A DDS domain away from the default 0, different for concurrent demos (from the process id)."""
    return 101 + os.getpid() % 100


class Progress:
    """Prints one line per stage with the time since the start."""

    def __init__(self):
        self.start = time.monotonic()
        self.stage_times: dict[str, float] = {}
        self._stage: tuple[str, float] | None = None

    def begin(self, name: str, what: str) -> None:
        self._stage = (name, time.monotonic())
        print(f"[{time.monotonic() - self.start:6.1f} s] {name}: {what}", flush=True)

    def end(self, detail: str = "") -> None:
        name, started = self._stage
        self.stage_times[name] = time.monotonic() - started
        print(f"[{time.monotonic() - self.start:6.1f} s] {name}: done in {self.stage_times[name]:.1f} s"
              + (f" - {detail}" if detail else ""), flush=True)


def sim_render_view(K: np.ndarray, world_to_cam: np.ndarray, width: int, height: int) -> dict:
    """simulation node render parameters that reproduce the clip camera (eye, optical axis, horizontal field of
    view), so sim/image frames compare with the video."""
    rot, trans = world_to_cam[:3, :3], world_to_cam[:3, 3]
    eye = -rot.T @ trans
    target = eye + rot[2] * np.linalg.norm(eye)  # any point on the optical axis
    fov = float(np.degrees(2 * np.arctan(width / (2 * K[0, 0]))))
    return {"render_camera_position": [float(v) for v in eye], "render_camera_look_at": [float(v) for v in target],
            "render_fov_deg": fov, "render_width": int(width), "render_height": int(height)}


def gripper_script(quick: bool) -> dict:
    if quick:
        return {"hold_s": 0.4, "shake_s": 1.0, "settle_speed": 0.4, "grasp_radius": 0.07}
    # The coarse lattice keeps vibrating slightly for seconds after the bounce: 0.3 m/s (max anchor speed) calls a
    # 20-30 cm example landed once the bouncing is over. A 7 cm grasp radius holds ~1/10 of its anchors.
    return {"hold_s": 0.8, "shake_s": 2.0, "settle_speed": 0.3, "grasp_radius": 0.07}


# ---------------------------------------------------------------------------------------------------- live run
def run_graph(graph: DemoGraph, progress: Progress, clip_frames: int, args) -> dict:
    """Stages over the live nodes; returns what the evaluation needs from them."""
    n = graph.nodes
    timeout = args.stage_timeout
    progress.begin("play", f"{clip_frames} frames at {args.rate:g} frames/s through video_source -> segmentation")
    graph.wait("play", lambda: n["video_source"].passes >= 1, timeout + clip_frames / args.rate,
               failed=lambda: ("segmentation refused frames: " + str(n["segmentation"].dropped.counts))
               if n["segmentation"].dropped.counts else None)
    finished = time.monotonic()
    # masks still in flight; an overloaded machine drops frames (KEEP_LAST queues): count them, do not hang
    graph.wait("play", lambda: len(graph.obs.masks) >= len(graph.obs.images) or time.monotonic() - finished > 5.0,
               timeout)
    lat = graph.obs.segmentation_latencies()
    if not lat.size:
        raise StageFailed("play", "no mask came back from the segmentation node")
    lost = clip_frames - len(graph.obs.masks)
    progress.end(f"{len(graph.obs.masks)} masks" + (f" ({lost} frames lost: lower --rate)" if lost > 0 else "")
                 + f", segmentation {1000 * float(np.median(lat)):.0f} ms per frame")

    recon = n["reconstruction"]
    progress.begin("reconstruct", "drop detection -> Gaussians + spring-mass asset + physics (reconstruction node)")
    played = time.monotonic()

    def recon_failed():
        if recon.drops_done > 0 and not recon.busy and recon.last_result is None:
            return "the pipeline raised an error (see the reconstruction log above)"
        if recon.drops_done == 0 and not recon.detector.recording and time.monotonic() - played > 10.0:
            return ("no drop was detected in the masks of the played clip "
                    f"(dropped inputs: {recon.dropped.counts or 'none'})")
        return None

    graph.wait("reconstruct", lambda: recon.last_result is not None, timeout, recon_failed)
    p = recon.last_result.asset.physics.params
    progress.end(f"{recon.last_result.asset.object_id}: m={p.mass:.3g} k={p.stiffness:.4g} d={p.damping:.3g} "
                 f"f={p.friction:.2f}, latency {recon.latencies[-1]:.2f} s")

    sim = n["simulation"]
    progress.begin("simulate", "simulation node loads the asset and drops it")
    graph.wait("simulate", lambda: sim.sim is not None and sim.frames_stepped > 0, timeout,
               failed=lambda: f"the simulation refused the asset: {sim.dropped.counts}"
               if sim.dropped.counts.get("asset") else None)
    loaded = time.monotonic()
    progress.end(f"{sim.sim.model.num_anchors} anchors, {sim.sim.model.num_springs} springs, "
                 f"{sim.sim.substeps} substeps")

    grip = n["gripper_controller"]
    progress.begin("gripper", "wait for landing, approach, grasp, lift, shake, release (gripper/command)")
    # a scripted cycle lasts seconds of real time whatever the machine (hold, shake, settle): never under a second
    graph.wait("gripper", lambda: grip.cycles >= 1, timeout,
               failed=lambda: f"the simulation diverged {sim.sim.divergences} times"
               if sim.sim.divergences > 2 else None)
    graph.spin_for(1.0 if args.quick else 2.0)  # watch it fall
    grasped = max((s.anchors_grasped for _, s in graph.obs.statuses), default=0)
    progress.end(f"{len(graph.obs.commands)} commands, up to {grasped} anchors grasped")
    return {"loaded_at": loaded, "grasped": grasped,
            "bag_paths": list(getattr(n.get("bag_recorder"), "bag_paths", []))}


# ---------------------------------------------------------------------------------------------------- evaluation
def drop_start_index(graph: DemoGraph, clip_rgb: np.ndarray, first_stamp_s: float) -> int:
    """Clip index of the reconstruction's first frame: the played image with that stamp, matched by content."""
    stamps = np.array(sorted(graph.obs.images), dtype=np.int64)
    nearest = int(stamps[np.abs(stamps - round(first_stamp_s * 1e9)).argmin()])
    image = graph.obs.images[nearest][1]
    matches = [i for i in range(len(clip_rgb)) if np.array_equal(clip_rgb[i], image)]
    if not matches:
        raise StageFailed("evaluate", "the reconstructed clip's first frame is not a frame of the example clip")
    return matches[0]


def observed_masks(graph: DemoGraph, frame_stamps: list[float]) -> np.ndarray:
    """The segmentation masks the pipeline used, (T_obs, H, W) uint8, looked up by stamp."""
    stamps = np.array(sorted(graph.obs.masks), dtype=np.int64)
    out = []
    for s in frame_stamps:
        nearest = int(stamps[np.abs(stamps - round(s * 1e9)).argmin()])
        out.append(graph.obs.masks[nearest][1])
    return np.stack(out)


def bag_contents(paths: list[str]) -> dict | None:
    from rosbags.rosbag2 import Reader
    if not paths:
        return None
    counts: dict[str, int] = {}
    for path in paths:
        with Reader(path) as reader:
            for connection in reader.connections:
                counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
    return {"path": os.path.dirname(paths[0]), "parts": paths, "messages": sum(counts.values()), "topics": counts}


def interaction_frames(graph: DemoGraph, settings: GraphSettings, loaded_at: float, count: int,
                       background: np.ndarray):
    """Up to `count` sim/image frames spread over the interaction, shown over the clip's estimated `background`
    (the render camera is the clip's) with the gripper target marked, + captions; and all frames for a video."""
    from reconphys_ros.core.render import focal_from_fov, look_at
    from reconphys_ros.demo.report.strips import draw_marker, over_background
    import torch

    rc = settings.render_camera
    camera = look_at(rc["render_camera_position"], rc["render_camera_look_at"],
                     fx=focal_from_fov(rc["render_fov_deg"], rc["render_width"]),
                     width=rc["render_width"], height=rc["render_height"])
    commands = graph.obs.commands
    marked, captions = [], []
    for arrival, image in graph.obs.sim_images:
        if arrival < loaded_at:
            continue
        before = [c for c in commands if c[0] <= arrival]
        caption = f"t={arrival - loaded_at:4.1f}s"
        image = over_background(image, background)
        if before:
            _, position, closed = before[-1]
            uv, depth = camera.project(torch.as_tensor(position, dtype=torch.float32))
            if float(depth) > 0:
                image = draw_marker(image, uv.numpy(), closed)
            caption += " closed" if closed else " open"
        else:
            caption += " falling"
        marked.append(image)
        captions.append(caption)
    if not marked:
        raise StageFailed("report", "no sim/image frame arrived after the asset loaded")
    picks = np.unique(np.linspace(0, len(marked) - 1, min(count, len(marked))).round().astype(int))
    return [marked[i] for i in picks], [captions[i] for i in picks], marked


def interaction_rate(graph: DemoGraph, loaded_at: float) -> float:
    """sim/image frames per wall second actually received (renders are skipped when physics needs the time), so
    the interaction video plays in real time."""
    times = [t for t, _ in graph.obs.sim_images if t >= loaded_at]
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 1.0


def closed_spans(commands: list, origin: float) -> list[tuple[float, float]]:
    spans, opened_at = [], None
    for arrival, _, closed in commands:
        if closed and opened_at is None:
            opened_at = arrival
        elif not closed and opened_at is not None:
            spans.append((opened_at - origin, arrival - origin))
            opened_at = None
    if opened_at is not None:
        spans.append((opened_at - origin, commands[-1][0] - origin))
    return spans


def summarise(args, clip, record, comparison, graph: DemoGraph, live: dict, progress: Progress,
              outputs: dict) -> dict:
    from reconphys_ros.core.asset import PhysicsEstimate
    from reconphys_ros.core.physics.params import RATIO_RANGES, PhysicsParams, object_size
    physics = record.physics
    true_size = float(clip["meta"].get("object_size", object_size(clip["anchors"][0])))
    true_params = PhysicsParams.from_dict(clip["params"])
    true_contact = float(clip["meta"].get("contact_damping", 0.0))  # the example clips were made without it
    truth = {**PhysicsEstimate(true_params, size=true_size, contact_damping=true_contact).derived(),
             "paper": true_params.to_dict()}
    statuses = [s for t, s in graph.obs.statuses if t >= live["loaded_at"] and s.object_id]
    rtf = [s.real_time_factor for s in statuses if s.real_time_factor > 0]
    last = statuses[-1] if statuses else None
    seg = graph.obs.segmentation_latencies()
    spans = closed_spans(graph.obs.commands, 0.0)
    lifted = [h for t, h, _ in graph.obs.heights if any(a <= t <= b for a, b in spans)]
    rest = [h for t, h, _ in graph.obs.heights if spans and live["loaded_at"] <= t < spans[0][0]]
    t_true, t_pred = comparison.true_heights, comparison.predicted_heights
    errors = (t_pred[:len(t_true)] - t_true[:len(t_pred)]) if t_true is not None else None
    future_total = comparison.truth.shape[0]
    motion = None
    if record.initial_motion is not None:
        init = clip["meta"].get("initial_state") or {}
        # the truth at the first observed frame: the clip's frame-0 velocity, ballistic until then (spin constant)
        t0 = comparison.start / clip["fps"]
        true_v = (np.asarray(init["velocity"]) + np.array([0.0, 0.0, -9.81]) * t0).tolist() if "velocity" in init \
            else None
        motion = {"estimate": record.initial_motion.to_dict(), "truth": {
            "velocity": true_v, "angular_velocity": init.get("angular_velocity")}}
    return {
        "example": args.example,
        "object_id": record.object_id,
        # SI and the size-independent values, each with its std (PhysicsEstimate.derived); the paper's convention
        # as a labelled section
        "params": {"estimate": {**physics.derived(), "paper": physics.params.to_dict()},
                   "truth": truth, "mass_given": bool(physics.mass_given),
                   "size_independent_ranges": {k: list(v) for k, v in RATIO_RANGES.items()}},
        "latency_s": {"segmentation_per_frame": float(np.median(seg)) if seg.size else None,
                      "reconstruction_last_frame_to_asset": float(record.latency_s),
                      **{f"pipeline_{k}": float(v) for k, v in record.timings.items()},
                      "simulation_frame_step": last.step_time_ms / 1000.0 if last else None,
                      "simulation_render": last.render_time_ms / 1000.0 if last and last.render_time_ms else None},
        "psnr": {**comparison.psnr, "future_frames": int(comparison.num_future),
                 "future_range": [comparison.start + comparison.observed + 1, comparison.start + future_total],
                 "observed_range": [comparison.start + 1, comparison.start + comparison.observed]},
        "initial_motion": motion,
        "trajectory": {"fps": clip["fps"], "start_frame": comparison.start,
                       "true_centroid_height_m": None if t_true is None else [float(v) for v in t_true],
                       "predicted_centroid_height_m": [float(v) for v in t_pred],
                       "rmse_all_m": None if errors is None else float(np.sqrt(np.mean(errors ** 2))),
                       "rmse_future_m": None if errors is None else
                       float(np.sqrt(np.mean(errors[comparison.observed:] ** 2)))},
        "simulation": {"real_time_factor": float(np.median(rtf)) if rtf else None,
                       "step_time_ms": last.step_time_ms if last else None,
                       "substeps": int(last.substeps) if last else None,
                       "num_anchors": int(last.num_anchors) if last else None,
                       "num_springs": int(last.num_springs) if last else None,
                       "keeping_up": all(s.keeping_up for s in statuses),
                       "divergences": int(last.divergences) if last else None,
                       "renders": len(graph.obs.sim_images)},
        "gripper": {"commands": len(graph.obs.commands), "max_anchors_grasped": int(live["grasped"]),
                    "rest_height_m": float(rest[-1]) if rest else None,
                    "max_lift_height_m": float(max(lifted)) if lifted else None,
                    "closed_spans_s": closed_spans(graph.obs.commands, live["loaded_at"])},
        "bag": bag_contents(live["bag_paths"]),
        "outputs": outputs,
        "wall_time_s": time.monotonic() - progress.start,
        "stage_times_s": dict(progress.stage_times),
        "notes": list(record.notes),
    }


# ---------------------------------------------------------------------------------------------------- main
def run(args) -> dict:
    """The whole demo; returns the summary (raises StageFailed)."""
    import torch

    from reconphys_ros.core.asset_record import read_asset_record
    from reconphys_ros.demo.report.summary import write_summary

    torch.set_flush_denormal(True)  # denormals from blob tails slow CPU rendering and physics 10x
    torch.set_num_threads(1)  # the nodes share 2 cores; more torch threads only contend (measured 4x slower)
    progress = Progress()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    clip, settings = load_clip(args, out, progress)
    graph = DemoGraph(settings)
    progress.begin("start nodes", "video_source, segmentation, reconstruction, simulation"
                   + ("" if args.no_bag else ", bag_recorder") + f", gripper_controller (one process, DDS domain "
                   f"{args.domain_id})")
    graph.start()
    progress.end()
    try:
        live = run_graph(graph, progress, clip["rgb"][0].shape[0], args)
    finally:
        graph.close()  # closes the bag too
    recon_result = graph.nodes["reconstruction"].last_result
    object_id = recon_result.asset.object_id
    json_path = os.path.join(settings.asset_dir, f"{object_id}.json")
    record = read_asset_record(json_path)
    comparison = compare_with_clip(graph, recon_result, record, clip, progress)

    progress.begin("report", f"figures and summary in {out}")
    outputs = {"asset_ply": os.path.join(settings.asset_dir, f"{object_id}.ply"), "asset_json": json_path,
               **write_figures(out, args, clip, graph, settings, live, comparison)}
    summary = summarise(args, clip, record, comparison, graph, live, progress, outputs)
    outputs["summary_json"], outputs["summary_md"] = os.path.join(out, "summary.json"), os.path.join(out,
                                                                                                     "summary.md")
    progress.end()
    summary["stage_times_s"] = dict(progress.stage_times)
    summary["wall_time_s"] = time.monotonic() - progress.start
    write_summary(out, summary)
    return summary


def load_clip(args, out: str, progress: Progress) -> tuple[dict, GraphSettings]:
    """The example clip's chosen view and the settings of the demo graph that plays it."""
    from reconphys_ros.examples import example_path, load_example

    progress.begin("load", f"example clip {args.example!r}, view {args.view}")
    clip = load_example(args.example, views=[args.view])
    rgb = clip["rgb"][0]  # (T, H, W, 3)
    height, width = rgb.shape[1:3]
    settings = GraphSettings(
        source=example_path(args.example), view=args.view, playback_fps=args.rate, clip_fps=clip["fps"],
        asset_dir=os.path.join(out, "asset"), bag_dir=None if args.no_bag else os.path.join(out, "bag"),
        render_camera=sim_render_view(clip["K"][0], clip["world_to_cam"][0], width, height),
        # sim/image renders run on the CPU rasterizer in the simulation node's process and compete with its stepping
        # (4-6 renders/s held the real-time factor at 0.26-0.46 on 2 cores with the 25 cm example; 2/s: 0.88)
        render_rate=2.0 if args.quick else 3.0, gripper=gripper_script(args.quick), domain_id=args.domain_id,
        known_mass=args.known_mass)
    progress.end(f"{rgb.shape[0]} frames {width}x{height}, true params {clip['params']}")
    return clip, settings


def compare_with_clip(graph: DemoGraph, recon_result, record, clip: dict, progress: Progress):
    """Re-simulate the published asset from the reconstruction's first frame, render it from the clip camera and
    compare with the clip's frames (demo/evaluation.py)."""
    from reconphys_ros.demo.evaluation import evaluate_prediction

    rgb, masks = clip["rgb"][0], clip["mask"][0]  # (T, H, W, 3), (T, H, W)
    progress.begin("evaluate", "re-simulate the asset, render from the clip camera, compare with the clip")
    start = drop_start_index(graph, rgb, record.frame_stamps[0])
    observed = len(record.frame_stamps)
    if start + observed >= rgb.shape[0]:
        raise StageFailed("evaluate", f"the drop was detected at clip frame {start + 1}: no frames are left after "
                          f"the {observed} observed ones to compare a prediction with")
    comparison = evaluate_prediction(recon_result.asset, recon_result.initial_velocity, record.camera, rgb, masks,
                                     start, observed, observed_masks(graph, record.frame_stamps), clip["fps"],
                                     true_anchors=clip["anchors"], angular_velocity=recon_result.angular_velocity)
    fut = comparison.psnr["future"]
    progress.end(f"future PSNR {fut['prediction']['full']:.2f} dB (hold last frame "
                 f"{fut['hold_last_frame']['full']:.2f}, constant image {fut['constant_image']['full']:.2f})")
    return comparison


def write_figures(out: str, args, clip: dict, graph: DemoGraph, settings: GraphSettings, live: dict,
                  comparison) -> dict:
    """Strips, frames, videos (not with --quick) and the trajectory plot in `out`; returns their paths."""
    from reconphys_ros.demo.report import plots, strips

    c = comparison
    outputs = {"comparison_strip": strips.write_png(
        os.path.join(out, "comparison_strip.png"),
        strips.comparison_strip(c.truth, c.predicted, c.truth_masks, c.predicted_masks, c.observed, c.start))}
    outputs["background"] = strips.write_png(os.path.join(out, "background_estimate.png"), c.background)
    picked, captions, all_marked = interaction_frames(graph, settings, live["loaded_at"], 8, c.background)
    outputs["interaction_strip"] = strips.write_png(os.path.join(out, "interaction_strip.png"),
                                                    strips.interaction_strip(picked, captions))
    frames_dir = os.path.join(out, "interaction_frames")
    os.makedirs(frames_dir, exist_ok=True)
    for i, frame in enumerate(all_marked):
        strips.write_png(os.path.join(frames_dir, f"sim_{i:04d}.png"), frame)
    outputs["interaction_frames"] = frames_dir
    outputs["comparison_mp4"] = outputs["interaction_mp4"] = None
    if not args.quick:
        outputs["comparison_mp4"] = strips.write_mp4(
            os.path.join(out, "comparison.mp4"),
            strips.comparison_frames(c.truth, c.predicted, c.truth_masks, c.predicted_masks, c.observed, c.start),
            fps=6.0)
        outputs["interaction_mp4"] = strips.write_mp4(
            os.path.join(out, "interaction.mp4"), [np.kron(f, np.ones((3, 3, 1), np.uint8)) for f in all_marked],
            fps=interaction_rate(graph, live["loaded_at"]))
    times = [t - live["loaded_at"] for t, _, _ in graph.obs.heights if t >= live["loaded_at"]]
    heights = [h for t, h, _ in graph.obs.heights if t >= live["loaded_at"]]
    outputs["trajectory_plot"] = plots.trajectory_plot(
        os.path.join(out, "trajectory.png"), clip["fps"], c.predicted_heights, c.observed, c.true_heights, c.start,
        live=(np.array(times), np.array(heights)) if times else None,
        closed_spans=closed_spans(graph.obs.commands, live["loaded_at"]))
    return outputs


def main(argv=None) -> int:
    args = parse_args(argv)
    limit_malloc_arenas()  # the demo's nodes share this process, as in reconphys-launch
    started = time.monotonic()
    try:
        summary = run(args)
    except StageFailed as exc:
        print(f"\nreconphys-demo: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nreconphys-demo: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or a broken install: say so with the traceback, never exit 0
        import traceback
        traceback.print_exc()
        print(f"\nreconphys-demo: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    fut = summary["psnr"]["future"]
    print(f"\nreconphys-demo finished in {time.monotonic() - started:.0f} s. Outputs in {os.path.abspath(args.out)}:")
    for name, path in summary["outputs"].items():
        if path:
            print(f"  {name:20s} {os.path.relpath(path)}")
    if summary["bag"]:
        print(f"  {'bag':20s} {os.path.relpath(summary['bag']['path'])} ({summary['bag']['messages']} messages)")
    print(f"future PSNR {fut['prediction']['full']:.2f} dB vs hold-last-frame {fut['hold_last_frame']['full']:.2f} "
          f"dB and constant image {fut['constant_image']['full']:.2f} dB; simulation real-time factor "
          f"{summary['simulation']['real_time_factor'] or float('nan'):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
