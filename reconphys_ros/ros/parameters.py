"""Node parameters: one name from config/pipeline.yaml (the single source of defaults) to code.

Each node lists `ParamSpec`s (type, description, range or choices); `declare_parameters` takes the defaults from
the params file, declares every parameter with a ParameterDescriptor that carries the description and range, and
installs an on-set-parameters callback that rejects bad values with a reason (also at start-up: an override out
of range makes the node refuse to start with a clear message).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter

PACKAGE = "reconphys_ros"
CONFIG_NAME = "pipeline.yaml"
# Parameters rclpy itself reads on every node: never "unknown", though no params file section lists them.
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")

_TYPES = {
    "float": (float, ParameterType.PARAMETER_DOUBLE),
    "int": (int, ParameterType.PARAMETER_INTEGER),
    "bool": (bool, ParameterType.PARAMETER_BOOL),
    "str": (str, ParameterType.PARAMETER_STRING),
    "str_list": (list, ParameterType.PARAMETER_STRING_ARRAY),
    "float_list": (list, ParameterType.PARAMETER_DOUBLE_ARRAY),
}


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter. low/high bound numbers (inclusive); choices bound strings; length fixes a list size;
    check(value) -> error text or None adds a custom rule."""

    name: str
    kind: str
    description: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    length: int | None = None
    read_only: bool = False
    check: Callable[[object], str | None] | None = None

    def coerce(self, value):
        """A params-file value -> this parameter's Python type (YAML writes 30 for 30.0)."""
        if self.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if self.kind == "float_list" and isinstance(value, (list, tuple)):
            return [float(v) for v in value]
        if self.kind == "str_list" and isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return value

    def error(self, value) -> str | None:
        """Why `value` is not acceptable, or None."""
        py_type = _TYPES[self.kind][0]
        if py_type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, py_type) or (py_type is int and isinstance(value, bool)):
            return f"{self.name} must be of type {self.kind}, got {type(value).__name__} {value!r}"
        if self.kind in ("float", "int"):
            if self.kind == "float" and not math.isfinite(value):
                return f"{self.name} must be finite, got {value}"
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"{self.name}={value} is outside [{self.low}, {self.high}]"
        if self.kind == "float_list":
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
                return f"{self.name} must contain finite numbers, got {list(value)}"
            if self.length is not None and len(value) != self.length:
                return f"{self.name} must have {self.length} values, got {len(value)}"
        if self.choices is not None and value not in self.choices:
            return f"{self.name}={value!r} is not one of {list(self.choices)}"
        if self.check is not None:
            return self.check(value)
        return None

    def descriptor(self) -> ParameterDescriptor:
        text = self.description
        if self.choices:
            text += f" (one of: {', '.join(self.choices)})"
        d = ParameterDescriptor(name=self.name, type=_TYPES[self.kind][1], description=text, read_only=self.read_only)
        if self.kind == "float" and self.low is not None and self.high is not None:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.low), to_value=float(self.high))]
        if self.kind == "int" and self.low is not None and self.high is not None:
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)]
        return d


