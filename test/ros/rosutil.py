"""Helpers for tests that run real ROS 2 processes."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install_prefix() -> Path:
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if (Path(prefix) / "share" / "resrl" / "package.xml").is_file():
            return Path(prefix)
    raise RuntimeError("resrl is not installed: run scripts/setup.sh and source scripts/env.sh")


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def spawn_python(script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    """SIGINT (a clean node shutdown), then kill after ``timeout``; returns the process output."""
    proc.send_signal(2)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def interrupt(proc: subprocess.Popen, timeout: float = 20.0):
    """SIGINT, then kill after ``timeout`` (the output is read elsewhere); returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


_RCLPY_GC_NOISE = re.compile(
    r"Exception ignored in: <function Future\.__del__.*?AttributeError: 'Task' object has no attribute "
    r"'_exception'\n?", re.S)


def tracebacks(out: str) -> bool:
    """A node's output has a traceback of its own. rclpy's Task can be collected half-built at
    interpreter exit ("Exception ignored in Future.__del__ ... no attribute '_exception'"): that
    is rclpy's, printed after the node has shut down, and is not counted."""
    return "Traceback" in _RCLPY_GC_NOISE.sub("", out)
