"""reconphys-launch (ros/runner.py): node selection from the shared graph, overrides, and a real run ended by a signal
that leaves a valid bag behind."""
import signal
import subprocess
import time

import pytest
from rosbags.rosbag2 import Reader

from reconphys_ros.ros.graph import PIPELINE_NODES, selected_nodes
from reconphys_ros.ros.runner import create_nodes, main, parameter_overrides, parse_args


def test_list_prints_the_graph_selection(capsys):
    assert main(["pipeline", "--list"]) == 0
    assert capsys.readouterr().out.split() == [e.name for e in selected_nodes()]
    assert main(["pipeline", "--list", "--no-video", "--record", "--controller"]) == 0
    expected = [e.name for e in PIPELINE_NODES if e.name != "video_source"]
    assert capsys.readouterr().out.split() == expected


def test_overrides_from_flags_and_params(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("simulation:\n  ros__parameters:\n    substeps: 7\n    fps: 60.0\n")
    args = parse_args(["pipeline", "--source", "clip.mp4", "--output-dir", "out", "--params-file", str(extra),
                       "-p", "simulation.substeps=40", "-p", "reconstruction.known_mass=1.5",
                       "-p", "bag_recorder.topics=[a, b]"])
    overrides = parameter_overrides(args)
    assert overrides["video_source"] == {"source": "clip.mp4"}
    assert overrides["simulation"] == {"substeps": 40, "fps": 60.0}  # -p wins over the file
    assert overrides["reconstruction"] == {"output_dir": "out", "known_mass": 1.5}
    assert overrides["bag_recorder"] == {"topics": ["a", "b"]}
    with pytest.raises(SystemExit):
        parameter_overrides(parse_args(["pipeline", "-p", "substeps=3"]))


def test_bad_overrides_are_refused(ros_context):
    with pytest.raises(ValueError, match="not started"):
        create_nodes(selected_nodes(), {"bag_recorder": {"prefix": "x"}}, ros_context)
    entries = [e for e in PIPELINE_NODES if e.name == "simulation"]
    with pytest.raises(Exception, match="substeps"):
        create_nodes(entries, {"simulation": {"substeps": 0}}, ros_context)


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM])
def test_runner_stops_on_signal_and_closes_the_bag(tmp_path, python_env, sig):
    env, python = python_env
    bag_dir = tmp_path / "bags"
    cmd = [python, "-m", "reconphys_ros.ros.runner", "pipeline", "--record", "--bag-dir", str(bag_dir),
           "--output-dir", str(tmp_path / "out"), "-p", "simulation.render_rate=0.0",
           "-p", "bag_recorder.topics=[camera/image_raw, mask]"]
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "recording /mask" in line:
                break
        assert any("recording /mask" in line for line in lines), "".join(lines)
        time.sleep(1.0)  # let some frames reach the bag (the assertion below only needs >= 1)
        child.send_signal(sig)
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, "".join(lines) + out
    parts = sorted(bag_dir.glob("*/part_000"))
    assert parts and (parts[0] / "metadata.yaml").is_file(), "bag not closed"
    with Reader(parts[0]) as reader:
        assert reader.message_count >= 1
        assert {c.topic for c in reader.connections} == {"/camera/image_raw", "/mask"}


def test_node_main_refuses_bad_parameters(python_env):
    env, python = python_env
    result = subprocess.run([python, "-m", "reconphys_ros.ros.simulation", "--ros-args", "-p", "substeps:=0"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "substeps" in result.stderr and "Traceback" not in result.stderr
