"""SpinThread: callbacks run while it spins; stop() leaves no thread inside the executor, so
rclpy.shutdown() never runs beside one (the hang it replaced)."""
import threading

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

from resrl.ros.spin_thread import SpinThread


def test_spins_callbacks_and_stop_joins_before_shutdown():
    for executor_type in (SingleThreadedExecutor, MultiThreadedExecutor):
        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("spin_thread_probe", context=context)
        ticks = threading.Semaphore(0)
        node.create_timer(0.01, ticks.release)
        executor = executor_type(context=context)
        executor.add_node(node)
        spinner = SpinThread(executor, step_s=0.05).start()
        try:
            for _ in range(3):
                assert ticks.acquire(timeout=30), f"{executor_type.__name__}: no timer callback ran"
        finally:
            spinner.stop()
        assert not spinner.thread.is_alive()
        node.destroy_node()
        rclpy.shutdown(context=context)
