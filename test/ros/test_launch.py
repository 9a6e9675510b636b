"""The launch file, ros/runner.py, scripts/ros, setup.py and config/pipeline.yaml agree on one node list and one set of
parameter names."""
import ast
import importlib
import os
import re
from pathlib import Path

import pytest

from reconphys_ros.ros.graph import PIPELINE_NODES, selected_nodes
from reconphys_ros.ros.parameters import default_config_path, load_params_file

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "pipeline.launch.py"


def test_launch_file_reads_the_shared_node_list():
    tree = ast.parse(LAUNCH_FILE.read_text())
    imports = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert ("reconphys_ros.ros.graph", "PIPELINE_NODES") in imports
    assert not re.search(r"executable\s*=\s*['\"]", LAUNCH_FILE.read_text()), "node names must come from graph.py"


def test_launch_file_lists_the_same_nodes_as_run_py():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (not on PyPI)")
    from launch.launch_context import LaunchContext
    spec = importlib.util.spec_from_file_location("pipeline_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    from launch_ros.actions import Node
    nodes = [e for e in description.entities if isinstance(e, Node)]
    context = LaunchContext()
    names = [n.node_executable if isinstance(n.node_executable, str) else
             "".join(s.perform(context) for s in n.node_executable) for n in nodes]
    assert names == [e.executable for e in PIPELINE_NODES]
    assert [e.name for e in selected_nodes(record=True, controller=True)] == names


def test_every_node_has_an_executable_and_console_script():
    setup = (ROOT / "setup.py").read_text()
    for entry in PIPELINE_NODES:
        script = ROOT / "scripts" / "ros" / entry.executable
        assert script.is_file() and os.access(script, os.X_OK), script
        assert f"from {entry.module} import main" in script.read_text()
        assert f"{entry.module}:main" in setup
        module = importlib.import_module(entry.module)
        assert callable(module.main) and entry.node_class().__module__ == entry.module
    assert "reconphys-launch = reconphys_ros.ros.runner:main" in setup


def test_params_file_is_the_single_source_of_defaults():
    nodes = load_params_file(default_config_path())
    assert set(nodes) == {e.name for e in PIPELINE_NODES}
    for entry in PIPELINE_NODES:
        module = importlib.import_module(entry.module)
        declared = [spec.name for spec in module.PARAMS]
        assert len(declared) == len(set(declared))
        assert set(declared) == set(nodes[entry.name]), entry.name
        for spec in module.PARAMS:
            assert spec.description, f"{entry.name}.{spec.name} has no description"
            assert spec.error(spec.coerce(nodes[entry.name][spec.name])) is None
