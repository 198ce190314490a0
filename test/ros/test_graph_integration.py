"""A short session through the real node processes (lockstep sim, object mode): chunks flow, the
arbiter publishes gate state every step, the command equals a_VLA + lambda * a_res, episode events
reach the learner, transitions land in the replay on disk, and new weights reach the residual node
and the arbiter over topics."""
import json
import sys
import time

import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

from resrl import topics
from resrl.launch_graph import GRAPHS, default_args
from resrl.launch_runner import GraphProcess
from resrl.msg import ActionChunk, CommandedAction, GateState, ResidualAction
from resrl.ros import qos
from resrl.ros.spin_thread import SpinThread
from rosutil import ROOT


# Guards against a hung session only, not expectations: a session ends when its learner finishes
# its step budget (about 50 s object mode, 150-210 s image mode on an idle 2-core box); the guards
# leave 4-10x for a loaded one.
GUARD_S = 600.0
IMAGE_GUARD_S = 900.0


def sim_params() -> dict:
    import yaml
    return yaml.safe_load((ROOT / "config" / "sim_vgm.yaml").read_text())


def run_session(specs, tmp_path, timeout_s: float):
    """Start the graph, wait for the learner to finish its session, stop everything.
    Returns (learner exit code or None, every node's exit code, every node's log text)."""
    graph = GraphProcess(specs, share=ROOT, log_dir=tmp_path / "logs")
    graph.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and graph.poll()["replay_learner"] is None:
            time.sleep(0.5)
        learner_rc = graph.poll()["replay_learner"]
    finally:
        codes = graph.stop(sigint_timeout=20.0)   # a loaded 2-core CI box needs more than 5 s
    logs = {p.stem: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}
    return learner_rc, codes, logs


def run_recorded_session(specs, tmp_path, streams: dict, seen: dict, timeout_s: float = GUARD_S):
    """run_session while a probe node appends every message of ``streams`` (name -> (type, topic))
    to ``seen[name]``."""
    rclpy.init()
    node = rclpy.create_node("integration_probe")
    for name, (msg_type, topic) in streams.items():
        # Deep reader queues: the probe's executor may lag behind a fast lockstep loop on 2 cores.
        node.create_subscription(msg_type, topic, seen[name].append, qos.RECORDED)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = SpinThread(executor).start()
    try:
        return run_session(specs, tmp_path, timeout_s)
    finally:
        spinner.stop()
        node.destroy_node()
        rclpy.shutdown()


