"""The trainer owns networks, lock and snapshots: a published or checkpointed snapshot is always
the networks at an update boundary, and stop() joins a trainer that is mid warm-up."""
import hashlib
import threading

import numpy as np
import pytest
import torch

from resrl.algos.learner import Learner, LearnerConfig
from resrl.algos.calql import CalQLConfig
from resrl.models import build_critic, build_residual
from resrl.models.checkpoint import load_checkpoint, save_checkpoint, serialize_state_dict
from resrl.models.config import ModelConfig
from resrl.node_config import obs_spec
from resrl.replay import ReplayBuffer
from resrl.trainer import Trainer, parse_cpus

CFG = ModelConfig(obs_mode="object", num_objects=1, actor_hidden=(32, 32), critic_hidden=(32, 32),
                  object_trunk_dim=32, ensemble_size=2)


def _buffer(n_episodes=4, steps=20, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(obs_spec("object", CFG), 1000, gamma=0.9, n_step=1)

    def obs():
        return {"state": rng.normal(size=7).astype(np.float32), "base_action": rng.normal(size=7).astype(np.float32),
                "object_poses": rng.normal(size=7).astype(np.float32), "object_conf": np.ones(1, np.float32)}
    for _ in range(n_episodes):
        buf.start_episode(obs())
        for t in range(steps):
            buf.add_step(rng.normal(size=7) * 0.01, rng.normal(size=7) * 0.01, 1.0, float(t == steps - 1), obs(),
                         done=t == steps - 1)
        buf.end_episode(True)
    return buf


def _learner(**kw):
    torch.manual_seed(0)
    cfg = LearnerConfig(algo="calql", batch_size=16, warmup_steps=40, learning_starts=1, **kw)
    return Learner(build_residual(CFG), build_critic(CFG), cfg,
                   {"calql": CalQLConfig(num_random=2, num_policy=2)})


def _hashes(learner):
    return tuple(hashlib.sha256(serialize_state_dict(m)).hexdigest()
                 for m in (learner.deployed_actor, learner.critic))


def test_snapshots_and_checkpoints_taken_while_updates_run_are_update_boundaries(tmp_path):
    torch.set_num_threads(1)
    learner = _learner(policy_ema=0.05)
    online, offline = _buffer(seed=1), _buffer(seed=2)
    boundaries = {_hashes(learner)}
    trainer = Trainer(learner, online, offline, log=lambda s: None,
                      after_update=lambda: boundaries.add(_hashes(learner)))
    trainer.warmup_done = True
    trainer.start()
    snaps, ckpts = [], []
    try:
        trainer.add_credits(30)
        while trainer.credits > 0 or not snaps:      # publish and checkpoint as fast as we can meanwhile
            snaps.append(trainer.snapshot())
            path = tmp_path / f"c{len(ckpts)}.pt"
            with trainer.lock:
                save_checkpoint(path, {"residual": learner.deployed_actor, "critic": learner.critic}, CFG,
                                learner.policy_version)
            ckpts.append(path)
        assert trainer.wait_idle(60)
    finally:
        trainer.stop()
    assert learner.num_updates == 30 * learner.agent.cfg.utd and trainer.errors == 0
    assert len(boundaries) > 10   # the networks really changed while we snapshotted
    versions = [s.version for s in snaps]
    assert versions == sorted(versions)
    distinct = set()
    for snap in snaps:
        pair = (snap.weights["residual"][1], snap.weights["critic"][1])
        assert pair in boundaries          # never a torn snapshot (half an optimiser step)
        assert hashlib.sha256(snap.weights["critic"][0]).hexdigest() == pair[1]
        distinct.add(pair)
    for path in ckpts:
        states, _, _, _ = load_checkpoint(path)
        res, crit = build_residual(CFG), build_critic(CFG)
        res.load_state_dict(states["residual"])
        crit.load_state_dict(states["critic"])
        assert (hashlib.sha256(serialize_state_dict(res)).hexdigest(),
                hashlib.sha256(serialize_state_dict(crit)).hexdigest()) in boundaries
    assert _hashes(learner) in boundaries


def test_credits_reach_zero_only_after_the_last_update_finished():
    learner = _learner()
    online, offline = _buffer(seed=3), _buffer(seed=4)
    in_update = threading.Event()
    seen = []

    def after():
        in_update.set()
        seen.append(trainer.credits)   # still counted while the update runs

    trainer = Trainer(learner, online, offline, log=lambda s: None, after_update=after)
    trainer.start()
    try:
        trainer.add_credits(5)
        assert trainer.wait_idle(60)
        assert learner.num_updates == 5 * learner.agent.cfg.utd
    finally:
        trainer.stop()
    assert seen == [5, 4, 3, 2, 1]


def test_stop_during_warmup_joins_and_leaves_the_warmup_unfinished():
    learner = _learner()
    learner.config.warmup_steps = 100_000
    offline = _buffer(seed=5)
    started = threading.Event()
    trainer = Trainer(learner, ReplayBuffer(obs_spec("object", CFG), 10), offline, log=lambda s: None,
                      after_update=started.set)
    trainer.start()
    trainer.request_warmup()
    assert started.wait(60)
    trainer.stop()
    assert not trainer.running and not trainer.warmup_done
    assert 0 < learner.num_warmup_updates < 100_000


def test_resume_state_round_trip(tmp_path):
    learner = _learner(policy_ema=0.05)
    online, offline = _buffer(seed=6), _buffer(seed=7)
    trainer = Trainer(learner, online, offline, log=lambda s: None)
    trainer.warmup_now()
    trainer.add_credits(3)
    trainer.drain()
    trainer.save_state(tmp_path / "resume.pt")
    fresh = Trainer(_learner(policy_ema=0.05), online, offline, log=lambda s: None)
    fresh.load_state(tmp_path / "resume.pt")
    assert fresh.warmup_done and fresh.learner.num_updates == learner.num_updates
    assert fresh.learner.policy_version == learner.policy_version
    assert _hashes(fresh.learner) == _hashes(learner)


def test_the_training_thread_alone_yields_the_cores(tmp_path):
    """train_nice / train_cpus (issue 16): the training thread's priority and CPUs change, the
    caller's (the node's callbacks) do not."""
    import os
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    cpus = sorted(os.sched_getaffinity(0))
    online, offline = _buffer(seed=1), _buffer(seed=2)
    trainer = Trainer(_learner(), online, offline, log=lambda s: None, nice=5, cpus=tuple(cpus[-1:]))
    trainer.warmup_done = True
    trainer.start()
    try:
        trainer.add_credits(2)
        assert trainer.wait_idle(60)                  # the thread ran: its settings were applied first
        tid = trainer._thread.native_id
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(mine + 5, 19)
        assert os.sched_getaffinity(tid) == set(cpus[-1:])
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
        assert os.sched_getaffinity(0) == set(cpus)
    finally:
        trainer.stop()
    with pytest.raises(ValueError, match="nice"):
        Trainer(_learner(), online, offline, nice=-1)
    with pytest.raises(ValueError, match="not among"):
        parse_cpus("0,4096")
    with pytest.raises(ValueError, match="comma-separated"):
        parse_cpus("zero")
    assert parse_cpus("") == () and parse_cpus(f" {cpus[0]}, {cpus[0]}") == (cpus[0],)
