"""VGM options beyond the paper (issue 15): do no harm, calibrated inputs, noise floor, smooth
authority, greedy horizon -- each against the paper gate on constructed critic traces."""
import numpy as np
import pytest

from resrl.arbiter import VGMArbiter, VGMConfig
from resrl.arbiter.vgm import target_jump_m

FLAT = np.zeros(2)


def gated(**kw) -> VGMArbiter:
    return VGMArbiter(VGMConfig(**kw))


def test_paper_preset_switches_every_option_off():
    cfg = VGMConfig.paper()
    assert (cfg.lambda_prior, cfg.greedy_hold_steps, cfg.max_lambda_rate, cfg.clip_values, cfg.critic_noise) == \
        (0.0, 0, None, False, 0.0)
    assert VGMConfig.paper(kappa=0.5).kappa == 0.5


def test_no_evidence_keeps_the_warmup_authority_not_zero():
    # A flat critic (A = 0, V constant but rising slowly enough to stay below every gate).
    paper = VGMArbiter(VGMConfig.paper(use_escape=False))
    shipped = gated(use_escape=False)
    for t in range(10):
        v = 0.5 + 0.001 * t
        assert paper.step(FLAT, FLAT, v).lambda_value == 0.0
        assert shipped.step(FLAT, FLAT, v).lambda_value == 1.0


def test_signed_greedy_takes_authority_away_only_when_confident():
    arb = gated(use_regress=False, use_escape=False, kappa=1.0, eps_A=0.0, critic_noise=0.01,
                greedy_hold_steps=0, max_lambda_rate=None)
    r = arb.step([0.40, 0.40], [0.50, 0.50], 0.5)          # A = -0.1 on both heads: harm
    assert (r.g_harm, r.lambda_value) == (1.0, 0.0)
    r = arb.step([0.40, 0.60], [0.50, 0.50], 0.5)          # heads disagree: UCB = 0.1 > -0.01
    assert (r.g_harm, r.lambda_value) == (0.0, 1.0)
    r = arb.step([0.495, 0.495], [0.50, 0.50], 0.5)        # -0.005: below the noise floor
    assert (r.g_harm, r.lambda_value) == (0.0, 1.0)


def test_paper_gate_never_reports_harm():
    arb = VGMArbiter(VGMConfig.paper(use_regress=False, use_escape=False))
    assert arb.step([0.0, 0.0], [0.9, 0.9], 0.5).g_harm == 0.0


def test_escape_can_overrule_harm():
    arb = gated(use_regress=False, W_e=2, greedy_hold_steps=0, max_lambda_rate=None, kappa=0.0, eps_A=0.0)
    reports = [arb.step([0.3, 0.3], [0.5, 0.5], 0.5) for _ in range(4)]   # harm every step, V flat
    assert reports[0].lambda_value == 0.0 and not reports[0].escape_latched
    assert reports[-1].escape_latched and reports[-1].lambda_value == 1.0  # 1 - 1 + 1


def test_values_are_clipped_into_the_reward_range_before_the_gates():
    arb = gated(use_greedy=False, use_escape=False, W_r=3, delta_r=0.05, critic_noise=0.0, lambda_prior=0.0,
                max_lambda_rate=None)
    # An overestimating critic: V 1.6 then 1.3. Clipped, both are 1.0: no drop, no regress.
    assert arb.step(None, None, 1.6).value == 1.0
    r = arb.step(None, None, 1.3)
    assert (r.value, r.value_drop, r.g_regress) == (1.0, 0.0, 0.0)
    paper = VGMArbiter(VGMConfig.paper(use_greedy=False, use_escape=False, W_r=3, delta_r=0.05))
    paper.step(None, None, 1.6)
    assert paper.step(None, None, 1.3).g_regress == 1.0


