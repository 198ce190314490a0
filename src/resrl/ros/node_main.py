"""Entry point shared by every node executable: signals, init, spin, and a clean stop at any moment.

SIGINT (Ctrl-C, launch's first step) and SIGTERM (launch's second step, `kill`) stop a node the
same way, whatever it is doing:

* while its modules import, the signal exits 0 at once: nothing is built yet;
* while its node is built (model loading, bag ingestion), the signal interrupts that work
  (StopRequested): the nodes built before it still run their ``on_shutdown``, and nothing has been
  acknowledged yet, so the process exits 0;
* once it runs, the signal only sets a stop flag. The main thread never blocks inside rcl's wait
  (where a Python signal handler cannot run until a message arrives, and a stopping lockstep
  graph sends none): the executor spins in a thread of its own, the main thread waits on an
  event. The stop then runs in this order: a node's ``release_waits`` (a callback waiting on work
  the node drives answers now), no new callbacks (the ones in flight finish), the
  node's ``on_shutdown`` (worker threads join, files close: the ROS context is still valid so a
  last publish cannot fail), the node's publishers, subscriptions, services, clients and timers
  are destroyed (peers see its endpoints leave at once);
* a watchdog bounds the whole stop to ``STOP_DEADLINE_S``: a stop that stalls (a callback or a
  thread that never returns) prints every thread's stack, so the stall can be found, and exits.
  Should Python itself be stuck (a thread that holds the GIL), faulthandler's own C thread
  dumps the stacks and exits 1 at 8 s, before launch's SIGKILL. Whatever a node acknowledged is already on
  disk then: replay, labels and bag chunks are written and fsynced before they are
  acknowledged, never at exit.

The signal handler itself takes no lock. Python runs a handler in the main thread between two
bytecodes, and the main thread spends its life in ``Event.wait``, which holds the event's lock
for a few bytecodes every time it wakes: a handler that called ``Event.set()`` there waited on a
lock its own thread held, forever, and every later SIGINT/SIGTERM queued behind it (a node that
ignored launch's whole stop sequence until SIGKILL). The handler records the signal and writes
one byte to a pipe; the ``stop_relay`` thread sets the event and arms the watchdog.

``run_nodes`` hosts several node classes in one process and executor (resrl_container): the same
phases and stop, every node's ``on_shutdown`` (the last built first), the context shut down once;
``run_node`` is its one-node case.

The process ends with ``os._exit`` once the stop is done: interpreter teardown (joining the
executor's pool threads, finalising half-built rclpy objects) adds nothing to what is on disk
and is where shutdown hangs and stray tracebacks came from. So do the rcl node itself and the
context: ``destroy_node``'s last call, the rcl node's fini, was seen to block holding the GIL (a
residual node, 2026-12-07, stacks from the C watchdog), and a context shutdown destroys its
nodes the same way. The process exit releases both.

``RESRL_ANNOUNCE_PHASES=1`` prints one ``[resrl-phase] <phase>`` line per phase on stderr
(import, init, construct, spin, stop, exit; nodes may add their own through ``announce``), so
tests can deliver a signal in a known phase.
"""
from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import os
import signal
import sys
import threading
import time
import traceback

from resrl.deps import MISSING_DEPENDENCY_EXIT, MissingDependency

STOP_DEADLINE_S = 4.0     # the stop contract is 5 s; the rest is margin for process teardown
C_BACKSTOP_AFTER_S = 4.0  # faulthandler's watchdog: this long after the Python one (exit 1)
PHASES_ENV = "RESRL_ANNOUNCE_PHASES"


