"""A real Franka (franka_ros2) + the resrl nodes, learning with VGM on wall-clock time.

    ros2 launch resrl franka_vgm.launch.py vla_host:=<gpu-host> vla_port:=8000 mode:=vgm

Start first (docs/robots.md): the franka_ros2 driver with a Cartesian target controller, the
RealSense camera, the pose tracker and the VLA policy server; or pass start_driver:=true
robot_ip:=<ip> to include franka_bringup's franka.launch.py here. The node list lives in
resrl.launch_graph (shared with `python -m resrl.launch_runner franka_vgm`).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from resrl.launch_graph import GRAPHS

GRAPH, ARGS = GRAPHS["franka_vgm"]


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
            # Resolved only when start_driver:=true, so franka_bringup is needed only then.
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(PathJoinSubstitution(
                    [FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])),
                launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"), "load_gripper": "true"}.items(),
                condition=IfCondition(LaunchConfiguration("start_driver"))),
            OpaqueFunction(function=_nodes),
            Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                 arguments=["-d", os.path.join(share, "rviz", "resrl.rviz")],
                 condition=IfCondition(LaunchConfiguration("use_rviz"))),
        ]
    )
