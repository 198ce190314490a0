"""Simulated Franka + the seven resrl nodes, learning with VGM.

    ros2 launch resrl sim_vgm.launch.py task:=pick_place mode:=vgm obs_mode:=object use_rviz:=true

The node list lives in resrl.launch_graph (shared with `python -m resrl.launch_runner sim_vgm`,
which starts the same graph where launch_ros is not installed).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from resrl.launch_graph import GRAPHS

GRAPH, ARGS = GRAPHS["sim_vgm"]


def _nodes(context, *_, **__):
    share = get_package_share_directory("resrl")
    values = {a.name: LaunchConfiguration(a.name).perform(context) for a in ARGS}
    return [
        Node(package="resrl", executable=spec.executable, name=spec.name, output="screen",
             parameters=[os.path.join(share, p) for p in spec.params] + [spec.overrides],
             remappings=spec.remappings)
        for spec in GRAPH(**values)
    ]


def generate_launch_description():
    share = get_package_share_directory("resrl")
    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in ARGS]
        + [
            OpaqueFunction(function=_nodes),
            Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                 arguments=["-d", os.path.join(share, "rviz", "resrl.rviz")],
                 parameters=[{"use_sim_time": True}],
                 condition=IfCondition(LaunchConfiguration("use_rviz"))),
        ]
    )
