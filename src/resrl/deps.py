"""A ROS package a node needs is not installed: one line that says what to install, no traceback.

Driver interface packages (vision_msgs, franka_msgs, control_msgs, ur_dashboard_msgs) are not on
PyPI. A node that needs one raises ``MissingDependency``; ``resrl.ros.node_main.run_node`` prints
its message as a single line and exits with ``MISSING_DEPENDENCY_EXIT``, and the launch files stop
the whole graph saying which node could not start and why (resrl.ros.launch_actions).
"""
from __future__ import annotations

import importlib

MISSING_DEPENDENCY_EXIT = 78   # EX_CONFIG (sysexits.h): the node cannot run as configured


class MissingDependency(ImportError):
    def __init__(self, package: str, needed_for: str, install: str):
        self.package, self.needed_for, self.install = package, needed_for, install
        super().__init__(f"{needed_for} needs {package}, a ROS package that is not installed: {install}")


def apt_hint(package: str, source_workspace: str = "") -> str:
    apt = f"sudo apt install ros-$ROS_DISTRO-{package.replace('_', '-')}"
    return (f"{apt}, or source the workspace that builds it ({source_workspace})" if source_workspace
            else f"{apt} (it is not on PyPI)")


def require(module: str, needed_for: str, install: str = "", source_workspace: str = ""):
    """``importlib.import_module(module)`` or MissingDependency naming the package to install."""
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if getattr(exc, "name", None) not in (None, package) and not str(getattr(exc, "name", "")).startswith(package):
            raise   # the package is there but broken: that traceback is worth reading
        raise MissingDependency(package, needed_for, install or apt_hint(package, source_workspace)) from None
