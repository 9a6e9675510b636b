"""ros2 launch reconphys_ros pipeline.launch.py [source:=...] [output_dir:=...] [use_video:=true] [record:=false]
[controller:=false] [bag_dir:=bags] [params_file:=<share>/config/pipeline.yaml]

Starts the nodes listed in reconphys_ros.ros.graph (the list `reconphys-launch pipeline` uses too), each with the
params file plus the argument overrides. Needs launch_ros (a ROS 2 install); without it use `reconphys-launch`.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from reconphys_ros.ros.graph import OPTION_DEFAULTS, PIPELINE_NODES
from reconphys_ros.ros.parameters import default_config_path, load_params_file

PACKAGE = "reconphys_ros"
# launch argument -> (node, parameter) it overrides
PARAMETER_ARGUMENTS = {"source": ("video_source", "source"), "output_dir": ("reconstruction", "output_dir"),
                       "bag_dir": ("bag_recorder", "output_dir")}


def generate_launch_description():
    arguments = [DeclareLaunchArgument("params_file", default_value=str(default_config_path()),
                                       description="ROS params file with every node's parameters")]
    arguments += [DeclareLaunchArgument(name, default_value=str(value).lower(),
                                        description=f"start the nodes enabled by '{name}'")
                  for name, value in OPTION_DEFAULTS.items()]
    defaults = load_params_file(default_config_path())  # the argument defaults are the params file's values
    arguments += [DeclareLaunchArgument(name, default_value=str(defaults[node][param]),
                                        description=f"overrides {node}.{param}")
                  for name, (node, param) in PARAMETER_ARGUMENTS.items()]
    nodes = []
    for entry in PIPELINE_NODES:
        overrides = {param: LaunchConfiguration(name) for name, (node, param) in PARAMETER_ARGUMENTS.items()
                     if node == entry.name}
        nodes.append(Node(
            package=PACKAGE, executable=entry.executable, name=entry.name, output="screen", emulate_tty=True,
            parameters=[LaunchConfiguration("params_file")] + ([overrides] if overrides else []),
            condition=IfCondition(LaunchConfiguration(entry.option)) if entry.option else None,
        ))
    return LaunchDescription(arguments + nodes)