def test_q_is_clipped_too():
    arb = gated(use_regress=False, use_escape=False, lambda_prior=0.0, kappa=0.0, eps_A=0.0, critic_noise=0.0,
                greedy_hold_steps=0, max_lambda_rate=None)
    # Both Q above the range: clipped to 1 and 1 -> A = 0, no greedy.
    assert arb.step([1.5, 1.5], [1.2, 1.2], 0.5).g_greedy == 0.0


def test_raw_q_advantage_survives_a_common_offset_that_clipping_erases():
    # A conservative critic reads ~1.1 where the return is ~0.4: clipped one by one, 1.15 and 1.05
    # are both 1 (no evidence); differenced raw, the residual's +0.1 on both heads opens the gate.
    kw = dict(use_regress=False, use_escape=False, lambda_prior=0.0, kappa=1.0, eps_A=0.0, critic_noise=0.01,
              greedy_hold_steps=0, max_lambda_rate=None)
    assert gated(**kw).step([1.15, 1.15], [1.05, 1.05], 0.4).g_greedy == 0.0
    raw = gated(advantage_from_raw_q=True, **kw)
    r = raw.step([1.15, 1.15], [1.05, 1.05], 0.4)
    assert (r.g_greedy, r.lambda_value) == (1.0, 1.0) and r.advantage_mean == pytest.approx(0.1)
    r = raw.step([1.05, 1.02], [1.15, 1.14], 0.4)       # below the base on both heads: harm (signed gate)
    signed = gated(advantage_from_raw_q=True, **{**kw, "lambda_prior": 1.0}).step([1.05, 1.02], [1.15, 1.14], 0.4)
    assert (r.g_harm, signed.g_harm, signed.lambda_value) == (0.0, 1.0, 0.0)
    # The difference is bounded by the reward's range like a clipped value; V is still clipped.
    r = raw.step([9.0, 9.0], [-9.0, -9.0], 1.7)
    assert (r.advantage_mean, r.value) == (1.0, 1.0)
    with pytest.raises(ValueError, match="greedy_baseline 'base'"):
        VGMConfig(advantage_from_raw_q=True, greedy_baseline="value")


def test_critic_noise_floor_for_regress_and_escape():
    arb = gated(use_greedy=False, W_r=2, delta_r=0.05, W_e=2, eta_e=0.0, critic_noise=0.02, lambda_prior=0.0,
                max_lambda_rate=None)
    values = (0.50, 0.49, 0.50, 0.505, 0.545)
    r = [arb.step(None, None, v) for v in values]
    assert r[1].g_regress == 0.0                        # drop 0.01 < noise 0.02
    assert r[3].escape_latched                          # rise 0.015 over 2 steps is not progress
    assert not r[4].escape_latched                      # rise 0.045 > noise: progress
    paper = VGMArbiter(VGMConfig.paper(use_greedy=False, W_r=2, delta_r=0.05, W_e=2, eta_e=0.0))
    p = [paper.step(None, None, v) for v in values]
    assert p[1].g_regress == pytest.approx(0.2) and not p[3].escape_latched


def test_rate_limit_bounds_every_step_and_reports_the_jump():
    arb = gated(use_regress=False, use_escape=False, kappa=0.0, eps_A=0.0, lambda_prior=0.0,
                max_lambda_rate=0.25, greedy_hold_steps=0)
    lams, deltas = [], []
    for adv in (0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5):
        r = arb.step([adv, adv], FLAT, 0.5)
        lams.append(r.lambda_value)
        deltas.append(r.lambda_delta)
    assert lams == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5])
    assert deltas[0] == 0.0 and max(deltas) == pytest.approx(0.25)
    assert target_jump_m(np.full(3, 0.25), [0.03, 0.0, 0.04, 0.1, 0, 0, 1]) == pytest.approx(0.0125)


def test_rate_limited_episode_starts_at_the_prior():
    arb = gated(use_greedy=False, use_regress=False, use_escape=False, lambda_prior=1.0, max_lambda_rate=0.25)
    assert arb.step(FLAT, FLAT, 0.5).lambda_value == 1.0
    arb.reset()
    assert arb.step(FLAT, FLAT, 0.5).lambda_value == 1.0