def default_config_path() -> Path:
    """config/pipeline.yaml of the source tree (editable / pip-only install), else of the installed share folder."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / CONFIG_NAME]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / CONFIG_NAME)
    except Exception:  # no ament index or package not installed there: the source tree must have it
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"cannot find {CONFIG_NAME}; looked in {[str(c) for c in candidates]}")


def _flatten(params: dict, prefix: str = "") -> dict:
    """Nested parameter mappings -> dotted names, as ROS reads a params file ({a: {b: 1}} -> {'a.b': 1})."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: the problem and where ('line 3, column 7')."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def load_params_file(path: str | Path | None = None) -> dict[str, dict]:
    """ROS params file -> {node_name: {param: value}}. Accepts `/**` (all nodes) sections, merged under each node;
    nested parameter mappings become dotted names. Raises ValueError (one line) for a file that cannot be read,
    is not YAML (or uses tags such as !!python: safe_load refuses them), or is not a ROS params file."""
    path = Path(path) if path is not None else default_config_path()
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the params file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not a valid params file: {yaml_error_text(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file ({exc.reason})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a ROS params file maps node names to {{ros__parameters: ...}}, got a "
                         f"{type(data).__name__}")
    nodes: dict[str, dict] = {}
    common = {}
    for node_name, section in data.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ValueError(f"{path}: section {node_name!r} has no 'ros__parameters' mapping")
        params = section["ros__parameters"] or {}
        if not isinstance(params, dict):
            raise ValueError(f"{path}: {node_name}.ros__parameters must map parameter names to values, got a "
                             f"{type(params).__name__}")
        params = _flatten({str(k): v for k, v in params.items()})
        if node_name == "/**":
            common = params
        else:
            nodes[str(node_name).lstrip("/")] = dict(params)
    return {name: {**common, **params} for name, params in nodes.items()}


def unknown_name_text(name: str, known) -> str:
    """'name' plus the nearest known name when one is close (difflib): "'substepz' (did you mean 'substeps'?)"."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return repr(name) + (f" (did you mean {close[0]!r}?)" if close else "")


def check_parameter_names(overrides: dict[str, dict], path: str | Path | None = None) -> None:
    """Raise ValueError naming every node and parameter in `overrides` ({node: {param: value}}) that the params file
    `path` (default config/pipeline.yaml, the single source of defaults) does not list, with the nearest names."""
    defaults = load_params_file(path)
    problems = []
    for node, params in overrides.items():
        if node not in defaults:
            problems.append(f"unknown node {unknown_name_text(node, defaults)}")
            continue
        known = list(defaults[node]) + list(ROS_BUILTIN_PARAMETERS)
        problems += [f"{node} has no parameter {unknown_name_text(name, known)}" for name in params
                     if name not in known]
    if problems:
        raise ValueError("; ".join(problems))


def node_defaults(node_name: str, path: str | Path | None = None) -> dict:
    nodes = load_params_file(path)
    if node_name not in nodes:
        raise ValueError(f"params file has no section for node {node_name!r}; it has {sorted(nodes)}")
    return nodes[node_name]


def _warn_unknown(node, by_name: dict, defaults: dict, section: str) -> None:
    """Warn (with the nearest name) about parameters that reach this node but that it does not have: keys of its
    params file section and overrides (--ros-args -p / --params-file, parameter_overrides). rclpy ignores them."""
    known = list(by_name) + list(ROS_BUILTIN_PARAMETERS)
    given = {f"{CONFIG_NAME} section {section!r}": list(defaults),
             "the overrides": list(getattr(node, "_parameter_overrides", {}) or {})}
    for where, names in given.items():
        unknown = [unknown_name_text(n, known) for n in names if n not in known]
        if unknown:
            node.get_logger().warning(f"ignoring unknown parameter(s) in {where}: {', '.join(unknown)}")


def declare_parameters(node, specs: list[ParamSpec], defaults_section: str,
                       on_change: Callable[[dict], None] | None = None) -> dict:
    """Declare `specs` on `node` with defaults from the params file section `defaults_section`.

    Returns {name: value} of the values in effect (defaults overridden by --ros-args / parameter_overrides).
    Raises ValueError when a default is missing or an override is invalid. Later set_parameters calls are
    validated by the same rules; accepted changes are passed to on_change({name: value})."""
    defaults = node_defaults(defaults_section)
    missing = [s.name for s in specs if s.name not in defaults]
    if missing:
        raise ValueError(f"{default_config_path()}: node {defaults_section!r} lacks defaults for {missing}")
    by_name = {s.name: s for s in specs}
    _warn_unknown(node, by_name, defaults, defaults_section)
    values = {}
    for spec in specs:
        default = spec.coerce(defaults[spec.name])
        problem = spec.error(default)
        if problem:
            raise ValueError(f"bad default in {CONFIG_NAME}: {problem}")
        try:
            param = node.declare_parameter(spec.name, default, spec.descriptor())
        except ParameterException as exc:  # an override out of range or of the wrong type
            raise ValueError(f"node {node.get_name()}: bad value for parameter {spec.name!r}: {exc}") from None
        value = param.value
        problem = spec.error(value)
        if problem:
            raise ValueError(f"node {node.get_name()}: {problem}")
        values[spec.name] = value

    def validate(params: list[Parameter]) -> SetParametersResult:
        changed = {}
        for p in params:
            spec = by_name.get(p.name)
            if spec is None:
                continue  # e.g. use_sim_time, owned by rclpy
            problem = spec.error(p.value)
            if problem is None and spec.read_only:
                problem = f"{p.name} is read-only after start-up"
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            changed[p.name] = p.value
        if changed and on_change is not None:
            try:
                on_change(changed)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(validate)
    return values
