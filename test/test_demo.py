"""The main job end to end: `python -m reconphys_ros.demo --quick` plays the embedded clip through the real nodes;
its outputs exist, load (PLY via plyfile, JSON schema, bag via rosbags with our typestore) and make sense (params
in the paper ranges, future PSNR above a constant-image baseline, the gripper grasped the object)."""
import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_demo(args, timeout):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "reconphys_ros.demo", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    pytest.importorskip("rclpy")
    out = tmp_path_factory.mktemp("demo")
    proc = _run_demo(["--quick", "--out", str(out)], timeout=180)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    return out, proc, summary


def test_demo_prints_stages_and_outputs(demo_run):
    out, proc, summary = demo_run
    for stage in ("play", "reconstruct", "simulate", "gripper", "evaluate", "report"):
        assert f"{stage}: done" in proc.stdout, stage
    assert f"Outputs in {out}" in proc.stdout
    for name, path in summary["outputs"].items():
        if path:
            assert os.path.exists(path), name
    assert summary["wall_time_s"] < 180


def test_asset_ply_and_physics_json(demo_run):
    from plyfile import PlyData
    out, _, summary = demo_run
    ply = PlyData.read(summary["outputs"]["asset_ply"])
    vertex = ply["vertex"]
    names = set(vertex.data.dtype.names)
    assert {"x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0"} <= names  # standard 3DGS layout
    record = json.loads(open(summary["outputs"]["asset_json"]).read())
    assert vertex.count == record["num_gaussians"] > 100
    assert np.isfinite(np.stack([vertex["x"], vertex["y"], vertex["z"]])).all()
    physics = record["physics"]
    # SI: a real-sized object (20-30 cm example) weighs kilograms, not tonnes; the size-independent values lie in
    # the paper's ranges at 1 m
    assert 0.2 < physics["size"] < 0.5 and 0.01 < physics["total_mass"] < 10.0
    assert 10 ** (0.51 / 2.3026) <= physics["stiffness_per_mass_at_1m"] <= 6000.0 + 1e-6
    assert math.isclose(physics["stiffness_per_mass_at_1m"], physics["stiffness_per_mass"] * physics["size"],
                        rel_tol=1e-6)
    assert math.isclose(physics["damping_per_mass_at_1m"], physics["damping_per_mass"] * physics["size"] ** 0.5,
                        rel_tol=1e-6)
    assert all(physics[k] >= 0 for k in physics if k.endswith("_std"))
    paper = physics["paper"]
    assert math.isclose(paper["mass"] * 2048, physics["total_mass"], rel_tol=1e-9)
    assert math.isclose(paper["stiffness"] / paper["mass"], physics["stiffness_per_mass"], rel_tol=1e-6)
    assert physics["mass_given"] is False
    assert len(record["frame_stamps"]) == 20 and record["latency_s"] > 0


def test_bag_reads_with_our_typestore(demo_run):
    from rosbags.rosbag2 import Reader

    from reconphys_ros.bags import make_typestore
    _, _, summary = demo_run
    store = make_typestore()
    parts = summary["bag"]["parts"]
    assert parts
    seen, physics, closed = {}, [], 0
    for part in parts:
        with Reader(part) as reader:
            for connection, _, raw in reader.messages():
                seen[connection.topic] = seen.get(connection.topic, 0) + 1
                if connection.topic == "/physics":
                    physics.append(store.deserialize_cdr(raw, connection.msgtype))
                elif connection.topic == "/gripper/command":
                    closed += store.deserialize_cdr(raw, connection.msgtype).position <= 0.01
    assert seen.get("/camera/image_raw") == 30 and seen.get("/mask", 0) >= 20  # the 20 a drop needs; a loaded machine may drop a few
    for topic in ("/asset", "/physics", "/gripper/command", "/sim/status", "/sim/anchors"):
        assert seen.get(topic, 0) >= 1, topic
    est = summary["params"]["estimate"]
    assert math.isclose(physics[-1].mass, est["total_mass"], rel_tol=1e-6)  # kg
    assert math.isclose(physics[-1].stiffness_per_mass, est["stiffness_per_mass"], rel_tol=1e-6)
    assert closed >= 1, "the gripper never closed"
    assert summary["bag"]["messages"] == sum(seen.values())


def test_summary_figures_are_sensible(demo_run):
    from reconphys_ros.demo.report.summary import SUMMARY_KEYS
    out, _, summary = demo_run
    assert set(SUMMARY_KEYS) <= set(summary)
    future = summary["psnr"]["future"]
    assert future["prediction"]["full"] > future["constant_image"]["full"]
    assert summary["psnr"]["future_frames"] == 10 and summary["psnr"]["future_range"] == [21, 30]
    assert summary["params"]["truth"]["stiffness_per_mass_at_1m"] == pytest.approx(100.0)  # the example's truth
    # the simulation stepped and its clock did not run ahead; whether it keeps real time on these cores is a timing
    # target, measured by benchmarks/bench_nodes.py (tests check correctness, not wall-clock time)
    assert 0.0 < summary["simulation"]["real_time_factor"] < 1.5
    assert summary["gripper"]["max_anchors_grasped"] >= 1
    assert summary["latency_s"]["reconstruction_last_frame_to_asset"] > 0
    traj = summary["trajectory"]
    assert len(traj["true_centroid_height_m"]) == len(traj["predicted_centroid_height_m"]) == 30
    assert traj["rmse_all_m"] < 0.2  # the re-simulated object stays near the true one (25 cm object)
    md = (out / "summary.md").read_text()
    assert "future | prediction" in md and "real-time factor" in md


def test_figures_are_images(demo_run):
    _, _, summary = demo_run
    strip = cv2.imread(summary["outputs"]["comparison_strip"])
    assert strip is not None and strip.shape[0] >= 3 * 128 and strip.shape[1] >= 5 * 128
    inter = cv2.imread(summary["outputs"]["interaction_strip"])
    assert inter is not None and inter.shape[1] >= 2 * 128
    assert len(os.listdir(summary["outputs"]["interaction_frames"])) >= 4
    plot = cv2.imread(summary["outputs"]["trajectory_plot"])
    assert plot is not None and plot.std() > 10


def test_failed_stage_exits_nonzero_with_its_name(tmp_path):
    pytest.importorskip("rclpy")
    proc = _run_demo(["--quick", "--no-bag", "--out", str(tmp_path), "--stage-timeout", "0.01"], timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the nodes spin in their own threads, so early stages may already be done; the gripper's scripted cycle
    # takes seconds of real time and cannot finish within 0.01 s
    assert "reconphys-demo: error: stage '" in proc.stderr and "timed out" in proc.stderr
    assert not (tmp_path / "summary.json").exists()


def test_bad_arguments_are_refused():
    from reconphys_ros.demo.cli import parse_args
    with pytest.raises(SystemExit):
        parse_args(["--rate", "0"])
    with pytest.raises(SystemExit):
        parse_args(["--example", "no_such_clip"])
    with pytest.raises(SystemExit):
        parse_args(["--known-mass", "-1"])  # kg, > 0
    with pytest.raises(SystemExit):
        parse_args(["--known-mass", "5000"])  # kg, <= 1000
    args = parse_args([])
    assert args.out == os.path.join("out", "demo") and 101 <= args.domain_id <= 200 and not args.quick
