"""Node benchmarks (issue 8), measured in one run on this machine:

1. End-to-end latency from the 20th frame of a drop to the published asset: video_source (embedded 128x128 example,
   looping) -> segmentation -> reconstruction, composed in one process as ros/runner.py does; median of 10 drops.
   Reported twice: inside the reconstruction node (clip complete -> asset published) and end to end (stamp of the
   20th frame -> asset received by a listener node).
2. Sustained real-time factor of the simulation node at N_A = 1024 (medium lattice) and 512 (coarse), read from
   sim/status over a window of steady stepping.

    .venv/bin/python benchmarks/bench_nodes.py [--drops 10] [--sim-seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import rclpy
import torch
from reconphys_ros.ros.spin import IsolatedExecutor
from rclpy.qos import QoSProfile

from reconphys_ros.msg import GaussianAsset, SimStatus
from reconphys_ros.ros.conversions import asset_to_msg
from reconphys_ros.ros.graph import selected_nodes
from reconphys_ros.ros.qos import latched_qos
from reconphys_ros.ros.runner import create_nodes
from reconphys_ros.ros.spin import shutdown_nodes


def spin_until(executor, predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def bench_latency(num_drops: int, out_dir: str) -> dict:
    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    entries = [e for e in selected_nodes() if e.name != "simulation"]
    nodes = create_nodes(entries, {"reconstruction": {"output_dir": out_dir}}, context)
    listener = rclpy.create_node("latency_listener", context=context)
    received = []  # (object_id, receipt time ns)
    listener.create_subscription(GaussianAsset, "asset",
                                 lambda m: received.append((m.object_id, listener.get_clock().now().nanoseconds)),
                                 latched_qos(depth=50))
    executor = IsolatedExecutor(context)
    for node in nodes + [listener]:
        executor.add_node(node)
    recon = next(n for n in nodes if n.get_name() == "reconstruction")
    try:
        ok = spin_until(executor, lambda: len(received) >= num_drops, 60.0 + 15.0 * num_drops)
        if not ok:
            raise RuntimeError(f"only {len(received)} of {num_drops} drops reconstructed")
        end_to_end, pipeline = [], []
        for object_id, t_ns in received[:num_drops]:
            path = os.path.join(out_dir, f"{object_id}.json")
            # the node publishes the asset first and writes its files after: wait for the record
            if not spin_until(executor, lambda: os.path.exists(path), 30.0):
                raise RuntimeError(f"{path} was not written")
            with open(path) as f:
                record = json.load(f)
            end_to_end.append(t_ns * 1e-9 - record["frame_stamps"][-1])
            pipeline.append(record["timings"]["total"])
        return {"drops": num_drops, "node_latency_median_s": statistics.median(recon.latencies[:num_drops]),
                "node_latency_max_s": max(recon.latencies[:num_drops]),
                "pipeline_run_median_s": statistics.median(pipeline),
                "end_to_end_median_s": statistics.median(end_to_end), "end_to_end_max_s": max(end_to_end),
                "clips_ignored_busy": recon.clips_ignored}
    finally:
        shutdown_nodes(nodes + [listener], executor)
        rclpy.shutdown(context=context)


def example_asset(lattice: str):
    from reconphys_ros.core.pipeline import PipelineConfig, ReconstructionPipeline
    from reconphys_ros.core.render import Camera
    from reconphys_ros.examples import load_example
    clip = load_example(views=[0])
    camera = Camera(torch.as_tensor(clip["K"][0]), torch.as_tensor(clip["world_to_cam"][0]), 128, 128)
    masks = (clip["mask"][0].astype("uint8") * 255)
    result = ReconstructionPipeline(PipelineConfig(lattice=lattice)).run(clip["rgb"][0], masks, camera, f"bench_{lattice}")
    return result.asset


def bench_simulation(lattice: str, seconds: float) -> dict:
    from reconphys_ros.ros.simulation import SimulationNode
    from rclpy.parameter import Parameter
    asset = example_asset(lattice)
    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    sim = SimulationNode(context=context, parameter_overrides=[Parameter("lattice", value=lattice)])
    helper = rclpy.create_node("sim_bench_helper", context=context)
    status = []
    helper.create_subscription(SimStatus, "sim/status", status.append, QoSProfile(depth=100))
    pub = helper.create_publisher(GaussianAsset, "asset", latched_qos())
    pub.publish(asset_to_msg(asset))
    executor = IsolatedExecutor(context)
    executor.add_node(sim)
    executor.add_node(helper)
    try:
        spin_until(executor, lambda: sim.sim is not None and sim.frames_stepped > 30, 120.0)
        first = len(status)
        start_frames, start = sim.frames_stepped, time.monotonic()
        spin_until(executor, lambda: time.monotonic() - start > seconds, seconds + 5)
        wall = time.monotonic() - start
        window = [s for s in status[first + 1:] if s.object_id]
        return {"lattice": lattice, "num_anchors": sim.sim.model.num_anchors, "num_springs": sim.sim.model.num_springs,
                "substeps": sim.sim.substeps, "fps": sim.params["fps"],
                "real_time_factor": (sim.frames_stepped - start_frames) / sim.params["fps"] / wall,
                "status_rtf_median": statistics.median(s.real_time_factor for s in window) if window else None,
                "step_ms_mean": window[-1].step_time_ms if window else None,
                "renders_skipped": sim.renders_skipped, "keeping_up": window[-1].keeping_up if window else None}
    finally:
        sim.close()
        executor.shutdown()
        sim.destroy_node()
        helper.destroy_node()
        rclpy.shutdown(context=context)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drops", type=int, default=10)
    parser.add_argument("--sim-seconds", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as out_dir:
        latency = bench_latency(args.drops, out_dir)
    print("latency (target <= 1 s, 128x128, median of drops):", json.dumps(latency, indent=1))
    for lattice in ("medium", "coarse"):
        print(f"simulation {lattice}:", json.dumps(bench_simulation(lattice, args.sim_seconds), indent=1))


if __name__ == "__main__":
    main()
