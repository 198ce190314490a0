"""A real UR arm (ur_robot_driver) + the resrl nodes, learning with VGM on wall-clock time.

    ros2 launch resrl ur_vgm.launch.py vla_host:=<gpu-host> vla_port:=8000 mode:=vgm

Start first (docs/robots.md): ur_robot_driver with MoveIt Servo (or FZI cartesian_controllers),
the RealSense camera, the pose tracker and the VLA policy server; or pass start_driver:=true
ur_type:=<model> robot_ip:=<ip> to include ur_robot_driver's ur_control.launch.py here. The node
list lives in resrl.launch_graph (shared with `python -m resrl.launch_runner ur_vgm`).
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

GRAPH, ARGS = GRAPHS["ur_vgm"]


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
            # Resolved only when start_driver:=true, so ur_robot_driver is needed only then.
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(PathJoinSubstitution(
                    [FindPackageShare("ur_robot_driver"), "launch", "ur_control.launch.py"])),
                launch_arguments={"ur_type": LaunchConfiguration("ur_type"),
                                  "robot_ip": LaunchConfiguration("robot_ip")}.items(),
                condition=IfCondition(LaunchConfiguration("start_driver"))),
            OpaqueFunction(function=_nodes),
            Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                 arguments=["-d", os.path.join(share, "rviz", "resrl.rviz")],
                 condition=IfCondition(LaunchConfiguration("use_rviz"))),
        ]
    )