class StopRequested(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM while the node imports or is being built."""


def announce(phase: str) -> None:
    if os.environ.get(PHASES_ENV) == "1":
        print(f"[resrl-phase] {phase}", file=sys.stderr, flush=True)


class _Stopper:
    def __init__(self):
        self.event = threading.Event()
        self.interrupt = False         # True inside interruptible(): node construction
        self.exit_at_once = False      # True inside exits_at_once(): the imports
        self.signum = None
        self._watchdog = None
        self._nudger = None
        self._arm_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        threading.Thread(target=self._relay, name="stop_relay", daemon=True).start()

    def handle(self, signum, _frame):
        """Runs in the main thread wherever it is, even inside a lock it holds: no locks here
        (no Event.set, no Thread.start, no buffered print); the relay thread does the rest."""
        if self.signum is None:
            self.signum = signum
        try:
            os.write(self._wake_w, b"s")
        except OSError:    # the pipe is full: the relay has its byte already
            pass
        if self.exit_at_once:
            # Nothing is built, so nothing can be lost. Raising instead would be fragile: an
            # exception raised while a finalizer runs (import churns the gc) is printed as
            # "Exception ignored" and the import goes on.
            _exit_before_any_node()
        if self.interrupt:
            raise StopRequested(signum)

    def _relay(self) -> None:
        os.read(self._wake_r, 1)
        self.event.set()
        self.arm_watchdog()
        if self.interrupt:
            self._arm_nudger()

    def requested(self) -> bool:
        """A stop was asked for (the handler ran; the relay may not have set the event yet)."""
        return self.signum is not None or self.event.is_set()

    @contextlib.contextmanager
    def exits_at_once(self):
        """A signal inside this block exits the process 0 at once (before any node is built)."""
        self.exit_at_once = True
        try:
            if self.requested():
                _exit_before_any_node()
            yield
        finally:
            self.exit_at_once = False

    @contextlib.contextmanager
    def interruptible(self):
        """A signal inside this block raises StopRequested in it. The caller catches it around
        the ``with``: a signal during enter or exit is then caught too, and none after it.
        The cyclic gc is off inside the block, so no finalizer runs where the exception would be
        swallowed; the nudger re-sends the signal should it be swallowed anyway."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        self.interrupt = True
        try:
            if self.requested():
                raise StopRequested(self.signum)
            yield
        finally:
            self.interrupt = False
            if gc_was_enabled:
                gc.enable()

    def _arm_nudger(self) -> None:
        with self._arm_lock:
            if self._nudger is None:
                self._nudger = threading.Thread(target=self._nudge, name="stop_nudger", daemon=True)
                self._nudger.start()

    def _nudge(self, every_s: float = 0.5) -> None:
        """While the main thread is still in the interruptible block after the StopRequested was
        raised, something swallowed it: raise it again."""
        main = threading.main_thread().ident
        while True:
            time.sleep(every_s)
            if not self.interrupt:
                return
            signal.pthread_kill(main, self.signum)

    def arm_watchdog(self, deadline_s: float = STOP_DEADLINE_S) -> None:
        with self._arm_lock:
            if self._watchdog is None:
                # The C-level backstop: runs without the GIL, so it fires where the Python
                # watchdog below cannot (a thread stuck holding the GIL). Late enough never to
                # pre-empt a Python watchdog that is still dumping on a loaded box (at +0.5 s it
                # did, turning a slow stop into exit 1), early enough to beat launch's SIGKILL
                # (SIGTERM 5 s after the SIGINT, SIGKILL 5 s later).
                faulthandler.dump_traceback_later(deadline_s + C_BACKSTOP_AFTER_S, exit=True)
                self._watchdog = threading.Thread(target=self._watch, args=(deadline_s,), name="stop_watchdog",
                                                  daemon=True)
                self._watchdog.start()

    @staticmethod
    def _watch(deadline_s: float) -> None:
        time.sleep(deadline_s)
        print(f"[node_main] stop stalled: not done {deadline_s:.1f} s after the stop request; "
              "thread stacks follow, then the process exits", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        _exit(0)


_stopper: _Stopper | None = None


def install_stop_handlers() -> _Stopper:
    """SIGINT/SIGTERM handlers for this process; the first call installs them."""
    global _stopper
    if _stopper is None:
        _stopper = _Stopper()
        signal.signal(signal.SIGINT, _stopper.handle)
        signal.signal(signal.SIGTERM, _stopper.handle)
        faulthandler.register(signal.SIGUSR1, all_threads=True)   # `kill -USR1 <pid>`: where is it?
    return _stopper


def request_stop() -> None:
    """A node ends its own session (the learner's plan is done, the console's 'q'): the process
    stops as a signal stops it, from the main thread. ``rclpy.try_shutdown()`` would destroy the
    nodes from the caller's thread, the call that was seen to block holding the GIL (module
    docstring). A node built outside ``run_nodes`` (a test) shuts its context down instead."""
    if _stopper is None:
        import rclpy
        rclpy.try_shutdown()
        return
    _stopper.event.set()
    _stopper.arm_watchdog()


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:   # rcutils logs through C stdio, block-buffered into a log file: os._exit skips that flush
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except Exception:
        pass
    os._exit(code)


def _exit_before_any_node() -> None:
    """Also called from the signal handler: an unbuffered write, as the main thread may be inside
    a print to stderr, holding its buffer's lock."""
    if os.environ.get(PHASES_ENV) == "1":
        os.write(2, b"[resrl-phase] exit\n")
    _exit(0)


def interruptibly(work):
    """``work()`` (the node modules' imports: torch and friends take seconds) under the stop
    handlers: a signal while it runs exits 0 at once, as nothing has been built or acknowledged."""
    stopper = install_stop_handlers()
    with stopper.exits_at_once():
        return work()


def launch(module: str) -> int:
    """What an installed executable runs: the stop handlers first, then the node module's imports
    and its ``main``."""
    install_stop_handlers()
    announce("import")
    return interruptibly(lambda: importlib.import_module(module).main)()


def _spin(executor, stopper: _Stopper, failure: list) -> None:
    try:
        while not stopper.event.is_set():
            executor.spin_once(timeout_sec=0.1)
    except BaseException as exc:   # noqa: B902 -- whatever ends the spin ends the node
        from rclpy.executors import ExternalShutdownException
        if not (stopper.requested() or isinstance(exc, ExternalShutdownException) or not _context_ok()):
            failure.append("".join(traceback.format_exception(exc)))   # a callback raised: exit 1
    finally:
        stopper.event.set()


def _context_ok() -> bool:
    import rclpy
    return rclpy.ok()


DEFAULT_EXECUTOR_THREADS = 2   # a node class needing more says so: ``executor_threads = 4``
# The executor a process spins (``--executor KIND`` before ``--ros-args``; launch argument
# ``executor:=``): rclpy's C++ EventsExecutor (rclpy.experimental; one thread, no wait set rebuilt
# per callback; the default: BENCHMARKS.md, "The executor"), its SingleThreadedExecutor, or its
# MultiThreadedExecutor with the nodes' threads (the default until 2026-12-07: 2-3x the latency
# per hop, and it dropped messages at 30 Hz). Where rclpy has no EventsExecutor (before Jazzy) a
# process runs single_threaded instead, and says so. A process hosting a node that needs
# callbacks in parallel (``parallel_callbacks = True``: the robot bridge waits inside a service
# callback for the reset sequence its other callbacks drive) runs multi_threaded.
EXECUTORS = ("events", "single_threaded", "multi_threaded")
DEFAULT_EXECUTOR = EXECUTORS[0]


def executor_threads(node_cls) -> int:
    return int(getattr(node_cls, "executor_threads", DEFAULT_EXECUTOR_THREADS))


def _has_events_executor() -> bool:
    try:
        return hasattr(importlib.import_module("rclpy.experimental"), "EventsExecutor")
    except ImportError:
        return False


def executor_kind(argv, node_classes=()) -> str:
    """The executor for a process hosting ``node_classes``, from the ``--executor`` of its command
    line (the part before ``--ros-args``); raises ValueError for an unknown kind."""
    own = list(argv[:argv.index("--ros-args")] if "--ros-args" in argv else argv)
    kind = DEFAULT_EXECUTOR
    for i, arg in enumerate(own):
        if arg == "--executor" or arg.startswith("--executor="):
            kind = arg.split("=", 1)[1] if "=" in arg else (own[i + 1] if i + 1 < len(own) else "")
    if kind not in EXECUTORS:
        raise ValueError(f"--executor {kind!r}: one of {', '.join(EXECUTORS)}")
    parallel = [cls.__name__ for cls in node_classes if getattr(cls, "parallel_callbacks", False)]
    if parallel:
        return "multi_threaded"
    if kind == "events" and not _has_events_executor():
        print("[node_main] this rclpy has no rclpy.experimental.EventsExecutor (ROS 2 Jazzy and newer "
              "have it): single_threaded executor", file=sys.stderr)
        return "single_threaded"
    return kind


def make_executor(kind: str, node_classes):
    """The executor of one process (``kind`` from :func:`executor_kind`) for these node classes."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if kind == "multi_threaded":
        return MultiThreadedExecutor(num_threads=sum(executor_threads(cls) for cls in node_classes))
    if kind == "single_threaded":
        return SingleThreadedExecutor()
    from rclpy.experimental import EventsExecutor
    return EventsExecutor()


def run_node(node_cls, args=None) -> int:
    """One node in its own process (every ``<node>_node`` executable)."""
    return run_nodes([node_cls], args)


def run_nodes(node_classes, args=None) -> int:
    """Several nodes in one process and one executor (``resrl_container``; one node is the same
    path with a list of one). The executor gets the threads the nodes would have had in processes
    of their own, so a node that relies on a parallel callback keeps it. A node that cannot be
    built stops the process the way a single node's process stops: the nodes built before it run
    their ``on_shutdown``, the one line or traceback is printed, the exit code is its."""
    stopper = install_stop_handlers()
    argv = list(args if args is not None else sys.argv)
    try:   # a bad --executor stops the process before anything is built
        kind = executor_kind(argv[1:], node_classes)
    except ValueError as exc:
        print(f"[node_main] {exc}", file=sys.stderr)
        _exit(MISSING_DEPENDENCY_EXIT)   # EX_CONFIG: the launch stops the graph, no respawn loop
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    nodes: list = []
    executor = spinner = None
    failure: list = []     # texts to print; non-empty means exit code 1
    exit_code = 1          # the code a failure exits with
    node_cls = None
    try:
        with stopper.interruptible():
            announce("init")
            # rclpy's own handlers would shut the context down under running callbacks and threads.
            rclpy.init(args=args if args is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
            announce("construct")
            for node_cls in node_classes:
                nodes.append(node_cls())
    except StopRequested:
        pass
    except MissingDependency as exc:
        # One line naming what to install (a traceback would bury it); the launch stops the graph.
        failure.append(f"[{getattr(node_cls, '__name__', 'node')}] {exc}\n")
        exit_code = MISSING_DEPENDENCY_EXIT
    except SystemExit as exc:          # a node's own clear startup error (bad config, missing file)
        if exc.code not in (None, 0) and not stopper.requested():
            failure.append("" if isinstance(exc.code, int) else f"{exc.code}\n")
    except Exception:
        if not stopper.requested():
            failure.append(traceback.format_exc())
    if nodes and len(nodes) == len(node_classes) and not stopper.requested() and not failure:
        executor = make_executor(kind, node_classes)
        if kind != DEFAULT_EXECUTOR:
            print(f"[node_main] executor: {kind}", file=sys.stderr, flush=True)
        for node in nodes:
            executor.add_node(node)
        # A node that ends its own session (request_stop(), or rclpy.try_shutdown()) stops the
        # process too.
        nodes[0].context.on_shutdown(stopper.event.set)
        spinner = threading.Thread(target=_spin, args=(executor, stopper, failure), name="spin", daemon=True)
        spinner.start()
        announce("spin")
        while not stopper.event.wait(0.5):
            pass
    stopper.event.set()
    stopper.arm_watchdog()
    announce("stop")
    _stop(nodes, executor, spinner, failure)
    for text in failure:
        print(text, file=sys.stderr, end="")
    announce("exit")
    _exit(exit_code if failure else 0)


def _stop(nodes, executor, spinner, failure: list) -> None:
    """No new callbacks, each node's own stop (the last built first), then the nodes' endpoints
    go. One node's failing stop does not skip the others'."""
    for node in nodes:
        # A callback that waits for work the node itself drives (the bridge's reset service waits
        # for its reset sequence) would hold executor.shutdown() below: let it answer now.
        try:
            release = getattr(node, "release_waits", None)
            if release is not None:
                release()
        except Exception:
            failure.append(f"error while releasing {node.get_name()}'s waits:\n" + traceback.format_exc())
    if executor is not None:
        executor.wake()
        if spinner is not None:
            spinner.join()
        executor.shutdown(timeout_sec=STOP_DEADLINE_S)   # callbacks in flight finish
    for node in reversed(nodes):
        try:
            on_shutdown = getattr(node, "on_shutdown", None)
            if on_shutdown is not None:
                on_shutdown()
        except Exception:
            failure.append(f"error while stopping {node.get_name()}:\n" + traceback.format_exc())
    for node in reversed(nodes):
        _destroy_entities(node)


def _destroy_entities(node) -> None:
    """What ``destroy_node`` does before it frees the rcl node (see the module docstring): each
    endpoint and timer of the node goes. A node that already ended its own session has none left."""
    for entities, destroy in ((node.publishers, node.destroy_publisher),
                              (node.subscriptions, node.destroy_subscription),
                              (node.clients, node.destroy_client), (node.services, node.destroy_service),
                              (node.timers, node.destroy_timer), (node.guards, node.destroy_guard_condition)):
        for entity in list(entities):
            try:
                destroy(entity)
            except Exception:
                pass


def wall_timer(node, period_s: float, callback):
    """A timer on the steady clock: wall-time waits (timeouts, polling) must tick even when the
    node runs on simulated time and /clock only advances once the loop itself moves."""
    from rclpy.clock import Clock, ClockType
    return node.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))
