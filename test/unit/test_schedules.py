"""Peer lambda schedules: Policy Decorator's progressive schedule and a constant (ResFiT) scale."""
import numpy as np
import pytest

from resrl.arbiter.schedules import LambdaSchedule, ScheduleConfig, build_schedule


def test_progressive_probability_ramps_linearly_then_saturates():
    s = LambdaSchedule(ScheduleConfig(kind="progressive", H_sched=100))
    assert [s.apply_probability(t) for t in (0, 25, 100, 1000)] == [0.0, 0.25, 1.0, 1.0]


def test_progressive_applies_the_bounded_scale_with_that_frequency():
    s = LambdaSchedule(ScheduleConfig(kind="progressive", H_sched=1000, residual_scale=0.6), seed=3)
    draws = np.array([s.lambda_for(250) for _ in range(4000)])
    assert set(np.unique(draws)) == {0.0, 0.6}
    assert np.mean(draws > 0) == pytest.approx(0.25, abs=0.03)
    assert s.lambda_for(0) == 0.0 and s.lambda_for(5000) == 0.6


def test_evaluation_always_applies_the_residual():
    s = LambdaSchedule(ScheduleConfig(kind="progressive", H_sched=1000, residual_scale=0.8))
    assert s.lambda_for(0, train=False) == 0.8


def test_constant_schedule_and_seeded_reproducibility():
    c = build_schedule({"kind": "constant", "residual_scale": 0.5})
    assert [c.lambda_for(t) for t in (0, 10, 10_000)] == [0.5, 0.5, 0.5]
    a, b = (build_schedule({"kind": "progressive", "H_sched": 10}, seed=7) for _ in range(2))
    assert [a.lambda_for(t) for t in range(10)] == [b.lambda_for(t) for t in range(10)]
    assert build_schedule({}) is None


@pytest.mark.parametrize("bad", [{"kind": "cosine"}, {"residual_scale": 1.5}, {"H_sched": 0}, {"H_sched": 2.5}])
def test_bad_schedules_are_rejected(bad):
    with pytest.raises(ValueError):
        ScheduleConfig(**bad)
