"""resrl_container: several resrl node classes in one process and one executor, as
rclcpp_components' component_container does for C++ nodes.

    ros2 run resrl resrl_container --nodes camera_depth,pose_tracker,residual_policy,vgm_arbiter \
        --ros-args --params-file <share>/config/sim_vgm.yaml

A node is named by its executable without ``_node`` (``ros2 run resrl camera_depth_node`` ->
``camera_depth``). Each keeps its own node name, so the node-keyed sections of the YAML reach it
as they do in a process of its own. Every ROS argument reaches every node of the process, so a
rename or a remap meant for one node uses rcl's node-targeted form: ``-r camera_depth:__node:=cam``
renames only the node created as camera_depth, ``-r residual_policy:/resrl/x:=/y`` remaps only in
residual_policy (a rule names the node as it is after renaming). A plain ``-r __node:=X`` would
give every node the same name. ``ros2 launch ... compose:=...`` writes these arguments
(resrl.launch_graph.composed, resrl.launch_runner.command_args).

The stop contract is the single node's (resrl.ros.node_main.run_nodes): SIGINT/SIGTERM at any
moment exits 0 within 5 s, every node's ``on_shutdown`` runs, a node that cannot be built (a
missing ROS package: exit 78) stops the process as it would stop its own.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List

from resrl.launch_graph import NODE_EXECUTABLES, OPTIONAL_EXECUTABLES, component_name
from resrl.ros.node_main import DEFAULT_EXECUTOR, EXECUTORS, interruptibly, run_nodes

COMPONENTS = tuple(component_name(exe) for exe in NODE_EXECUTABLES + OPTIONAL_EXECUTABLES)


def node_class(component: str):
    """The node class of ``resrl.nodes.<component>_node``: the one rclpy Node subclass it defines."""
    from rclpy.node import Node
    module = importlib.import_module(f"resrl.nodes.{component}_node")
    classes = [obj for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, Node) and obj.__module__ == module.__name__]
    if len(classes) != 1:
        raise RuntimeError(f"{module.__name__} defines {len(classes)} node classes ({classes}); expected one")
    return classes[0]


def parse_components(argv: List[str]) -> List[str]:
    """The ``--nodes`` list of a command line (the part before ``--ros-args``)."""
    own = argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv
    parser = argparse.ArgumentParser(prog="resrl_container", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", required=True,
                        help=f"comma-separated nodes to host, of: {', '.join(COMPONENTS)}")
    parser.add_argument("--executor", choices=EXECUTORS, default=DEFAULT_EXECUTOR,
                        help="the process's executor (resrl.ros.node_main.EXECUTORS)")
    names = [n.strip() for n in parser.parse_args(own).nodes.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENTS]
    if not names or unknown or len(set(names)) != len(names):
        parser.error(f"--nodes {','.join(names)}: each of {', '.join(COMPONENTS)} at most once "
                     f"(unknown: {unknown})")
    return names


def main(argv=None) -> int:
    argv = list(sys.argv if argv is None else argv)
    components = parse_components(argv[1:])
    classes = interruptibly(lambda: [node_class(c) for c in components])
    return run_nodes(classes, argv)


if __name__ == "__main__":
    sys.exit(main())
