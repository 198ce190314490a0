"""Faults injected into a running session through the node graph; prints one JSON object.

    python benchmarks/bench_faults.py [--nodes vla_chunk_provider residual_policy ...] [--max-env-steps 300]

For each node named, one short sim session (lockstep, object mode, the launch graph with its
respawn flags, supervised as `ros2 launch` / the launch runner does): once ``--kill-after``
commands of online episodes have been sent, the node gets ``kill -9``. Measured from this
process, which sees every CommandedAction:

    hold_s / hold_steps      kill -> the first command with ``held`` (the arbiter holds the robot);
                             steps = commands sent in between (the chunk in hand, etc.)
    bridged_by_chunk_in_hand (VLA node) the chunk in hand lasted until the respawned node's first
                             chunk: no hold was needed (then hold_s is null)
    unsourced_commands       commands between the kill and that chunk that were neither held nor
                             from a chunk the dead node had sent (must be 0: nothing is guessed)
    respawn_s                kill -> the respawned process started (launch respawn delay 1 s)
    resume_s                 kill -> the first command after the respawn that is not held and has
                             a residual again, after the hold (the session goes on as before)
    finished                 the learner ended the session on its step budget
    acknowledged / on_disk   transitions the learner reported stored (metrics.json, per episode)
                             vs transitions in the replay on disk after the stop
    exit_codes               of every node at the final stop (the killed run's -9 under restarts)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NODES = ["vla_chunk_provider", "residual_policy", "pose_tracker", "vgm_arbiter", "bag_recorder"]


class CommandLog:
    """Every CommandedAction with its wall receive time; waits are on its condition."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def add(self, msg):
        with self.cond:
            self.items.append((time.monotonic(), msg))
            self.cond.notify_all()

    def wait(self, predicate, timeout):
        """Until predicate(items) holds: checked on every command, and every 0.2 s for the
        predicates that also watch a process (no command comes once the learner has exited)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))
            return True


def _has_residual(msg) -> bool:
    return any(abs(x) > 0 for x in msg.residual_action)


def run_fault(node: str, run_dir: Path, max_env_steps: int = 300, kill_after: int = 30,
              guard_s: float = 400.0) -> dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from resrl import topics
    from resrl.launch_graph import GRAPHS, default_args
    from resrl.launch_runner import GraphProcess
    from resrl.msg import CommandedAction
    from resrl.ros import qos
    from resrl.ros.spin_thread import SpinThread

    num_demos = 2
    specs = GRAPHS["sim_vgm"][0](**{**default_args("sim_vgm"), "run_dir": str(run_dir)})
    for spec in specs:
        if spec.name == "replay_learner":
            spec.overrides.update({"session_plan.num_demos": num_demos, "session_plan.max_env_steps": max_env_steps,
                                   "session_plan.eval_every": 1000, "learner.warmup_steps": 30,
                                   "learner.batch_size": 32, "learner.learning_starts": 32})
    assert any(s.name == node and s.respawn for s in specs), f"{node} is not a respawning node of the graph"
    rclpy.init()
    probe = rclpy.create_node("fault_probe")
    log = CommandLog()
    probe.create_subscription(CommandedAction, topics.COMMAND, log.add, qos.RECORDED)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    spinner = SpinThread(executor).start()   # joined before rclpy.shutdown()
    done = threading.Event()
    graph = GraphProcess(specs, share=REPO, log_dir=run_dir / "logs")
    respawned_at = {}

    def supervise():
        while not done.is_set():
            before = len(graph.restarts.get(node, []))
            graph.supervise()
            if len(graph.restarts.get(node, [])) > before:
                respawned_at.setdefault("t", time.monotonic())
            time.sleep(0.05)

    result = {"node": node, "kill_after_online_commands": kill_after, "max_env_steps": max_env_steps}
    graph.start()
    supervisor = threading.Thread(target=supervise, daemon=True)
    supervisor.start()
    try:
        online = lambda items: [m for _, m in items if m.episode_id > num_demos and not m.intervention]  # noqa: E731
        if not log.wait(lambda items: len(online(items)) >= kill_after, guard_s):
            raise RuntimeError(f"{node}: the session never reached {kill_after} online commands")
        with log.cond:
            kill_index = len(log.items)
            kill_step = log.items[-1][1].step
        t_kill = time.monotonic()
        os.kill(graph.procs[node].pid, signal.SIGKILL)
        result["killed_at_step"] = int(kill_step)

        after = lambda items: items[kill_index:]  # noqa: E731
        old_chunks = {m.chunk_id for _, m in log.items[:kill_index]}
        newest_old = max(old_chunks)   # chunk ids are ms stamps: a respawned VLA node's are larger

        def new_chunk(items):
            """Index (after the kill) of the first command from the respawned VLA node's chunks.
            The chunk in hand keeps the base going for up to H steps: the arbiter holds only if it
            runs out before then."""
            if node != "vla_chunk_provider":
                return None
            return next((k for k, (_, m) in enumerate(after(items)) if m.chunk_id > newest_old), None)
        held = log.wait(lambda items: any(m.held for _, m in after(items)) or new_chunk(items) is not None or
                        graph.poll()["replay_learner"] is not None, guard_s)
        with log.cond:
            until_new = new_chunk(log.items)   # a hold after the new chunk is another hold
            first_held = next(((k, t, m) for k, (t, m) in enumerate(after(log.items)[:until_new]) if m.held), None)
        if held and first_held is not None:
            result["hold_s"] = round(first_held[1] - t_kill, 3)
            result["hold_steps"] = first_held[0]
        else:
            result["hold_s"] = result["hold_steps"] = None

        # Resumed: after the respawn and after the hold (if there was one), a command that is not
        # held and carries a residual again.
        t_held = first_held[1] if first_held is not None else 0.0

        def first_resumed(items):
            t_re = respawned_at.get("t")
            if t_re is None:
                return None
            return next((t for t, m in items[kill_index:] if t > max(t_re, t_held) and not m.held
                         and _has_residual(m) and not m.intervention), None)
        ok = log.wait(lambda items: first_resumed(items) is not None or graph.poll()["replay_learner"] is not None,
                      guard_s)
        result["respawn_s"] = round(respawned_at["t"] - t_kill, 3) if "t" in respawned_at else None
        with log.cond:
            first = first_resumed(log.items)
        result["resume_s"] = round(first - t_kill, 3) if ok and first is not None else None
        deadline = time.monotonic() + guard_s
        while time.monotonic() < deadline and graph.poll()["replay_learner"] is None:
            time.sleep(0.2)
        result["learner_exit"] = graph.poll()["replay_learner"]
        with log.cond:
            first_new = new_chunk(log.items)
            gap = after(log.items)[:first_new] if first_new is not None else after(log.items)
            # Bridged: the base's chunk in hand lasted until the respawned node's first chunk.
            result["bridged_by_chunk_in_hand"] = first_new is not None and not any(m.held for _, m in gap)
            # Between the kill and the new chunk, every command is held or comes from a chunk the
            # dead node had sent: nothing is guessed.
            result["unsourced_commands"] = sum(1 for _, m in gap if not m.held and m.chunk_id not in old_chunks
                                               and not m.intervention)
    finally:
        done.set()
        supervisor.join()
        t_stop = time.monotonic()
        codes = graph.stop(sigint_timeout=20.0)
        result["stop_s"] = round(time.monotonic() - t_stop, 3)
        spinner.stop()
        probe.destroy_node()
        rclpy.shutdown()
    result["exit_codes"] = codes
    result["restarts"] = graph.restarts
    logs = {p.stem: p.read_text(errors="replace") for p in (run_dir / "logs").glob("*.log")}
    result["tracebacks"] = sorted(n for n, t in logs.items() if "Traceback" in t)
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        data = json.loads(metrics.read_text())
        result["finished"] = data.get("finished_reason")
        result["acknowledged"] = sum(e["steps"] for e in data["episodes"])
    else:
        result["finished"], result["acknowledged"] = None, None
    from resrl.replay import ReplayBuffer
    result["on_disk"] = sum(len(ReplayBuffer.load(run_dir / "replay" / name, 100_000))
                            for name in ("demos", "online") if (run_dir / "replay" / name).exists())
    result["commands_seen"] = len(log.items)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", nargs="+", default=DEFAULT_NODES)
    parser.add_argument("--max-env-steps", type=int, default=300)
    parser.add_argument("--kill-after", type=int, default=30)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    rows = []
    for node in args.nodes:
        with tempfile.TemporaryDirectory(prefix=f"resrl-fault-{node}-") as run_dir:
            t0 = time.monotonic()
            row = run_fault(node, Path(run_dir), args.max_env_steps, args.kill_after)
            row["wall_s"] = round(time.monotonic() - t0, 1)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "faults", "max_env_steps": args.max_env_steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
