"""A real UR arm (ur_robot_driver) + the resrl nodes, learning with VGM on wall-clock time.

    ros2 launch resrl ur_vgm.launch.py vla_host:=<gpu-host> vla_port:=8000 mode:=vgm

Start first (docs/robots.md): ur_robot_driver with MoveIt Servo (or FZI cartesian_controllers),
the RealSense camera, the pose tracker and the VLA policy server; or pass start_driver:=true
ur_type:=<model> robot_ip:=<ip> to include ur_robot_driver's ur_control.launch.py here. The node
list lives in resrl.launch_graph. The operator console runs in a second terminal: the launch prints the command.
"""
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from resrl.ros.launch_actions import graph_actions, rviz_action


def generate_launch_description():
    return LaunchDescription(graph_actions("ur_vgm") + [
        # Resolved only when start_driver:=true, so ur_robot_driver is needed only then.
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution(
                [FindPackageShare("ur_robot_driver"), "launch", "ur_control.launch.py"])),
            launch_arguments={"ur_type": LaunchConfiguration("ur_type"),
                              "robot_ip": LaunchConfiguration("robot_ip")}.items(),
            condition=IfCondition(LaunchConfiguration("start_driver"))),
        rviz_action(),
    ])
