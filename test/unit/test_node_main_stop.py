"""The stop handlers of resrl.ros.node_main, without ROS: a signal while the node modules import
exits 0 at once, and a StopRequested that something swallows during construction is raised again.

Each case runs in a subprocess (the handlers are process-wide and end with os._exit); the signal
goes out once the child printed "ready", and the 60 s waits only guard against a hung child.
"""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
GUARD_S = 60.0


def _child(body: str) -> subprocess.Popen:
    code = textwrap.dedent(body)
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               RESRL_ANNOUNCE_PHASES="1")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def _signal_when_ready(proc: subprocess.Popen, sig) -> str:
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.strip() == "ready":
            proc.send_signal(sig)
            break
    try:
        rest, _ = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:      # hung: fail without leaving it behind
            proc.kill()
            proc.wait()
    return "".join(out) + rest


def test_a_signal_during_the_imports_exits_zero_even_inside_a_finalizer():
    """Import churns the gc; a finalizer that runs when the signal lands must not swallow it
    (it used to print "Exception ignored ... StopRequested" and go on importing)."""
    proc = _child("""
        import gc, time
        from resrl.ros import node_main

        class Churn:
            def __init__(self):
                self.me = self                    # a cycle: only the gc frees it
            def __del__(self):
                time.sleep(0.001)                 # the signal tends to land in here

        def imports():
            print("ready", flush=True)
            while True:
                for _ in range(200):
                    Churn()
                gc.collect()

        node_main.interruptibly(imports)
        print("imports returned", flush=True)
    """)
    out = _signal_when_ready(proc, signal.SIGINT)
    assert proc.returncode == 0, out
    assert "[resrl-phase] exit" in out, out
    assert "Traceback" not in out and "Exception ignored" not in out, out
    assert "imports returned" not in out, out


def test_a_swallowed_stop_during_construction_is_raised_again():
    """A constructor that catches everything (here on purpose, in real code a broad except or a
    finalizer) does not turn a stop into a node that starts anyway."""
    proc = _child("""
        import time
        from resrl.ros import node_main

        stopper = node_main.install_stop_handlers()
        swallowed = 0
        try:
            with stopper.interruptible():
                while True:
                    try:
                        if not swallowed:
                            print("ready", flush=True)   # inside the try: the first stop is swallowed
                        while True:
                            time.sleep(0.01)
                    except BaseException:
                        swallowed += 1
                        if swallowed > 1:
                            raise
        except node_main.StopRequested:
            print(f"stopped after {swallowed} swallowed", flush=True)
    """)
    out = _signal_when_ready(proc, signal.SIGTERM)
    assert proc.returncode == 0, out
    assert "stopped after 2 swallowed" in out, out


def test_the_gc_runs_again_after_construction():
    proc = _child("""
        import gc
        from resrl.ros import node_main
        stopper = node_main.install_stop_handlers()
        with stopper.interruptible():
            inside = gc.isenabled()
        print("gc", inside, gc.isenabled(), flush=True)
    """)
    out, _ = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 0 and "gc False True" in out, out


def test_a_signal_while_the_main_thread_holds_the_stop_events_lock_still_stops():
    """The main thread waits on the stop event for its whole life, and Event.wait holds the
    event's lock for a few bytecodes each time it wakes. A handler that set the event itself
    deadlocked when the signal landed there (a residual node once ignored launch's SIGINT, SIGINT
    and SIGTERM until SIGKILL). Here the main thread holds that lock on purpose when the signal
    lands; the old handler hung on every run."""
    proc = _child("""
        from resrl.ros import node_main
        stopper = node_main.install_stop_handlers()
        with stopper.event._cond:                 # where Event.wait is, now and then
            print("ready", flush=True)
            while stopper.signum is None:         # bytecodes: the handler runs in here
                pass
        print("handled", flush=True)
        while not stopper.event.wait(0.5):
            pass
        print("stop event set", flush=True)
    """)
    out = _signal_when_ready(proc, signal.SIGINT)
    assert proc.returncode == 0, out
    assert "handled" in out and "stop event set" in out, out


def test_a_stop_stuck_below_python_is_ended_by_the_c_watchdog():
    """A thread that holds the GIL forever (here: the main thread inside one long C call) starves
    the Python stop watchdog; faulthandler's C thread still dumps the stacks and exits 1."""
    proc = _child("""
        import re
        from resrl.ros import node_main
        stopper = node_main.install_stop_handlers()
        node_main.C_BACKSTOP_AFTER_S = 0.5
        stopper.arm_watchdog(deadline_s=0.5)
        print("ready", flush=True)
        re.match(r"(a+)+$", "a" * 64 + "b")       # catastrophic backtracking: hours, GIL held
    """)
    out, _ = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 1, out
    assert "Timeout (0:00:01)!" in out, out        # faulthandler's own report: 0.5 + 0.5 s
    assert " in match" in out, out                 # the stuck thread's stack
