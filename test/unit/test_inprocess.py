"""resrl.sim.inprocess: the sim session wired by calls (what benchmarks/table1.py sweeps)."""
import numpy as np
import pytest

from resrl.sim.inprocess import InProcessConfig, InProcessSession

TINY = dict(session={"num_demos": 2, "eval_every": 1, "eval_episodes": 2, "max_env_steps": 120,
                     "eval_trigger_streak": 100},
            learner={"batch_size": 16, "warmup_steps": 3, "learning_starts": 16})


def test_session_runs_demos_warmup_train_and_eval():
    s = InProcessSession(InProcessConfig(mode="vgm", seed=1, **TINY), log=lambda line: None)
    result = s.run()
    kinds = [e["kind"] for e in result["episodes"]]
    assert kinds[:2] == ["demo", "demo"] and "train" in kinds and "eval" in kinds
    assert s.learner.num_warmup_updates == 3 and s.learner.num_updates > 0
    demos = list(s.offline.episodes())
    assert len(demos) == 2 and all(ep.success for ep in demos)       # the scripted expert succeeds
    for ep in demos:   # takeovers: the target is a_human - a_VLA, the expert's bounded last-mile correction
        assert ep.intervention.all()
        assert np.abs(ep.residual[:, :3]).max() <= 0.03 + 1e-6 and np.abs(ep.residual[:, :3]).max() > 1e-3
        assert not np.allclose(ep.residual, ep.action - ep.obs["base_action"][:-1])   # pre-clamp, not executed
    online = list(s.online.episodes())
    # pick_place tracks the cube and the target zone (config/sim_vgm.yaml model.num_objects: 2)
    poses = online[0].obs["object_poses"].reshape(len(online[0].obs["object_poses"]), 2, 7)
    seen = online[0].obs["object_conf"][:, 1] >= 0.5
    zone = poses[seen, 1, :3]   # a fixed zone seen through +-3 mm of tracker noise, in the task's range
    assert seen.any() and np.ptp(zone, axis=0).max() <= 0.006 + 1e-6
    assert 0.39 <= zone[:, 0].min() and zone[:, 0].max() <= 0.63 and np.abs(zone[:, 1]).max() <= 0.23
    # Evaluation episodes never enter the replay (frozen-policy evaluation): only train episodes are online.
    assert len(online) == kinds.count("train") and not any(ep.intervention.any() for ep in online)
    assert all(ep.meta["kind"] == "train" for ep in online)
    assert all(0.0 <= e["mean_lambda"] <= 1.0 for e in result["episodes"])
    assert result["train_steps"] + sum(e["steps"] for e in result["episodes"] if e["kind"] == "eval") \
        == result["env_steps"]


def test_base_only_never_learns_and_applies_no_residual():
    s = InProcessSession(InProcessConfig(mode="base_only", seed=2, **TINY), log=lambda line: None)
    result = s.run()
    assert s.learner.num_updates == 0
    for ep in s.online.episodes():
        np.testing.assert_array_equal(ep.lambda_, 0.0)
        np.testing.assert_array_equal(ep.residual, 0.0)
    assert all(e["mean_lambda"] == 0.0 for e in result["episodes"] if e["kind"] != "demo")


def test_evaluation_is_frozen_and_a_schedule_sets_lambda():
    cfg = InProcessConfig(mode="static", seed=3, schedule={"kind": "progressive", "H_sched": 10 ** 6}, **TINY)
    s = InProcessSession(cfg, log=lambda line: None)
    s.run()
    before = s.learner.num_updates
    rec = s.run_episode("eval", 1_000_000)
    assert s.learner.num_updates == before                       # no learning inside an evaluation
    assert rec.mean_lambda == 1.0                                # evaluation applies the residual in full
    train = s.run_episode("train", 123)
    assert train.mean_lambda < 0.05                              # p = t / 1e6: almost never in training