@pytest.mark.timeout(700)
def test_short_session_through_the_node_graph(tmp_path):
    specs = GRAPHS["sim_vgm"][0](**{**default_args("sim_vgm"), "run_dir": str(tmp_path)})
    for spec in specs:
        if spec.name == "replay_learner":
            spec.overrides.update({"session_plan.num_demos": 2, "session_plan.max_env_steps": 150,
                                   "session_plan.eval_every": 1000, "learner.warmup_steps": 30,
                                   "learner.batch_size": 32, "learner.learning_starts": 32})
    seen = {"chunks": [], "commands": [], "gates": [], "residuals": []}
    learner_rc, codes, logs = run_recorded_session(specs, tmp_path, {
        "chunks": (ActionChunk, topics.VLA_CHUNK), "commands": (CommandedAction, topics.COMMAND),
        "gates": (GateState, topics.GATE_STATE), "residuals": (ResidualAction, topics.RESIDUAL)}, seen)
    assert learner_rc == 0, f"learner did not finish the session:\n{logs['replay_learner'][-3000:]}"
    data = json.loads((tmp_path / "metrics.json").read_text())
    kinds = [e["kind"] for e in data["episodes"]]
    assert kinds[:2] == ["demo", "demo"] and "train" in kinds, kinds
    assert all(e["success"] for e in data["episodes"][:2]), "scripted expert demos must succeed"
    assert data["finished_reason"] == "step budget" and data["env_steps"] >= 150
    assert data["warmup_updates"] == 30 and data["updates"] > 0
    # chunks flowed and every decided step has gate telemetry
    assert seen["chunks"] and all(c.horizon == 16 and len(c.actions) == 16 * 7 for c in seen["chunks"])
    gate_steps = {g.step for g in seen["gates"]}
    assert {c.step for c in seen["commands"]} <= gate_steps
    # a_t = a_VLA + lambda * a_res on the learner-driven (non-human, non-held) steps, unless clamped
    auto = [c for c in seen["commands"] if not c.intervention and not c.held]
    assert len(auto) >= 100
    # train episodes' residuals carry the policy's action before the exploration noise
    noisy = [r for r in seen["residuals"] if len(r.policy_action)]
    assert noisy and all(len(r.policy_action) == 7 for r in noisy)
    assert any(not np.allclose(r.policy_action, r.action) for r in noisy)
    for c in auto:
        expected = np.asarray(c.base_action) + np.asarray(c.lambda_per_dim) * np.asarray(c.residual_action)
        np.testing.assert_allclose(c.composed_action, expected, atol=1e-6)
        if not c.limits_hit:   # the safety filter passes an action inside every limit unchanged
            np.testing.assert_allclose(c.action, c.composed_action, atol=1e-6)
    assert sum(not c.limits_hit for c in auto) > 0
    assert any(np.any(np.asarray(c.lambda_per_dim) > 0) and np.any(np.asarray(c.residual_action) != 0)
               for c in auto), "the residual never acted"
    # transitions on disk: 2 demo episodes, online episodes, and the final checkpoint
    assert len(list((tmp_path / "replay" / "demos").glob("episode-*.rrb"))) == 2
    assert list((tmp_path / "replay" / "online").glob("episode-*.rrb"))
    assert (tmp_path / "checkpoints" / "final.pt").is_file()
    assert (tmp_path / "learning_curve.png").is_file()
    # the session bag (MCAP) replays into the transitions the live learner stored
    from resrl.bags import RebuildConfig, read_bag, rebuild
    from resrl.models.config import ModelConfig
    from resrl.models.config import obs_spec
    from resrl.replay import ReplayBuffer
    assert (tmp_path / "bag" / "metadata.yaml").is_file() and list((tmp_path / "bag").glob("*.mcap"))
    num_objects = sim_params()["/**"]["ros__parameters"]["model"]["num_objects"]   # cube + target zone
    spec = obs_spec("object", ModelConfig(obs_mode="object", num_objects=num_objects))
    bag_online, bag_demos = ReplayBuffer(spec, 10_000), ReplayBuffer(spec, 10_000)
    rebuild(read_bag(tmp_path / "bag"), bag_online, bag_demos, RebuildConfig(num_objects=num_objects))
    live = {name: list(ReplayBuffer.load(tmp_path / "replay" / name, 10_000).episodes()) for name in ("demos", "online")}
    for name, from_bag in (("demos", bag_demos), ("online", bag_online)):
        # Matched by the session's episode id (each side's ids with their lengths on a mismatch).
        replayed = {ep.meta["episode_id"]: ep for ep in from_bag.episodes()}
        stored = {ep.meta["episode_id"]: ep for ep in live[name]}
        lengths = {"bag": {k: len(v.action) for k, v in replayed.items()},
                   "live": {k: len(v.action) for k, v in stored.items()}}
        assert sorted(replayed) == sorted(stored), (name, lengths)
        for eid in sorted(stored):
            a, b = replayed[eid], stored[eid]
            assert len(a.action) == len(b.action), (name, eid, lengths)
            np.testing.assert_array_equal(a.action, b.action)
            np.testing.assert_array_equal(a.reward, b.reward)
            np.testing.assert_array_equal(a.obs["object_poses"], b.obs["object_poses"])
            assert a.obs["object_poses"].shape[1] == 7 * num_objects
            assert np.abs(b.obs["object_poses"][:, 7:10]).sum(axis=1).mean() > 0.3   # the zone is tracked
    # new weights reached the other processes over topics (their version changed)
    assert "residual weights v" in logs["residual_policy"] and "critic weights v" in logs["vgm_arbiter"]
    assert {c.policy_version for c in auto} - {0}, "commands never came from an updated residual"
    assert not any("Traceback" in t for t in logs.values()), [n for n, t in logs.items() if "Traceback" in t]
    assert all(c == 0 for c in codes.values()), (codes, {n: logs.get(n, "")[-1500:] for n, c in codes.items() if c})


