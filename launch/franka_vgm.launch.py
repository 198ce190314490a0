"""A real Franka (franka_ros2) + the resrl nodes, learning with VGM on wall-clock time.

    ros2 launch resrl franka_vgm.launch.py vla_host:=<gpu-host> vla_port:=8000 mode:=vgm

Start first (docs/robots.md): the franka_ros2 driver with a Cartesian target controller, the
RealSense camera, the pose tracker and the VLA policy server; or pass start_driver:=true
robot_ip:=<ip> to include franka_bringup's franka.launch.py here. The node list lives in
resrl.launch_graph. The operator console runs in a second terminal: the launch prints the command.
"""
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from resrl.ros.launch_actions import graph_actions, rviz_action


def generate_launch_description():
    return LaunchDescription(graph_actions("franka_vgm") + [
        # Resolved only when start_driver:=true, so franka_bringup is needed only then.
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution(
                [FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])),
            launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"), "load_gripper": "true"}.items(),
            condition=IfCondition(LaunchConfiguration("start_driver"))),
        rviz_action(),
    ])
