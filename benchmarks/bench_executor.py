"""What one hop costs on each rclpy executor, without the rest of the graph; prints one JSON object.

    python benchmarks/bench_executor.py [--rate 30] [--seconds 20] [--relays 3] [--rounds 2]

A ring of processes on loopback DDS: this process publishes a stamped message at ``--rate`` Hz,
``--relays`` relay processes each republish what they receive to the next, and this process
receives it back. Every process spins the executor under test (resrl.ros.node_main.make_executor,
what ``executor:=`` gives a node), with the node's QoS for control topics (resrl.ros.qos.CONTROL).
Per message: the round trip (monotonic clock, same host) divided by the hops (relays + 1) is the
cost of one publish -> callback -> publish through DDS and the executor, with no work in the
callback -- the floor under each hop of the control path (sim -> tracker -> residual -> arbiter).
The kinds run interleaved, ``--rounds`` times each, so slow drift of the machine's load spreads
over all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

KINDS = ("multi_threaded", "single_threaded", "events")   # resrl.ros.node_main.EXECUTORS, old default first


def _topic(i: int) -> str:
    return f"/resrl_bench/hop{i}"


def _spin(kind: str, node, stop: threading.Event):
    from resrl.ros.node_main import make_executor
    executor = make_executor(kind, [type(node)])
    executor.add_node(node)
    def spin():
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    return executor, thread


def relay(kind: str, index: int) -> int:
    """Republish hop ``index`` on hop ``index + 1`` until stdin closes."""
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from resrl.ros import qos
    rclpy.init()
    node = rclpy.create_node(f"bench_relay_{index}")
    pub = node.create_publisher(PoseStamped, _topic(index + 1), qos.CONTROL)
    node.create_subscription(PoseStamped, _topic(index), pub.publish, qos.CONTROL)
    stop = threading.Event()
    _spin(kind, node, stop)
    print("ready", flush=True)
    sys.stdin.read()                     # the parent closes stdin to stop us
    stop.set()
    os._exit(0)


def ring(kind: str, rate: float, seconds: float, relays: int, domain_id: int) -> dict:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from resrl.ros import qos
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id))
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id))
    procs = [subprocess.Popen([sys.executable, __file__, "--relay", str(i), "--executor", kind],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for i in range(relays)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", f"relay exited with {p.poll()}"
    rclpy.init()
    node = rclpy.create_node("bench_origin")
    pub = node.create_publisher(PoseStamped, _topic(0), qos.CONTROL)
    trips, lock = {}, threading.Lock()

    def back(msg):
        now = time.monotonic_ns()
        with lock:
            trips[msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec] = now

    node.create_subscription(PoseStamped, _topic(relays), back, qos.CONTROL)
    stop = threading.Event()
    _, spinner = _spin(kind, node, stop)
    # Wait until the ring is connected end to end (a message comes back), then measure.
    sent = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = PoseStamped()
        t = time.monotonic_ns()
        probe.header.stamp.sec, probe.header.stamp.nanosec = divmod(t, 10 ** 9)
        pub.publish(probe)
        time.sleep(0.1)
        with lock:
            if t in trips:
                break
    with lock:
        trips.clear()
    period = 1.0 / rate
    next_t = time.monotonic()
    end = next_t + seconds
    while next_t < end:
        msg = PoseStamped()
        t = time.monotonic_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 10 ** 9)
        msg.pose.position.x = float(len(sent))
        pub.publish(msg)
        sent.append(t)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.5)                      # the last messages come back
    stop.set()
    spinner.join()
    for p in procs:
        p.stdin.close()
        p.wait(timeout=30)
    with lock:
        rtt = np.asarray([(trips[t] - t) * 1e-6 for t in sent if t in trips])
    rclpy.try_shutdown()
    hops = relays + 1
    out = {"kind": kind, "sent": len(sent), "returned": int(len(rtt)), "hops": hops}
    if len(rtt):
        out.update({"round_trip_p50_ms": round(float(np.percentile(rtt, 50)), 3),
                    "round_trip_p99_ms": round(float(np.percentile(rtt, 99)), 3),
                    "per_hop_p50_ms": round(float(np.percentile(rtt, 50)) / hops, 3),
                    "per_hop_p99_ms": round(float(np.percentile(rtt, 99)) / hops, 3)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--relays", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    ap.add_argument("--domain-id", type=int, default=71)
    ap.add_argument("--relay", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--executor", choices=KINDS, default=KINDS[0], help=argparse.SUPPRESS)
    ap.add_argument("--one", choices=KINDS, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.relay is not None:      # a relay process of a ring
        return relay(args.executor, args.relay)
    if args.one is not None:        # one ring, in a process of its own (rclpy.init once per process)
        print(json.dumps(ring(args.one, args.rate, args.seconds, args.relays, args.domain_id)))
        return 0
    out = {"cpu_count": os.cpu_count(), "load_avg_before": os.getloadavg(), "rate_hz": args.rate,
           "seconds": args.seconds, "runs": []}
    for r in range(args.rounds):
        for i, kind in enumerate(args.kinds):
            res = subprocess.run([sys.executable, __file__, "--one", kind, "--rate", str(args.rate),
                                  "--seconds", str(args.seconds), "--relays", str(args.relays),
                                  "--domain-id", str(args.domain_id + r * len(args.kinds) + i)],
                                 stdout=subprocess.PIPE, text=True, check=True)
            out["runs"].append(json.loads(res.stdout.strip().splitlines()[-1]))
    out["load_avg_after"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
