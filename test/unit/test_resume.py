"""Resume after kill -9: the same command with the same run dir reloads the replay and the trainer
state, the session plan continues (episode counter, evaluation schedule, step budget), and every
episode that was acknowledged (logged: replay on disk, label in session.json) is still there."""
import json
import os
import re
import signal
import subprocess
import sys

from resrl.node_config import load_graph, obs_spec
from resrl.replay import ReplayBuffer
from resrl.session import SessionConfig, SessionPlan

ARGS = ["--mode", "vgm", "--seed", "3", "--max-env-steps", "260", "--eval-every", "1",
        "--set", "session.num_demos=2", "--set", "session.eval_episodes=2",
        "--set", "learner.warmup_steps=4", "--set", "learner.learning_starts=16", "--set", "learner.batch_size=16"]
LINE = re.compile(r"^episode\s+(\d+) (\w+)\s+steps=\s*(\d+) success=(\d)")


def _run(run_dir, kill_after_index=None):
    """Run the in-process session; with ``kill_after_index``, SIGKILL it as soon as that episode is logged."""
    proc = subprocess.Popen([sys.executable, "-m", "resrl.sim.inprocess", "--run-dir", str(run_dir), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    logged = []
    for line in proc.stderr:
        m = LINE.match(line)
        if m:
            logged.append((int(m[1]), m[2], int(m[3]), bool(int(m[4]))))
            if kill_after_index is not None and logged[-1][0] >= kill_after_index:
                proc.send_signal(signal.SIGKILL)
                break
    out = proc.stdout.read()
    proc.wait(timeout=600)
    return proc.returncode, logged, out


def _disk_episodes(run_dir):
    graph = load_graph()
    spec = obs_spec("object", graph.shared.model)
    out = {}
    for name in ("online", "demos"):
        buf = ReplayBuffer(spec, 100_000, run_dir / "replay" / name)
        for ep in buf.episodes():
            out[(name, ep.meta["episode_id"])] = ep
    return out


def test_kill_9_then_resume_loses_no_acknowledged_transition_or_label(tmp_path):
    run_dir = tmp_path / "run"
    rc, first, _ = _run(run_dir, kill_after_index=3)   # 2 demos, a train episode, an eval episode
    assert rc == -signal.SIGKILL
    assert [k for _, k, _, _ in first[:4]] == ["demo", "demo", "train", "eval"]

    # Everything acknowledged before the kill is on disk: each logged demo/train episode with its
    # exact step count and success label, and every logged record in session.json.
    disk = _disk_episodes(run_dir)
    stored = json.loads((run_dir / "session.json").read_text())["records"]
    assert len(stored) >= len(first)
    acknowledged_steps = on_disk_steps = 0
    for index, kind, steps, success in first:
        assert stored[index]["kind"] == kind and stored[index]["steps"] == steps
        assert stored[index]["success"] == success
        if kind == "eval":
            assert not any(i == index for _, i in disk)   # evaluation never enters the replay
            continue
        ep = disk[("demos" if kind == "demo" else "online", index)]
        acknowledged_steps += steps
        on_disk_steps += len(ep.action)
        assert ep.success == success and ep.meta["kind"] == kind
    assert on_disk_steps == acknowledged_steps > 0

    rc, second, out = _run(run_dir)
    assert rc == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    records = json.loads((run_dir / "session.json").read_text())["records"]
    # The episode counter continues after the last stored record; no demo is recorded again.
    assert second[0][0] == len(stored) and all(k != "demo" for _, k, _, _ in second)
    assert [r["index"] for r in records] == list(range(len(records)))
    # The schedule is the one an uninterrupted plan follows for these outcomes (eval after every
    # train episode), and the step budget counts both runs.
    replay = SessionPlan(SessionConfig(num_demos=2, eval_episodes=2, eval_every=1, max_env_steps=260,
                                       eval_trigger_streak=10_000), seed=3)
    from resrl.session import EpisodeRecord
    for r in records:
        kind_seed = replay.next_episode()
        assert kind_seed == (r["kind"], r["seed"]), r
        replay.record(EpisodeRecord(**r))
    assert replay.next_episode() is None
    assert summary["env_steps"] == replay.env_steps == sum(r["steps"] for r in records if r["kind"] != "demo")
    assert summary["finished_reason"] == replay.finished_reason
    # Nothing acknowledged in the first run went missing in the second.
    disk = _disk_episodes(run_dir)
    for index, kind, steps, _ in first:
        if kind != "eval":
            assert len(disk[("demos" if kind == "demo" else "online", index)].action) == steps
