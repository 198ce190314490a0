"""Simulated Franka + the seven resrl nodes, learning with VGM.

    ros2 launch resrl sim_vgm.launch.py task:=pick_place mode:=vgm obs_mode:=object use_rviz:=true

The node list lives in resrl.launch_graph. The operator console runs in a terminal of its own:
the launch prints its `ros2 run resrl keyboard_node ...` command (session:=manual or keyboard:=true).
"""
from launch import LaunchDescription

from resrl.ros.launch_actions import graph_actions, rviz_action


def generate_launch_description():
    return LaunchDescription(graph_actions("sim_vgm") + [rviz_action(use_sim_time=True)])
