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
    with pytest.raises(ValueError, match="NODE.NAME=VALUE"):
        parameter_overrides(parse_args(["pipeline", "-p", "substeps=3"]))


def test_misspelt_parameters_are_named_with_the_nearest(tmp_path):
    """`substepz` used to be ignored without a word (issue 18.10)."""
    with pytest.raises(ValueError, match="simulation has no parameter 'substepz' \\(did you mean 'substeps'\\?\\)"):
        parameter_overrides(parse_args(["pipeline", "-p", "simulation.substepz=40"]))
    extra = tmp_path / "extra.yaml"
    extra.write_text("reconstruction:\n  ros__parameters:\n    known_mas: 1.0\n    refine: true\n")
    with pytest.raises(ValueError, match="'known_mas' \\(did you mean 'known_mass'\\?\\)"):
        parameter_overrides(parse_args(["pipeline", "--params-file", str(extra)]))
    with pytest.raises(ValueError, match="unknown node 'simulaton' \\(did you mean 'simulation'\\?\\)"):
        parameter_overrides(parse_args(["pipeline", "-p", "simulaton.substeps=40"]))
    with pytest.raises(ValueError, match="no parameter 'zzz'$"):  # nothing close: no suggestion
        parameter_overrides(parse_args(["pipeline", "-p", "simulation.zzz=1"]))
    ok = parameter_overrides(parse_args(["pipeline", "-p", "simulation.use_sim_time=false"]))
    assert ok == {"simulation": {"use_sim_time": False}}  # rclpy's own parameters are known


@pytest.mark.parametrize("content, argv, pattern", [
    ("- a\n- b\n", [], "maps node names"),                                                     # not a mapping
    ("simulation:\n  ros__parameters: !!python/object/apply:os.system [echo pwned]\n", [], "constructor"),
    ("simulation: [\n", [], "not a valid params file"),                                          # broken YAML
    ("simulation:\n  ros__parameters: [1, 2]\n", [], "must map parameter names"),
    (None, ["-p", "simulation.substeps=[1, 2"], "not valid YAML"),
    (None, ["-p", "simulation.substeps=!!python/object/apply:os.system [echo pwned]"], "not valid YAML"),
    (None, ["-p", "simulation.fps={a: 1}"], "not a ROS parameter value"),
    (None, ["-p", "simulation.render_camera_position=[1, a, 2]"], "not a ROS parameter value"),
    (None, ["-p", "simulation.fps="], "not a ROS parameter value"),
    (None, ["-p", "simulation.substepz=40"], "did you mean 'substeps'"),
    (None, ["-p", "substeps"], "NODE.NAME=VALUE"),
    (None, ["--params-file", "/nonexistent/params.yaml"], "cannot read the params file"),
])
def test_bad_configuration_prints_one_line_and_exits_2(tmp_path, capsys, content, argv, pattern):
    if content is not None:
        path = tmp_path / "params.yaml"
        path.write_text(content)
        argv = ["--params-file", str(path)]
    assert main(["pipeline", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert pattern in err, err


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
