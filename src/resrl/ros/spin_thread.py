"""An executor spun in a thread of its own that ``stop()`` ends and joins (probes in tests and
benchmarks)."""
import threading


class SpinThread:
    """``executor.shutdown()`` does not wait for a thread inside ``executor.spin()``, and
    ``rclpy.shutdown()`` beside a still-spinning thread hung once in ``Context._logging_fini`` (a
    fresh-clone run, 2026-12-07). This thread spins in short steps until ``stop()``, which joins it
    before it shuts the executor down."""

    def __init__(self, executor, step_s: float = 0.1):
        self.executor = executor
        self.step_s = step_s
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True, name="spin")

    def start(self) -> "SpinThread":
        self.thread.start()
        return self

    def _spin(self):
        while not self._stopping.is_set():
            self.executor.spin_once(timeout_sec=self.step_s)

    def stop(self, timeout_s: float = 10.0):
        self._stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout_s)
        self.executor.shutdown()
