"""Helpers for tests that run real ROS 2 processes."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def install_prefix() -> Path:
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if (Path(prefix) / "share" / "resrl" / "package.xml").is_file():
            return Path(prefix)
    raise RuntimeError("resrl is not installed: run scripts/setup.sh and source scripts/env.sh")


@contextlib.contextmanager
def ros_node(name: str):
    """A node of this test process, in a context of its own for the block."""
    import rclpy
    rclpy.init()
    node = rclpy.create_node(name)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()


class ChunkProbe:
    """A node of this test process that feeds a VLA node (``_tick`` every ``period_s``, in the
    subclass) and collects the chunks it publishes; spun in a thread of its own."""

    def __init__(self, name: str):
        import rclpy
        from resrl import topics
        from resrl.msg import ActionChunk
        from resrl.ros import qos
        self.node = rclpy.create_node(name)
        self.chunks = []
        self.node.create_subscription(ActionChunk, topics.VLA_CHUNK, self.chunks.append, qos.CONTROL)

    def start(self, period_s: float):
        from rclpy.executors import SingleThreadedExecutor
        self.node.create_timer(period_s, self._tick)
        from resrl.ros.spin_thread import SpinThread
        executor = SingleThreadedExecutor()
        executor.add_node(self.node)
        self.spinner = SpinThread(executor).start()

    def _tick(self):
        raise NotImplementedError

    def close(self):
        self.spinner.stop()
        self.node.destroy_node()


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class LineProcess:
    """A process whose output lines are collected as they come, so a test can wait for a line
    (an event) instead of a time."""

    def __init__(self, cmd, env=None, guard_s: float = 120.0, new_session: bool = False):
        self.guard_s = guard_s     # only against a hung test: every wait ends on an event first
        self.lines = []
        self.seen = threading.Condition()
        # new_session: its own process group, which a terminal's Ctrl-C reaches as a whole (killpg).
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=new_session)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.seen:
                self.lines.append(line)
                self.seen.notify_all()
        with self.seen:
            self.seen.notify_all()

    def wait_line(self, text: str) -> bool:
        """Block until a line containing ``text`` was printed (False if the process ended first)."""
        with self.seen:
            return self.seen.wait_for(lambda: any(text in line for line in self.lines) or self.proc.poll() is not None,
                                      self.guard_s) and any(text in line for line in self.lines)

    def wait_count(self, text: str, n: int) -> bool:
        """Block until ``n`` lines containing ``text`` were printed (False if the process ended first)."""
        count = lambda: sum(text in line for line in self.lines)  # noqa: E731
        with self.seen:
            return self.seen.wait_for(lambda: count() >= n or self.proc.poll() is not None,
                                      self.guard_s) and count() >= n

    def stop(self, sig) -> float:
        """Send ``sig``; seconds until the process had exited."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=self.guard_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        took = time.monotonic() - t0
        self.reader.join(timeout=self.guard_s)
        return took

    def wait(self) -> int:
        """The exit code once the process ended by itself (killed after the guard)."""
        try:
            self.proc.wait(timeout=self.guard_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=self.guard_s)
        return self.proc.returncode

    @property
    def out(self) -> str:
        return "".join(self.lines)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """Whatever a test's ``with`` block did, the process does not outlive it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return False


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PtyConsole:
    """A console process on a pseudo-terminal, as an operator's terminal runs it: type keys, read
    what the screen shows (ANSI escapes stripped). A reader thread drains the terminal all the
    time, as a real terminal does: an undrained pty fills up and blocks the console's writes."""

    KEEP_CHARS = 200_000

    def __init__(self, cmd, env=None):
        import pty
        self.master, slave = pty.openpty()
        env = dict(os.environ if env is None else env, TERM="xterm-256color", COLUMNS="120", LINES="40")
        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     close_fds=True, env=env)
        os.close(slave)
        self._text = ""
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True, name="pty-drain")
        self._reader.start()

    def _drain(self):
        import select
        while not self._closed.is_set():
            if not select.select([self.master], [], [], 0.1)[0]:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:   # the console exited and its side of the pty is gone
                return
            if not data:
                return
            with self._lock:   # the newest screens are what a test asks about
                self._text = (self._text + ANSI.sub("", data.decode(errors="ignore")))[-self.KEEP_CHARS:]

    @property
    def screen(self) -> str:
        with self._lock:
            return self._text

    def read(self) -> str:
        return self.screen

    def type(self, key: str):
        os.write(self.master, key.encode())

    def stop(self):
        import signal
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._closed.set()
        self._reader.join(timeout=5)
        os.close(self.master)


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


STOP_CONTRACT_S = 5.0   # resrl.ros.node_main: SIGINT/SIGTERM at any moment -> exit 0 within 5 s


def assert_clean_stop(process: LineProcess, took: float, what: str):
    """The stop contract: exit 0 within STOP_CONTRACT_S, no traceback, no stalled stop."""
    out = process.out
    assert process.proc.returncode == 0, f"{what}: exit code {process.proc.returncode}\n{out[-4000:]}"
    assert took < STOP_CONTRACT_S, f"{what}: took {took:.1f} s to stop\n{out[-4000:]}"
    assert not tracebacks(out), f"{what}: traceback\n{out[-4000:]}"
    assert "stop stalled" not in out, f"{what}: the stop watchdog had to end it\n{out[-4000:]}"
