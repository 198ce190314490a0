"""PLD hybrid rollout schedule: base policy for T_base ~ U{0..floor(alpha*T)} steps, then the residual."""
import numpy as np
import pytest

from resrl.arbiter.pld import HybridRolloutSchedule


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


def test_the_control_step_runs_the_base_alone_for_t_base_steps_then_the_arbiters_mode():
    """What the arbiter node and the in-process runner both run: during the prefix lambda is 0,
    no residual is asked for or stored; then the mode's lambda (residual_only: 1); eval and demo
    episodes are never hybrid; a takeover in the prefix is still the human's action."""
    from resrl.arbiter.pld import PLDConfig, build_hybrid
    from resrl.arbiter.safety import SafetyConfig, SafetyFilter
    from resrl.arbiter.vgm import VGMArbiter, VGMConfig
    from resrl.control import ControlStep
    state = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.5], np.float32)
    a_vla = state + np.array([0.01, 0, 0, 0, 0, 0, 0], np.float32)
    a_res = np.array([0.0, 0.01, 0, 0, 0, 0, 0], np.float32)
    assert build_hybrid(PLDConfig(alpha=0.0), 0) is None
    step = ControlStep(VGMArbiter(VGMConfig(mode="residual_only")), SafetyFilter(SafetyConfig()),
                       hybrid=build_hybrid(PLDConfig(alpha=1.0, max_steps=6), 0))
    t_bases = []
    for _ in range(6):
        t_base = step.start_episode("train")
        t_bases.append(t_base)
        for t in range(8):
            assert step.needs_residual(a_vla, None) == (t >= t_base)
            d = step.decide(state, None, a_vla, a_res)
            expected = a_vla if t < t_base else a_vla + a_res
            np.testing.assert_allclose(d.composed, expected, atol=1e-7)
            np.testing.assert_allclose(d.record.lambda_per_dim, 0.0 if t < t_base else 1.0)
            np.testing.assert_allclose(d.record.residual, 0.0 if t < t_base else a_res, atol=1e-7)
            assert d.report.mode == ("base_only" if t < t_base else "residual_only")
        step.end_episode(success=t_base % 2 == 0)
        assert step.vgm.mode == "residual_only"
    assert [e.t_base for e in step.hybrid.episodes] == t_bases and max(t_bases) > 0
    assert [e.export for e in step.hybrid.episodes] == [t % 2 == 0 for t in t_bases]
    for kind in ("eval", "demo"):
        assert step.start_episode(kind) == 0 and step.needs_residual(a_vla, None)
        step.end_episode(True)
    assert len(step.hybrid.episodes) == 6
    step.start_episode("train")
    while not step.in_base_prefix:   # a draw with a prefix
        step.end_episode(False)
        step.start_episode("train")
    human = a_vla + np.array([0, 0, 0.01, 0, 0, 0, 0], np.float32)
    d = step.decide(state, None, a_vla, None, human)
    assert d.intervention and np.allclose(d.composed, human)
