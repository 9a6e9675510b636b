"""Security: ids from messages and bags never escape an output folder (traversal fuzz); nothing unpickles code
from a file a user was sent, YAML is only safe-loaded, and no shell is built from input (checked on the AST of
every source file, so new code is held to the same rules)."""
from __future__ import annotations

import ast
import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconphys_ros.core.asset import validate_object_id
from reconphys_ros.ros.conversions import asset_from_msg, asset_to_msg, physics_from_msg
from test.reliability.fuzz import HOSTILE_IDS
from test.ros.helpers import random_asset

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("reconphys_ros", "training", "benchmarks", "launch")
FUZZ = settings(max_examples=600, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
TRAVERSAL = st.one_of(
    st.sampled_from(HOSTILE_IDS + ("../x", "..\\x", "a/../../b", "%2e%2e%2f", "~", "~root", "x\r", "\x7f", "\u202e")),
    st.text(alphabet=string.printable + "/\\.\x00\u2044\u2215\uff0f", max_size=40),
    st.text(max_size=30))


def _inside(folder: Path, object_id: str) -> bool:
    target = (folder / f"{object_id}.ply").resolve()
    return target.parent == folder.resolve() and target.name == f"{object_id}.ply"


@FUZZ
@given(TRAVERSAL)
def test_accepted_object_ids_stay_inside_the_output_folder(tmp_path_factory, candidate):
    folder = Path("/tmp/reconphys_out")
    try:
        accepted = validate_object_id(candidate)
    except ValueError as exc:
        assert "invalid object id" in str(exc)
        return
    assert _inside(folder, accepted)
    assert not any(c in accepted for c in "/\\\x00") and accepted not in (".", "..")
    assert all(c.isprintable() and not c.isspace() for c in accepted)


@pytest.mark.parametrize("hostile", [i for i in HOSTILE_IDS if i not in ("object_000", "someone_else", "ok.id-1",
                                                                         "con", "a..b")])
def test_hostile_ids_in_messages_are_refused(hostile):
    msg = asset_to_msg(random_asset(20, 8))
    msg.object_id = hostile
    with pytest.raises(ValueError, match="object id"):
        asset_from_msg(msg)
    msg.physics.object_id = hostile
    with pytest.raises(ValueError, match="object id"):
        physics_from_msg(msg.physics)


def test_reconstruction_and_recorder_refuse_escaping_prefixes(ros_context, tmp_path):
    from rclpy.parameter import Parameter

    from reconphys_ros.ros.bag_recorder import BagRecorderNode
    from reconphys_ros.ros.reconstruction import ReconstructionNode
    for bad in ("../up", "a/b", "x\x00"):
        with pytest.raises(ValueError, match="prefix"):
            ReconstructionNode(context=ros_context, parameter_overrides=[
                Parameter("output_dir", value=str(tmp_path)), Parameter("object_id_prefix", value=bad)])
        with pytest.raises(ValueError, match="prefix"):
            BagRecorderNode(context=ros_context, parameter_overrides=[
                Parameter("output_dir", value=str(tmp_path)), Parameter("prefix", value=bad)])
    assert os.listdir(tmp_path) == []


def test_bag_object_ids_are_generated_not_read():
    """from_bags names samples bagNNN_dropNNN; ids inside the bag never become paths."""
    import inspect

    from training.data import from_bags
    source = inspect.getsource(from_bags.convert)
    assert 'f"bag{b:03d}_drop{c:03d}"' in source


# ---------------------------------------------------------------------------------------------------- code scan
def _python_files():
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".venv" not in path.parts:
                yield path


def _name(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "non-constant"
    return None


def unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve") for n in names):
                found.append((node.lineno, "imports a pickle-like module"))
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name.endswith("torch.load") and _keyword(node, "weights_only") is not True:
            found.append((node.lineno, "torch.load without weights_only=True"))
        if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all"):
            found.append((node.lineno, f"{name} (use yaml.safe_load)"))
        if name in ("os.system", "os.popen", "eval", "exec"):
            found.append((node.lineno, name))
        if name.startswith("subprocess.") and _keyword(node, "shell") not in (None, False):
            found.append((node.lineno, f"{name} with shell=True"))
        if name.endswith("np.load") and _keyword(node, "allow_pickle") not in (None, False):
            found.append((node.lineno, "np.load with allow_pickle"))
    return found


def test_scanner_catches_what_it_should():
    bad = ("import pickle\nimport torch, yaml, subprocess, os\ntorch.load('x')\nyaml.load(s)\n"
           "subprocess.run(c, shell=True)\nos.system(c)\nimport numpy as np\nnp.load(p, allow_pickle=True)\n")
    assert len(unsafe_calls(ast.parse(bad))) == 6
    good = "torch.load(p, weights_only=True)\nyaml.safe_load(s)\nsubprocess.run([a, b])\nnp.load(p)\n"
    assert unsafe_calls(ast.parse(good)) == []


def test_no_unsafe_loading_or_shell_in_the_code_base():
    problems = []
    for path in _python_files():
        try:
            tree = ast.parse(path.read_text(), filename=str(path))
        except SyntaxError as exc:  # a file being written concurrently: skip rather than fail the scan
            pytest.skip(f"cannot parse {path}: {exc}")
        problems += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in unsafe_calls(tree)]
    assert not problems, "unsafe calls:\n" + "\n".join(problems)