@pytest.mark.timeout(1000)
def test_image_mode_session_through_the_node_graph(tmp_path):
    """obs_mode:=image end to end: rendered colour + 16UC1 depth -> camera node (model-resolution RGB
    + relative depth) -> 6-channel ResNet residual and critic -> replay frames -> weights back."""
    specs = GRAPHS["sim_vgm"][0](**{**default_args("sim_vgm"), "run_dir": str(tmp_path), "obs_mode": "image"})
    for spec in specs:
        if spec.name == "replay_learner":
            spec.overrides.update({"session_plan.num_demos": 1, "session_plan.max_env_steps": 30,
                                   "session_plan.eval_every": 1000, "learner.warmup_steps": 2,
                                   "learner.batch_size": 8, "learner.learning_starts": 8})
    learner_rc, codes, logs = run_session(specs, tmp_path, IMAGE_GUARD_S)
    assert learner_rc == 0, f"learner did not finish the session:\n{logs['replay_learner'][-3000:]}"
    from resrl.replay import ReplayBuffer
    for name in ("demos", "online"):
        episodes = list(ReplayBuffer.load(tmp_path / "replay" / name, 10_000).episodes())
        assert episodes, name
        ep = episodes[0]
        assert ep.obs["image"].shape[1:] == (96, 96, 3) and ep.obs["depth"].shape[1:] == (96, 96)
        assert ep.obs["image"].std() > 5 and ep.obs["depth"].std() > 5         # real frames, not blanks
        assert not np.array_equal(ep.obs["image"][0], ep.obs["image"][-1])       # the scene changed
    assert "residual weights v" in logs["residual_policy"] and "critic weights v" in logs["vgm_arbiter"]
    assert not any("Traceback" in t for t in logs.values()), [n for n, t in logs.items() if "Traceback" in t]
    assert all(c == 0 for c in codes.values()), (codes, {n: logs.get(n, "")[-1500:] for n, c in codes.items() if c})


@pytest.mark.timeout(700)
def test_base_only_session_with_a_lerobot_base_runs_to_its_budget(tmp_path):
    """mode:=base_only (Table I's frozen-VLA arm) with ``vla.backend: lerobot``, every node on the
    MultiThreadedExecutor: a LeRobot ACT
    checkpoint (tiny, trained and saved by the test) is the base policy of the sim graph; episodes
    keep coming although nothing trains, and every command executes a row of a LeRobot chunk."""
    sys.path.insert(0, str(ROOT / "test" / "unit"))
    from lerobot_tiny import save_tiny_policy
    checkpoint, _ = save_tiny_policy("act", tmp_path / "act", env_dim=14, steps=2)   # chunk_size 10
    # Every process on rclpy's MultiThreadedExecutor (executor:=multi_threaded, the default until
    # 2026-12-07; the other graph tests run the default events): the same graph, the same checks.
    specs = GRAPHS["sim_vgm"][0](**{**default_args("sim_vgm"), "run_dir": str(tmp_path), "mode": "base_only",
                                    "executor": "multi_threaded"})
    assert all(spec.executor == "multi_threaded" for spec in specs)
    for spec in specs:
        if spec.name == "replay_learner":
            spec.overrides.update({"session_plan.num_demos": 1, "session_plan.max_env_steps": 150,
                                   "session_plan.eval_every": 1000})
        if spec.name == "vla_chunk_provider":   # a real VLA's open-loop chunks: 10 rows, re-plan with 5 left
            spec.overrides.update({"vla.backend": "lerobot", "vla.checkpoint_dir": str(checkpoint),
                                   "vla.horizon": 10, "vla.prefetch_steps": 5})
    seen = {"chunks": [], "commands": []}
    learner_rc, codes, logs = run_recorded_session(specs, tmp_path, {
        "chunks": (ActionChunk, topics.VLA_CHUNK), "commands": (CommandedAction, topics.COMMAND)}, seen)
    chunks, commands = seen["chunks"], seen["commands"]
    assert learner_rc == 0, f"learner did not finish the session:\n{logs['replay_learner'][-3000:]}"
    assert all("[node_main] executor: multi_threaded" in text for text in logs.values()), \
        [name for name, text in logs.items() if "[node_main] executor: multi_threaded" not in text]
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["finished_reason"] == "step budget" and data["updates"] == 0 and data["warmup_updates"] == 0
    assert all(e["mean_lambda"] == 0.0 for e in data["episodes"] if e["kind"] == "train")
    assert sum(e["kind"] == "train" for e in data["episodes"]) >= 1
    assert chunks and all(c.source == "lerobot" and c.horizon == 10 for c in chunks), \
        {(c.source, c.horizon) for c in chunks}
    # the executed base action of every learner-driven step is a row of a chunk the LeRobot node sent
    rows = {tuple(np.round(r, 5)) for c in chunks for r in np.asarray(c.actions, np.float64).reshape(-1, 7)}
    auto = [c for c in commands if not c.intervention and not c.held]
    assert len(auto) >= 100
    assert all(tuple(np.round(np.asarray(c.base_action, np.float64), 5)) in rows for c in auto)
    assert all(c == 0 for c in codes.values()), (codes, {n: logs.get(n, "")[-1500:] for n, c in codes.items() if c})
