"""Pip-only runner: `reconphys-launch pipeline` starts the pipeline's nodes in ONE process (an executor
per node, each in its own thread: ros/spin.py IsolatedExecutor)
with parameters from config/pipeline.yaml plus overrides, for installs without `ros2 launch` (launch_ros is not
on PyPI). The node list is reconphys_ros.ros.graph, the same one launch/pipeline.launch.py reads.

    reconphys-launch pipeline                          # embedded example clip -> ... -> simulation
    reconphys-launch pipeline --source my.mp4 --output-dir out --record --controller
    reconphys-launch pipeline -p simulation.substeps=40 -p reconstruction.known_mass=0.25
    reconphys-launch pipeline --list                   # print the nodes it would start
"""
from __future__ import annotations

import argparse
import sys

import yaml

from reconphys_ros.ros.graph import OPTION_DEFAULTS, NodeEntry, selected_nodes

COMMANDS = ("pipeline",)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reconphys-launch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS, help="what to launch")
    parser.add_argument("--source", help="video_source.source: video file, image folder or dataset clip")
    parser.add_argument("--output-dir", help="reconstruction.output_dir")
    parser.add_argument("--bag-dir", help="bag_recorder.output_dir (with --record)")
    parser.add_argument("--no-video", action="store_true", help="do not start video_source (use a real camera)")
    parser.add_argument("--record", action="store_true", help="also start bag_recorder")
    parser.add_argument("--controller", action="store_true", help="also start the scripted gripper_controller")
    parser.add_argument("--params-file", help="extra ROS params file applied over config/pipeline.yaml")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                        help="override one parameter (VALUE parsed as YAML), repeatable")
    parser.add_argument("--list", action="store_true", help="print the nodes that would start and exit")
    return parser.parse_args(argv)


def node_options(args: argparse.Namespace) -> dict[str, bool]:
    return {"use_video": not args.no_video, "record": args.record, "controller": args.controller}


def _check_value(where: str, value) -> None:
    """ValueError unless `value` can be a ROS parameter value."""
    from rclpy.parameter import Parameter
    problem = value is None
    if not problem:
        try:
            Parameter("value", value=value)
        except (TypeError, ValueError):
            problem = True
    if problem:
        raise ValueError(f"{where}: {value!r} is not a ROS parameter value (a bool, int, float, string or a list of "
                         "one of these)")


def parameter_overrides(args: argparse.Namespace) -> dict[str, dict]:
    """{node: {param: value}} from --params-file, the shortcut flags and -p, in that order. Raises ValueError (one
    line) for an unreadable params file, bad YAML, a value that is no parameter value, or a node or parameter name
    config/pipeline.yaml does not know (with the nearest name)."""
    from reconphys_ros.ros.parameters import check_parameter_names, load_params_file, yaml_error_text
    overrides: dict[str, dict] = load_params_file(args.params_file) if args.params_file else {}
    for node, params in overrides.items():
        for name, value in params.items():
            _check_value(f"{args.params_file}: {node}.{name}", value)
    shortcuts = {("video_source", "source"): args.source, ("reconstruction", "output_dir"): args.output_dir,
                 ("bag_recorder", "output_dir"): args.bag_dir}
    for (node, name), value in shortcuts.items():
        if value is not None:
            overrides.setdefault(node, {})[name] = value
    for item in args.param:
        key, sep, text = item.partition("=")
        node, dot, name = key.partition(".")
        if not (sep and dot and node and name):
            raise ValueError(f"-p expects NODE.NAME=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"-p {key}: the value {text!r} is not valid YAML: {yaml_error_text(exc)}") from None
        _check_value(f"-p {key}", value)
        overrides.setdefault(node, {})[name] = value
    check_parameter_names(overrides)
    return overrides


def create_nodes(entries: list[NodeEntry], overrides: dict[str, dict], context) -> list:
    """Instantiate the entries' Node classes in `context` with their parameter overrides."""
    from rclpy.parameter import Parameter
    known = {e.name for e in entries}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"parameters given for nodes that are not started: {sorted(unknown)}; "
                         f"started: {sorted(known)}")
    nodes = []
    try:
        for entry in entries:
            params = [Parameter(k, value=v) for k, v in overrides.get(entry.name, {}).items()]
            nodes.append(entry.node_class()(context=context, parameter_overrides=params))
    except Exception:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def main(argv=None) -> int:
    args = parse_args(argv)
    entries = selected_nodes(**node_options(args))
    if args.list:
        print("\n".join(e.name for e in entries))
        return 0
    try:
        overrides = parameter_overrides(args)
    except ValueError as exc:  # one line, no traceback: a typo or a bad value is the user's to fix
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import rclpy
    from reconphys_ros.ros.memory import limit_malloc_arenas
    from reconphys_ros.ros.spin import (IsolatedExecutor, exit_after_signal, init_without_signal_handlers, spin_nodes,
                                        stop_on_signals)
    limit_malloc_arenas()
    context = rclpy.context.Context()
    init_without_signal_handlers(args=[], context=context)
    stop = stop_on_signals()
    try:
        nodes = create_nodes(entries, overrides, context)
    except ValueError as exc:
        rclpy.try_shutdown(context=context)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"reconphys-launch: running {', '.join(e.name for e in entries)} (Ctrl-C to stop)", flush=True)
    spin_nodes(nodes, IsolatedExecutor(context), stop)
    rclpy.try_shutdown(context=context)
    if stop.is_set():
        exit_after_signal()  # nodes are closed: skip the slow interpreter teardown (SIGINT shutdown < 2 s)
    return 0


assert set(OPTION_DEFAULTS) == {"use_video", "record", "controller"}, "update node_options with the graph options"

if __name__ == "__main__":
    sys.exit(main())
