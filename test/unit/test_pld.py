"""PLD hybrid rollout schedule: base policy for T_base ~ U{0..floor(alpha*T)} steps, then the residual."""
import numpy as np
import pytest

from resrl.algos.pld import HybridRolloutSchedule


def test_t_base_range_and_uniformity():
    sched = HybridRolloutSchedule(alpha=0.5, max_steps=20, rng=0)
    draws = np.array([sched.start_episode() for _ in range(4000)])
    assert draws.min() == 0 and draws.max() == 10  # both ends reachable, never above alpha*T
    counts = np.bincount(draws, minlength=11)
    assert counts.min() > 0.7 * 4000 / 11 and counts.max() < 1.3 * 4000 / 11
    assert HybridRolloutSchedule(0.0, 50, rng=1).start_episode() == 0  # alpha 0: residual from step 0
    full = HybridRolloutSchedule(1.0, 7, rng=2)
    assert max(full.start_episode() for _ in range(500)) == 7


def test_residual_switches_exactly_at_t_base():
    sched = HybridRolloutSchedule(alpha=0.8, max_steps=30, rng=3)
    for _ in range(50):
        t_base = sched.start_episode()
        active = [sched.residual_active(t) for t in range(30)]
        assert active == [t >= t_base for t in range(30)]
        assert sched.t_base == t_base
        sched.end_episode(success=False)


def test_seeded_reproducibility():
    a = HybridRolloutSchedule(0.6, 100, rng=42)
    b = HybridRolloutSchedule(0.6, 100, rng=np.random.default_rng(42))
    c = HybridRolloutSchedule(0.6, 100, rng=43)
    sa = [a.start_episode() for _ in range(30)]
    assert sa == [b.start_episode() for _ in range(30)]
    assert sa != [c.start_episode() for _ in range(30)]


def test_successful_episodes_marked_for_export():
    sched = HybridRolloutSchedule(0.5, 10, rng=0)
    outcomes = [True, False, True, False]
    flags = []
    t_bases = []
    for ok in outcomes:
        t_bases.append(sched.start_episode())
        flags.append(sched.end_episode(ok))
    assert flags == outcomes
    assert [e.index for e in sched.exported()] == [0, 2]
    assert [e.t_base for e in sched.episodes] == t_bases


def test_misuse_raises():
    with pytest.raises(ValueError):
        HybridRolloutSchedule(1.5, 10)
    with pytest.raises(ValueError):
        HybridRolloutSchedule(0.5, 0)
    sched = HybridRolloutSchedule(0.5, 10, rng=0)
    with pytest.raises(RuntimeError):
        sched.residual_active(0)
    with pytest.raises(RuntimeError):
        sched.end_episode(True)
    sched.start_episode()
    with pytest.raises(ValueError):
        sched.residual_active(-1)