def test_greedy_hold_repeats_the_signed_decision():
    arb = gated(use_regress=False, use_escape=False, kappa=0.0, eps_A=0.0, critic_noise=0.0,
                greedy_hold_steps=2, max_lambda_rate=None)
    first = arb.step([0.2, 0.2], [0.5, 0.5], 0.5)
    held = [arb.step(FLAT, FLAT, 0.5) for _ in range(3)]
    assert first.g_harm == 1.0 and [h.g_harm for h in held] == [1.0, 1.0, 0.0]
    assert [h.lambda_value for h in held] == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("bad", [{"lambda_prior": -0.1}, {"lambda_prior": 1.5}, {"value_min": 1.0, "value_max": 0.0},
                                 {"critic_noise": -0.01}, {"critic_noise": float("nan")}])
def test_option_constants_are_checked(bad):
    with pytest.raises(ValueError):
        VGMConfig(**bad)


# --- escape by perturbation (escape_noise), applied by the control step -------------------------
XI = np.array([0.03, 0.03, 0.03, 0.1, 0.1, 0.1, 1.0], np.float32)
STATE = np.array([0.5, 0, 0.2, 0, 0, 0, 0], np.float32)
A_VLA = np.array([0.5, 0, 0.2, 0, 0, 0, 1.0], np.float32)
A_RES = np.array([0.01, 0, 0, 0, 0, 0, 0], np.float32)


def _escape_step(values, seed=3, **vgm):
    """A control step whose critic reports V = values[t] (no greedy evidence), the decisions."""
    from resrl.arbiter.safety import SafetyConfig, SafetyFilter
    from resrl.control import ControlStep
    trace = iter(values)
    step = ControlStep(VGMArbiter(VGMConfig(W_e=3, **vgm)), SafetyFilter(SafetyConfig(max_step_translation=1.0)),
                       critic=lambda *_: (FLAT, FLAT, next(trace)), xi=XI, seed=seed)
    return [step.decide(STATE, {"x": 1}, A_VLA, A_RES) for _ in values]


def test_escape_noise_perturbs_the_residual_only_while_the_escape_gate_is_latched():
    stalled = _escape_step([0.5] * 8, escape_noise=0.2)
    latched = [d.report.escape_latched for d in stalled]
    assert latched == [False] * 3 + [True] * 5            # no progress over W_e = 3 steps
    for d in stalled:
        assert d.perturbed == d.report.escape_latched
        if d.perturbed:
            assert not np.allclose(d.residual, A_RES) and np.all(np.abs(d.residual) <= XI + 1e-7)
            np.testing.assert_allclose(d.composed, A_VLA + d.lambda_per_dim * d.residual, atol=1e-6)
            np.testing.assert_array_equal(d.record.residual, d.residual)   # stored = what ran
        else:
            np.testing.assert_array_equal(d.residual, A_RES)
    rising = _escape_step([0.1 * t for t in range(8)], escape_noise=0.2)
    assert not any(d.perturbed for d in rising)


def test_escape_noise_is_seeded_off_by_default_and_off_outside_vgm_mode():
    runs = [[d.residual for d in _escape_step([0.5] * 6, seed=s, escape_noise=0.2)] for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0][-1], runs[2][-1])
    assert not any(d.perturbed for d in _escape_step([0.5] * 6))                        # default 0
    assert not any(d.perturbed for d in _escape_step([0.5] * 6, mode="static", escape_noise=0.2))
    assert VGMConfig.paper().escape_noise == 0.0


