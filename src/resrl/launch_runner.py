"""Start a resrl node graph as plain processes, one log file per node (tests and benchmarks).

Users start graphs with ``ros2 launch resrl <graph>.launch.py`` (real launch_ros; scripts/setup.sh
installs it from ../shared/ros2 where no apt ROS 2 is sourced). This module stays for what
``ros2 launch`` does not give a harness: ``GraphProcess`` with per-node overrides and per-node log
files (test/ros/test_graph_integration.py), and the learner's exit code as the command's
(``python -m resrl.launch_runner sim_vgm ...``, used by benchmarks/table1.py and bench_latency.py).

Each NodeSpec of ``resrl.launch_graph`` becomes one OS process running the installed executable
with the same ``--ros-args`` launch_ros would pass (a ``compose:=`` group is one resrl_container
process). Ctrl-C (or SIGTERM) stops the graph the way
launch does: SIGINT to every node, then SIGTERM, then SIGKILL after grace periods. A node whose
spec says ``respawn`` is started again when it dies (launch_ros ``respawn``); when any other node
exits, the whole graph is stopped.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from resrl.launch_graph import DEFAULT_NODE_NAMES, GRAPHS, NodeSpec, component_name, default_args

RESPAWN_DELAY_S = 1.0   # as launch_ros' respawn_delay: a node that dies at start does not spin


def package_share() -> Path:
    """share/resrl of the install space (where launch/, config/ and rviz/ are installed)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory("resrl"))
    except Exception:  # not installed: run from the source tree
        return Path(__file__).resolve().parents[2]


def executable_path(name: str) -> str:
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "lib" / "resrl" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"node executable '{name}' not found under AMENT_PREFIX_PATH/lib/resrl or PATH")


def overrides_file(name: str, members: List[NodeSpec]) -> Optional[str]:
    """The nodes' overrides (launch arguments) as a parameter file scoped to each node's name, to
    load after the YAML files; None when there are none. Node-scoped on purpose: rcl applies a
    node's own YAML section after every "/**" entry, whatever the file order, so a "/**"-scoped
    override (``-p``, or the dict launch_ros writes for ``parameters=[{...}]``) silently loses
    against the same key in the YAML's node section."""
    overrides = {m.name: {"ros__parameters": dict(m.overrides)} for m in members if m.overrides}
    if not overrides:
        return None
    fd, path = tempfile.mkstemp(prefix=f"resrl-{name}-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(overrides, f)
    return path


def command_args(spec: NodeSpec, share: Path) -> List[str]:
    """The arguments after the executable: the ``--ros-args`` launch_ros would pass the node
    (``-r __node:=<name>``, the parameter files, the overrides, the remaps). A resrl_container
    spec gets ``--nodes`` and the same per member in rcl's node-targeted forms
    (resrl.ros.container): every argument of a process reaches all of its nodes."""
    members = spec.members or [spec]
    args = ["--nodes", ",".join(component_name(m.executable) for m in members)] if spec.members else []
    args += ["--executor", spec.executor] if spec.executor else []
    args.append("--ros-args")
    if not spec.members:
        args += ["-r", f"__node:={spec.name}"]
    for m in spec.members:
        default = DEFAULT_NODE_NAMES[m.executable]
        if m.name != default:
            args += ["-r", f"{default}:__node:={m.name}"]
    for rel in spec.params:
        path = share / rel
        if not path.is_file():
            raise FileNotFoundError(f"{spec.name}: parameter file {path} does not exist")
        args += ["--params-file", str(path)]
    path = overrides_file(spec.name, members)
    if path:
        args += ["--params-file", path]
    for m in members:
        target = f"{m.name}:" if spec.members else ""
        args += [a for src, dst in m.remappings for a in ("-r", f"{target}{src}:={dst}")]
    return args


class GraphProcess:
    def __init__(self, specs: List[NodeSpec], share: Optional[Path] = None, log_dir: Optional[Path] = None):
        self.specs = specs
        self.share = share or package_share()
        self.log_dir = log_dir
        self.procs: Dict[str, subprocess.Popen] = {}
        self.restarts: Dict[str, List[int]] = {}     # name -> exit codes of the runs that were respawned
        self._died_at: Dict[str, float] = {}

    def start(self) -> None:
        for spec in self.specs:
            self._start(spec)

    def _start(self, spec: NodeSpec) -> None:
        cmd = [executable_path(spec.executable)] + command_args(spec, self.share)
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{spec.name}.log", "ab")
        self.procs[spec.name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                                 start_new_session=True)

    def poll(self) -> Dict[str, Optional[int]]:
        return {name: p.poll() for name, p in self.procs.items()}

    def supervise(self) -> Dict[str, Optional[int]]:
        """Respawn the respawning nodes that died (after RESPAWN_DELAY_S); the exit codes of the
        others, as poll()."""
        now = time.monotonic()
        for spec in self.specs:
            code = self.procs[spec.name].poll()
            if not spec.respawn or code is None:
                continue
            died = self._died_at.setdefault(spec.name, now)
            if now - died >= RESPAWN_DELAY_S:
                del self._died_at[spec.name]
                self.restarts.setdefault(spec.name, []).append(code)
                print(f"[launch_runner] {spec.name} exited with {code}; respawning", flush=True)
                self._start(spec)
        return {name: (None if spec.respawn else self.procs[name].poll())
                for name, spec in ((s.name, s) for s in self.specs)}

    def stop(self, sigint_timeout: float = 5.0, sigterm_timeout: float = 5.0) -> Dict[str, int]:
        for sig, timeout in ((signal.SIGINT, sigint_timeout), (signal.SIGTERM, sigterm_timeout),
                             (signal.SIGKILL, 5.0)):
            alive = [p for p in self.procs.values() if p.poll() is None]
            if not alive:
                break
            for p in alive:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        return {name: p.wait() for name, p in self.procs.items()}


def parse_launch_args(argv: List[str], graph: str) -> Dict[str, str]:
    args = default_args(graph)
    for item in argv:
        if ":=" not in item:
            raise SystemExit(f"launch argument '{item}' must look like name:=value")
        key, value = item.split(":=", 1)
        if key not in args:
            raise SystemExit(f"unknown launch argument '{key}' for {graph}; known: {sorted(args)}")
        args[key] = value
    return args


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in GRAPHS:
        print(f"usage: python -m resrl.launch_runner {{{'|'.join(GRAPHS)}}} [name:=value ...]", file=sys.stderr)
        return 2
    graph = argv.pop(0)
    args = parse_launch_args(argv, graph)
    specs = GRAPHS[graph][0](**args)
    run = GraphProcess(specs)
    stopping = {"flag": False}

    def _stop(*_):
        stopping["flag"] = True
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    run.start()
    print(f"[launch_runner] started {graph}: {', '.join(s.name for s in specs)}", flush=True)
    rc = 0
    while not stopping["flag"]:
        exited = {n: c for n, c in run.supervise().items() if c is not None}
        if exited:
            name, code = next(iter(exited.items()))
            print(f"[launch_runner] {name} exited with {code}; stopping the graph", flush=True)
            rc = 0 if code == 0 else 1
            break
        time.sleep(0.2)
    codes = run.stop()
    print(f"[launch_runner] stopped: {codes}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
