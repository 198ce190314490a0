"""What a control step does when an input misses its deadline (resrl.control.StepDeadline), driven
by an injected clock: no timing in the test, the clock only moves when the test moves it."""
import numpy as np
import pytest

from resrl.arbiter.safety import SafetyConfig, SafetyFilter
from resrl.arbiter.vgm import VGMArbiter, VGMConfig
from resrl.control import ControlStep, StepDeadline


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


STATE = np.array([0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0], np.float32)
A_VLA = STATE + np.array([0.01, 0, 0, 0, 0, 0, 0], np.float32)
A_RES = np.array([0.0, 0.02, 0, 0, 0, 0, 0], np.float32)


def inputs(**kw):
    base = dict(human=False, demo=False, has_base=True, needs_residual=True, has_residual=True, has_obs=True)
    return {**base, **kw}


def test_on_time_step_goes_at_once_and_counts_nothing_late():
    clock = FakeClock()
    d = StepDeadline(0.3, 0.1, clock=clock)
    assert d.check(d.open(), **inputs()) == ""
    assert d.steps == 1 and not d.missed


@pytest.mark.parametrize("policy", ["base", "hold"])
def test_late_residual_waits_its_deadline_then_follows_the_policy(policy):
    clock = FakeClock()
    d = StepDeadline(chunk_wait_s=0.3, residual_wait_s=0.1, on_late_residual=policy, clock=clock)
    opened = d.open()
    clock.now += 0.099
    assert d.check(opened, **inputs(has_residual=False)) is None          # still within the deadline
    clock.now += 0.002
    late = d.check(opened, **inputs(has_residual=False))
    assert late == "residual" and d.missed == {"residual": 1}
    control = ControlStep(VGMArbiter(VGMConfig(mode="static", lambda_static=1.0)), SafetyFilter(SafetyConfig()))
    reason = d.hold_reason(late)
    decision = control.decide(STATE, None, None if reason else A_VLA, None, no_base_reason=reason or "no base")
    if policy == "base":
        assert reason == "" and not decision.held
        np.testing.assert_allclose(decision.composed, A_VLA, atol=1e-7)   # the base alone, nothing guessed
        np.testing.assert_allclose(decision.record.residual, 0.0)
    else:
        assert decision.held and "residual missed its 100 ms deadline" in decision.hold_reason
        np.testing.assert_allclose(decision.action, control.safety.hold_action(STATE), atol=1e-7)


def test_residual_that_arrives_in_time_is_composed():
    clock = FakeClock()
    d = StepDeadline(0.3, 0.1, on_late_residual="hold", clock=clock)
    opened = d.open()
    clock.now += 0.05
    assert d.check(opened, **inputs(has_residual=False)) is None
    assert d.check(opened, **inputs()) == ""                              # it arrived at 50 ms
    control = ControlStep(VGMArbiter(VGMConfig(mode="static", lambda_static=1.0)), SafetyFilter(SafetyConfig()))
    decision = control.decide(STATE, None, A_VLA, A_RES)
    np.testing.assert_allclose(decision.composed, A_VLA + A_RES, atol=1e-7)


def test_late_chunk_holds_after_the_chunk_deadline_not_the_residual_one():
    clock = FakeClock()
    d = StepDeadline(chunk_wait_s=0.3, residual_wait_s=0.1, clock=clock)
    opened = d.open()
    clock.now += 0.2
    no_chunk = inputs(has_base=False, needs_residual=False, has_residual=False)
    assert d.check(opened, **no_chunk) is None
    clock.now += 0.11
    assert d.check(opened, **no_chunk) == "chunk"
    control = ControlStep(VGMArbiter(VGMConfig(mode="static")), SafetyFilter(SafetyConfig()))
    decision = control.decide(STATE, None, None, None, no_base_reason="no base action (late)")
    assert decision.held and decision.hold_reason == "no base action (late)"


def test_takeover_needs_neither_chunk_nor_residual_and_demo_waits_for_the_teleoperator():
    clock = FakeClock()
    d = StepDeadline(0.3, 0.1, clock=clock)
    opened = d.open()
    assert d.check(opened, **inputs(human=True, has_base=False, needs_residual=False, has_residual=False)) == ""
    assert d.check(opened, **inputs(demo=True, needs_residual=False)) is None   # no teleop action yet
    clock.now += 0.101
    assert d.check(opened, **inputs(demo=True, needs_residual=False)) == "teleop"
    assert d.missed == {"teleop": 1} and "teleop 1" in d.summary()


def test_several_late_inputs_are_all_counted():
    clock = FakeClock()
    d = StepDeadline(0.3, 0.1, clock=clock)
    opened = d.open()
    clock.now += 1.0
    assert d.check(opened, **inputs(has_residual=False, has_obs=False)) == "residual,observation"
    assert d.missed == {"residual": 1, "observation": 1}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="on_late_residual"):
        StepDeadline(0.3, 0.1, on_late_residual="guess")
    with pytest.raises(ValueError, match=">= 0"):
        StepDeadline(-1.0, 0.1)