def test_escape_noise_without_the_residual_bound_is_refused():
    from resrl.arbiter.safety import SafetyFilter
    from resrl.control import ControlStep
    step = ControlStep(VGMArbiter(VGMConfig(W_e=1, escape_noise=0.2)), SafetyFilter(),
                       critic=lambda *_: (FLAT, FLAT, 0.5))
    step.decide(STATE, {"x": 1}, A_VLA, A_RES)
    with pytest.raises(ValueError, match="xi"):
        for _ in range(3):
            step.decide(STATE, {"x": 1}, A_VLA, A_RES)
    with pytest.raises(ValueError):
        VGMConfig(escape_noise=-0.1)


def test_only_the_escape_gate_amplifies_when_asked():
    # lambda_max 2, no rate limit: the greedy gate fires on every step (A = +0.5), V is flat, so
    # the escape gate latches after W_e steps.
    kw = dict(use_regress=False, W_e=2, greedy_hold_steps=0, max_lambda_rate=None, kappa=0.0, eps_A=0.0,
              lambda_max=2.0)
    summed, escape_only = gated(**kw), gated(**kw, amplify_only_on_escape=True)
    s = [summed.step([1.0, 1.0], [0.5, 0.5], 0.5).lambda_value for _ in range(4)]
    e = [escape_only.step([1.0, 1.0], [0.5, 0.5], 0.5) for _ in range(4)]
    assert s == [2.0] * 4                                   # prior 1 + greedy 1: amplified from step 0
    assert [r.lambda_value for r in e] == [1.0, 1.0, 2.0, 2.0]   # capped at 1 until escape latches
    assert not e[1].escape_latched and e[2].escape_latched
    # Progress unlatches the escape gate: back to the trained scale at once (no rate limit here).
    assert escape_only.step([1.0, 1.0], [0.5, 0.5], 0.6).lambda_value == 1.0
    # Per-group caps still hold: the gripper stays at 1 while translation is amplified.
    grouped = gated(**kw, amplify_only_on_escape=True, per_group=True,
                    group_lambda_max={"translation": 2.0, "rotation": 1.0, "gripper": 1.0})
    r = [grouped.step([1.0, 1.0], [0.5, 0.5], 0.5) for _ in range(3)][-1]
    assert list(r.lambda_per_dim) == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0]


# --- what the gates judge in a training episode (greedy_input) -----------------------------------
@pytest.mark.parametrize("greedy_input", ["executed", "policy"])
def test_gates_judge_the_executed_or_the_policys_residual_and_compose_the_executed(greedy_input):
    from resrl.arbiter.safety import SafetyConfig, SafetyFilter
    from resrl.control import ControlStep
    judged = []

    def critic(obs, a_vla, a_res):   # Q of the judged residual: harmful iff it moves along -x
        judged.append(None if a_res is None else np.array(a_res))
        q = 0.5 + 10.0 * float(a_res[0]) if a_res is not None else 0.5
        return np.full(2, q), np.full(2, 0.5), 0.5
    step = ControlStep(VGMArbiter(VGMConfig(greedy_input=greedy_input, use_escape=False, max_lambda_rate=None,
                                            kappa=0.0, eps_A=0.0)),
                       SafetyFilter(SafetyConfig(max_step_translation=1.0)), critic=critic, xi=XI)
    noisy = np.array([-0.01, 0, 0, 0, 0, 0, 0], np.float32)   # exploration noise flipped the sign
    d = step.decide(STATE, {"x": 1}, A_VLA, noisy, a_res_policy=A_RES)
    np.testing.assert_array_equal(judged[-1], A_RES if greedy_input == "policy" else noisy)
    assert d.report.g_harm == (1.0 if greedy_input == "executed" else 0.0)
    assert d.report.g_greedy == (1.0 if greedy_input == "policy" else 0.0)
    np.testing.assert_array_equal(d.residual, noisy)          # what runs and is stored: the executed one
    np.testing.assert_allclose(d.composed, A_VLA + d.lambda_per_dim * noisy, atol=1e-7)
    # Without noise (evaluation) there is no policy action: the executed one is judged.
    step.decide(STATE, {"x": 1}, A_VLA, A_RES)
    np.testing.assert_array_equal(judged[-1], A_RES)
    # A takeover is judged at no residual either way.
    step.decide(STATE, {"x": 1}, A_VLA, noisy, human=A_VLA, a_res_policy=A_RES)
    assert judged[-1] is None


