"""launch_ros actions for a resrl graph (resrl.launch_graph), shared by launch/*.launch.py.

Imported only by launch files (launch / launch_ros: an apt ROS 2 install, or scripts/setup.sh
installs them from ../shared/ros2 into the PyPI-wheel venv).

Besides one ``Node`` per spec:
- the operator console (a spec with ``console``) is not started under ``console:=terminal``: a
  process under ``ros2 launch`` gets no terminal on stdin, so the launch prints the command that
  starts it in a second terminal (plain ``ros2 run``, works over SSH);
- a node that exits because a ROS package it needs is missing (resrl.deps) stops the whole graph,
  saying which node and what to install, instead of leaving its peers waiting for it;
- the node that ``ends_session`` (the learner) stops the graph when its session is over;
- ``compose:=a,b,c`` hosts those nodes in one resrl_container process (resrl.launch_graph.composed),
  with the command line resrl.launch_runner gives it too.
"""
import os
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from resrl.deps import MISSING_DEPENDENCY_EXIT
from resrl.launch_graph import GRAPHS
from resrl.launch_runner import RESPAWN_DELAY_S, command_args, overrides_file


# Seconds from SIGINT (Ctrl-C) to SIGTERM: a loaded 2-core machine needs more than launch's 5 s
# for a node that is mid-update (the graph tests give nodes 20 s as well).
STOP_GRACE_S = "20"


def console_command(spec, share: str) -> str:
    """The second-terminal command that starts the operator console with the graph's parameters."""
    args = [f"--params-file {os.path.join(share, p)}" for p in spec.params]
    args += [f"-r {src}:={dst}" for src, dst in spec.remappings]
    return "ros2 run resrl keyboard_node --ros-args " + " ".join(args)


def _exit_handler(spec, node):
    def on_exit(event, context):
        if event.returncode == MISSING_DEPENDENCY_EXIT:
            who = spec.name + (f" ({', '.join(m.name for m in spec.members)})" if spec.members else "")
            why = (f"{who} cannot run as configured: a ROS package it needs is missing, or a bad "
                   "--executor (its one-line message above)")
            return [LogInfo(msg=f"resrl: {why}; stopping the graph"), Shutdown(reason=why)]
        if spec.ends_session:
            return [Shutdown(reason=f"{spec.name} exited (code {event.returncode}): session over")]
        return None
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=on_exit))


def graph_actions(graph: str) -> list:
    """One DeclareLaunchArgument per launch argument, then the graph's nodes (resolved at launch
    time from the argument values)."""
    build, args = GRAPHS[graph]

    def nodes(context, *_, **__):
        share = get_package_share_directory("resrl")
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in args}
        actions = []
        for spec in build(**values):
            if spec.console and values.get("console", "terminal") == "terminal":
                actions.append(LogInfo(msg="resrl operator console (keys, labels, takeover, live status): in a "
                                           f"second terminal run\n    {console_command(spec, share)}"))
                continue
            if spec.members:
                # No name: launch_ros' `-r __node:=` would give every member the same one.
                node = Node(package="resrl", executable=spec.executable, exec_name=spec.name, output="screen",
                            arguments=command_args(spec, Path(share)), sigterm_timeout=STOP_GRACE_S,
                            respawn=spec.respawn, respawn_delay=RESPAWN_DELAY_S)
            else:
                overrides = overrides_file(spec.name, [spec])
                node = Node(package="resrl", executable=spec.executable, name=spec.name, output="screen",
                            arguments=["--executor", spec.executor] if spec.executor else [],
                            parameters=[os.path.join(share, p) for p in spec.params] + ([overrides] if overrides else []),
                            remappings=spec.remappings, sigterm_timeout=STOP_GRACE_S,
                            respawn=spec.respawn, respawn_delay=RESPAWN_DELAY_S)
            actions += [node, _exit_handler(spec, node)]
        return actions

    return ([DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in args]
            + [OpaqueFunction(function=nodes)])


def rviz_action(use_sim_time: bool = False):
    """RViz with rviz/resrl.rviz when use_rviz:=true."""
    share = get_package_share_directory("resrl")
    return Node(package="rviz2", executable="rviz2", name="rviz2", output="screen",
                arguments=["-d", os.path.join(share, "rviz", "resrl.rviz")],
                parameters=[{"use_sim_time": use_sim_time}],
                condition=IfCondition(LaunchConfiguration("use_rviz")))
