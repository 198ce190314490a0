"""PLD closed in sim (resrl.base_policy.pld): hybrid rollouts in the session, distillation into the
LeRobot base with LeRobot's trainer, and the loop's glue on a tiny budget."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from resrl.base_policy.pld import PLDLoopConfig, distill, run_loop, session_config
from resrl.base_policy.train import evaluate, record_demos
from resrl.export.lerobot import hybrid_switch
from resrl.sim.inprocess import InProcessConfig, InProcessSession

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lerobot_tiny import save_tiny_policy  # noqa: E402

NO_LEARNING = {"batch_size": 16, "warmup_steps": 0, "learning_starts": 10 ** 9}


def test_hybrid_rollouts_run_the_base_alone_then_hand_over_to_the_residual():
    """Every train episode: lambda 0 and no residual for T_base steps, then the arbiter's mode
    (residual_only: lambda 1) to the end; evaluation episodes are never hybrid."""
    s = InProcessSession(InProcessConfig(mode="residual_only", seed=2, pld_alpha=1.0, learner=NO_LEARNING,
                                         session={"num_demos": 0, "eval_every": 1, "eval_episodes": 1,
                                                  "max_env_steps": 400, "eval_trigger_streak": 100}),
                         log=lambda line: None)
    records = s.run()["episodes"]
    train = [r for r in records if r["kind"] == "train"]
    assert train and any(r["kind"] == "eval" for r in records)
    assert all(r["gate_activity"]["t_base"] == 0 and r["mean_lambda"] == 1.0 for r in records if r["kind"] == "eval")
    assert [e.t_base for e in s.control.hybrid.episodes] == [r["gate_activity"]["t_base"] for r in train]
    assert any(r["gate_activity"]["t_base"] > 0 for r in train)
    assert s.control.vgm.mode == "residual_only"   # restored after every episode
    for ep, r in zip(s.online.episodes(), train):
        t_base = int(r["gate_activity"]["t_base"])
        lam = np.asarray(ep.lambda_)
        assert (lam[:t_base] == 0).all() and (lam[t_base:] == 1).all()
        assert (np.asarray(ep.residual)[:t_base] == 0).all()
        # the exporter's PLD selection finds the same switch (once the episode is a success)
        assert hybrid_switch(ep) == (t_base if 0 < t_base < len(lam) else None)


def test_hybrid_rollouts_need_a_residual_to_hand_over_to():
    with pytest.raises(ValueError, match="base_only"):
        InProcessSession(InProcessConfig(mode="base_only", pld_alpha=0.5), log=lambda line: None)
    with pytest.raises(ValueError, match="alpha"):
        InProcessSession(InProcessConfig(mode="static", pld_alpha=1.5), log=lambda line: None)


def test_distill_fine_tunes_the_lerobot_base_with_lerobots_trainer(tmp_path):
    """Successful rollouts + the base's own demos -> LeRobotDataset -> ``lerobot_train --policy.path``:
    the base's architecture is kept, its weights move, and the result loads as a base again."""
    import torch
    from safetensors.torch import load_file
    base, _ = save_tiny_policy("act", tmp_path / "act", env_dim=14, steps=2)
    rollouts = list(record_demos("pick_place", 2, 0.004, 0.05, seed0=500)[0].episodes())
    cfg = PLDLoopConfig(base=str(base), out=str(tmp_path / "pld"), base_demos=1, finetune_steps=2,
                        execute_steps=5)
    info = distill(cfg, rollouts, tmp_path / "pld")
    assert info["episodes"] == 3 and info["rollout_frames"] == sum(len(ep.action) for ep in rollouts)
    assert info["frames"] > info["rollout_frames"]
    checkpoint = Path(info["checkpoint"])
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["type"] == "act" and config["dim_model"] == 32 and config["chunk_size"] == 10
    before, after = load_file(str(base / "model.safetensors")), load_file(str(checkpoint / "model.safetensors"))
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    result = evaluate(checkpoint, "pick_place", 1, execute_steps=5, horizon=10)
    assert result["episodes"] == 1 and len(result["outcomes"]) == 1


def test_the_loop_says_so_when_the_session_found_nothing_to_distill(tmp_path):
    """A tiny ACT (a constant pose) and an untrained residual never succeed: the loop measures the
    base, runs the session on the base's chunks, and stops with the reason instead of fine-tuning."""
    base, _ = save_tiny_policy("act", tmp_path / "act", env_dim=14, steps=2)
    cfg = PLDLoopConfig(base=str(base), out=str(tmp_path / "pld"), base_demos=1, num_demos=1, session_steps=40,
                        episodes=1, execute_steps=5,
                        learner={"batch_size": 16, "warmup_steps": 2, "learning_starts": 16})
    session = session_config(cfg)
    assert session.vla["horizon"] == 10 and session.vla["prefetch_steps"] == 5 and session.pld_alpha == 0.5
    result = run_loop(cfg, log=lambda line: None)
    assert result["before"]["episodes"] == 1 and result["session"]["train_episodes"] >= 1
    assert result["session"]["train_successes"] == 0 and result["after"] is None
    assert "nothing to distill" in result["why"]
    assert json.loads((tmp_path / "pld" / "result.json").read_text())["why"] == result["why"]
    assert not (tmp_path / "pld" / "dataset").exists()


def test_the_loop_refuses_a_session_seed_that_reuses_the_evaluation_seeds(tmp_path):
    base, _ = save_tiny_policy("act", tmp_path / "act", env_dim=14, steps=1)
    with pytest.raises(ValueError, match="evaluation seeds"):
        session_config(PLDLoopConfig(base=str(base), out=str(tmp_path / "pld"), seed=1, execute_steps=5))
    with pytest.raises(ValueError, match="execute_steps"):
        session_config(PLDLoopConfig(base=str(base), out=str(tmp_path / "pld"), execute_steps=11))
