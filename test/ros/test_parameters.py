"""ros/parameters.py: unknown parameters that reach a node are named, with the nearest known name (issue 18.10)."""
import rclpy
from rclpy.parameter import Parameter

from reconphys_ros.ros.parameters import declare_parameters, load_params_file
from reconphys_ros.ros.simulation import PARAMS as SIMULATION_PARAMS


class _Recorder:
    def __init__(self):
        self.warnings = []

    def warning(self, text, *args, **kwargs):
        self.warnings.append(text)

    def __getattr__(self, name):  # info, error, ... unused here
        return lambda *args, **kwargs: None


def test_unknown_overrides_of_a_node_are_warned_with_the_nearest_name(ros_context, monkeypatch):
    node = rclpy.create_node("simulation", context=ros_context, parameter_overrides=[
        Parameter("substepz", value=40), Parameter("substeps", value=30), Parameter("use_sim_time", value=False)])
    try:
        logger = _Recorder()
        monkeypatch.setattr(node, "get_logger", lambda: logger)
        values = declare_parameters(node, SIMULATION_PARAMS, "simulation")
        assert values["substeps"] == 30
        assert len(logger.warnings) == 1, logger.warnings
        assert "'substepz' (did you mean 'substeps'?)" in logger.warnings[0]
        assert "use_sim_time" not in logger.warnings[0]
    finally:
        node.destroy_node()


def test_stale_keys_of_the_params_file_section_are_warned(ros_context, monkeypatch):
    node = rclpy.create_node("simulation", context=ros_context)
    try:
        logger = _Recorder()
        monkeypatch.setattr(node, "get_logger", lambda: logger)
        specs = [s for s in SIMULATION_PARAMS if s.name != "render_rate"]  # the YAML has a key the code lacks
        declare_parameters(node, specs, "simulation")
        assert any("section 'simulation'" in w and "'render_rate'" in w for w in logger.warnings), logger.warnings
    finally:
        node.destroy_node()


def test_nested_parameters_are_dotted_names(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("simulation:\n  ros__parameters:\n    a:\n      b: 1\n    c: 2\n")
    assert load_params_file(path) == {"simulation": {"a.b": 1, "c": 2}}
