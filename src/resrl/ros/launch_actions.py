"""launch_ros actions for a resrl graph (resrl.launch_graph), shared by launch/*.launch.py.

Imported only by launch files: launch / launch_ros come with an apt ROS 2 install (the PyPI
wheels have no ``ros2 launch``; there ``python -m resrl.launch_runner`` starts the same specs).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from resrl.launch_graph import GRAPHS
from resrl.launch_runner import RESPAWN_DELAY_S


def graph_actions(graph: str) -> list:
    """One DeclareLaunchArgument per launch argument, then the graph's nodes (resolved at launch
    time from the argument values)."""
    build, args = GRAPHS[graph]

    def nodes(context, *_, **__):
        share = get_package_share_directory("resrl")
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in args}
        return [
            Node(package="resrl", executable=spec.executable, name=spec.name, output="screen",
                 parameters=[os.path.join(share, p) for p in spec.params] + [spec.overrides],
                 remappings=spec.remappings, respawn=spec.respawn, respawn_delay=RESPAWN_DELAY_S)
            for spec in build(**values)
        ]

    return ([DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in args]
            + [OpaqueFunction(function=nodes)])


def rviz_action(use_sim_time: bool = False):
    """RViz with rviz/resrl.rviz when use_rviz:=true."""
    share = get_package_share_directory("resrl")
    return Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                arguments=["-d", os.path.join(share, "rviz", "resrl.rviz")],
                parameters=[{"use_sim_time": use_sim_time}],
                condition=IfCondition(LaunchConfiguration("use_rviz")))