def test_greedy_input_is_checked_and_the_paper_judges_what_runs():
    assert VGMConfig.paper().greedy_input == "executed"
    with pytest.raises(ValueError, match="greedy_input"):
        VGMConfig(greedy_input="mean")


def test_a_saturated_value_does_not_latch_the_escape_gate_when_asked():
    # An overestimating critic: V above value_max is clipped to 1 and cannot rise; the paper's lag
    # test reads that as a stall, the option reads it as no evidence.
    kw = dict(use_greedy=False, use_regress=False, W_e=2, max_lambda_rate=None, lambda_max=2.0,
              amplify_only_on_escape=True)
    paper_lag, guarded = gated(**kw), gated(**kw, escape_ignores_saturated_value=True)
    assert [paper_lag.step(None, None, 1.3).escape_latched for _ in range(4)] == [False, False, True, True]
    assert [guarded.step(None, None, 1.3).lambda_value for _ in range(4)] == [1.0] * 4
    # Within critic_noise of the top is saturated too; below it the lag test runs as before.
    near_top = dict(kw, critic_noise=0.02)
    unguarded = gated(**near_top)
    assert [unguarded.step(None, None, 0.985).escape_latched for _ in range(4)][-1]
    near = gated(**near_top, escape_ignores_saturated_value=True)
    assert not any(near.step(None, None, 0.985).escape_latched for _ in range(4))
    stalled = gated(**kw, escape_ignores_saturated_value=True)
    assert [stalled.step(None, None, 0.9).escape_latched for _ in range(4)] == [False, False, True, True]
    # A latched gate is released by progress, also when V rises into saturation.
    assert stalled.step(None, None, 1.2).escape_latched is False


def test_escape_latches_only_while_the_arm_is_still_when_asked():
    kw = dict(use_greedy=False, use_regress=False, W_e=2, max_lambda_rate=None, escape_stall_m=0.01)
    still = np.array([0.5, 0.0, 0.1, 0.0, 0.0, 0.0, 1.0])
    moving = [still + [0.01 * k, 0, 0, 0, 0, 0, 0] for k in range(6)]           # 1 cm per step
    closing = [still + [0, 0, 0, 0, 0, 0, -0.2 * k] for k in range(6)]           # gripper closing
    # V flat throughout: only a still arm latches the gate.
    for states, latches in ((moving, False), (closing, False), ([still] * 6, True)):
        arb = gated(**kw)
        assert [arb.step(None, None, 0.5, state=s).escape_latched for s in states][-1] is latches
    # No state, no evidence: the gate does not latch. Option off: the paper's lag test latches
    # on the flat V whatever the arm does.
    blind = gated(**kw)
    assert not any(blind.step(None, None, 0.5).escape_latched for _ in range(6))
    off = gated(W_e=2, use_greedy=False, use_regress=False)
    assert [off.step(None, None, 0.5, state=s).escape_latched for s in moving][-1]
    with pytest.raises(ValueError, match="escape_stall_m"):
        VGMConfig(escape_stall_m=-0.01)


def test_the_control_step_hands_the_robot_state_to_the_escape_gate():
    from resrl.arbiter.safety import SafetyFilter
    from resrl.control import ControlStep
    step = ControlStep(VGMArbiter(VGMConfig(W_e=2, use_greedy=False, use_regress=False, escape_stall_m=0.01)),
                       SafetyFilter(), critic=lambda *_: (FLAT, FLAT, 0.5))
    reports = [step.decide(STATE, {"x": 1}, A_VLA, A_RES).report for _ in range(4)]
    assert reports[-1].escape_latched   # the same state every step: still
