"""Entry point shared by every node executable: init, spin, clean shutdown on SIGINT/SIGTERM."""
from __future__ import annotations

import signal
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from resrl.deps import MISSING_DEPENDENCY_EXIT, MissingDependency


def run_node(node_cls, args=None, threads: int = 2) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    # SIGTERM (launch's second escalation step, `kill`) shuts down like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    node = None
    try:
        node = node_cls()
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except MissingDependency as exc:
        # One line naming what to install (a traceback would bury it); the launch stops the graph.
        print(f"[{getattr(node_cls, '__name__', 'node')}] {exc}", file=sys.stderr, flush=True)
        return MISSING_DEPENDENCY_EXIT
    except Exception:
        if rclpy.ok():
            raise
        # SIGINT/SIGTERM shut the context down under a spinning executor (rclpy can then raise
        # RCLError "context is not valid" instead of ExternalShutdownException): a normal exit.
    finally:
        if node is not None:
            try:
                node.on_shutdown()
            except AttributeError:
                pass
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def wall_timer(node, period_s: float, callback):
    """A timer on the steady clock: wall-time waits (timeouts, polling) must tick even when the
    node runs on simulated time and /clock only advances once the loop itself moves."""
    from rclpy.clock import Clock, ClockType
    return node.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))