def test_a_lerobot_base_runs_open_loop_chunks(tmp_path):
    """vla.backend: lerobot in the in-process session: a (tiny) LeRobot ACT is the base policy,
    asked for a new chunk when vla.prefetch_steps rows are left (10-row chunks, 5 executed), as the
    chunk provider node is; demos are takeovers on top of it and the residual trains against it."""
    import math
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lerobot_tiny import save_tiny_policy
    checkpoint, _ = save_tiny_policy("act", tmp_path / "act", env_dim=14, steps=2)
    cfg = InProcessConfig(mode="vgm", seed=4, vla={"backend": "lerobot", "checkpoint_dir": str(checkpoint),
                                                    "horizon": 10, "prefetch_steps": 5}, **TINY)
    s = InProcessSession(cfg, log=lambda line: None)
    result = s.run()
    episodes = result["episodes"]
    assert [e["kind"] for e in episodes][:2] == ["demo", "demo"] and s.learner.num_updates > 0
    assert s.chunk_id == sum(math.ceil(e["steps"] / 5) for e in episodes)   # one inference per 5 steps
    for ep in s.online.episodes():   # a_VLA is the ACT's rows (around the tiny policy's trained mean)
        base = ep.obs["base_action"][:-1]
        assert np.abs(base[:, :3] - np.array([0.5, 0.0, 0.15])).max() < 0.2


def test_a_scripted_takeover_finishes_a_stalled_train_episode_and_labels_it():
    """The stagnation trap's base stops short and hovers; the untrained residual adds only its
    exploration noise. With ``takeover`` the expert takes over once the arm has hovered for 5 steps
    and finishes the episode: those steps are interventions labelled a_human - a_VLA, and the
    episode enters both buffers."""
    def session(takeover):
        return InProcessSession(InProcessConfig(task="pick_place_stagnation", mode="static", seed=5,
                                                takeover=takeover, **TINY), log=lambda line: None)
    plain = session({})
    rec = plain.run_episode("train", 7)
    assert not rec.success and rec.gate_activity["takeover_steps"] == 0
    assert list(plain.offline.episodes()) == [] and not next(plain.online.episodes()).intervention.any()

    helped = session({"after_steps": 5})
    assert helped.run_episode("eval", 7).gate_activity["takeover_steps"] == 0   # frozen evaluation: nobody helps
    rec = helped.run_episode("train", 7)
    assert rec.success and rec.gate_activity["takeover_steps"] > 0
    online = next(helped.online.episodes())
    iv = online.intervention
    first = int(np.argmax(iv))
    assert first > 5 and iv[first:].all() and not iv[:first].any()   # from the takeover to the episode's end
    assert int(iv.sum()) == rec.gate_activity["takeover_steps"]
    labels = online.residual[iv, :3]
    assert 0.01 < np.abs(labels).max() <= 0.03 + 1e-6                 # the expert's bounded 2-3 cm correction
    assert np.abs(online.residual[:first, :3]).max() < 0.01           # before: the untrained residual + exploration
    (offline,) = list(helped.offline.episodes())                      # a train episode with a takeover
    np.testing.assert_array_equal(offline.intervention, iv)


def test_takeover_settings_are_checked():
    import pytest
    from resrl.configs import ConfigError
    for bad in ({"after_steps": -1}, {"within_mm": 0.0}, {"after_step": 3}):
        with pytest.raises(ConfigError):
            InProcessSession(InProcessConfig(takeover=bad, **TINY), log=lambda line: None)


def test_every_nth_train_episode_runs_the_deterministic_policy():
    from resrl.actions import explores
    assert [explores("train", i, 3) for i in range(6)] == [False, True, True, False, True, True]
    assert all(explores("train", i, 0) for i in range(4))
    assert not any(explores(kind, i, 0) for kind in ("eval", "demo") for i in range(4))
    from resrl.configs import ConfigError
    from resrl.node_config import ResidualNodeConfig
    with pytest.raises(ConfigError, match="noise_free_every"):
        ResidualNodeConfig(noise_free_every=-1)
    s = InProcessSession(InProcessConfig(mode="static", seed=4, noise_free_every=2, **TINY), log=lambda line: None)
    s.run()
    noisy_calls = {}
    real = s._residual
    s._residual = lambda obs, explore: (noisy_calls.setdefault(len(s.plan.records), set()).add(explore),
                                        real(obs, explore))[1]
    for kind in ("train", "train", "eval", "train"):
        s.plan.record(s.run_episode(kind, 77))
    first = len(s.plan.records) - 4
    assert noisy_calls == {first: {first % 2 == 1}, first + 1: {first % 2 == 0}, first + 2: {False},
                           first + 3: {first % 2 == 0}}
