"""VGM arbiter: each gate on constructed critic/value traces, lambda composition, modes, config."""
import dataclasses
import math

import numpy as np
import pytest

from resrl.actions import InvalidActionError
from resrl.arbiter import GateReport, VGMArbiter, VGMConfig, compose

ZERO_Q = np.zeros(2)  # A = 0: the greedy gate stays shut


def only(gate: str, **kw) -> VGMArbiter:
    """Arbiter with a single gate switched on, so lambda shows that gate alone."""
    flags = {f"use_{g}": g == gate for g in ("greedy", "regress", "escape")}
    return VGMArbiter(VGMConfig.paper(**{**flags, **kw}))


def feed(arb: VGMArbiter, values, q_combined=ZERO_Q, q_base=ZERO_Q) -> list[GateReport]:
    return [arb.step(q_combined, q_base, v) for v in values]


# --- greedy gate -------------------------------------------------------------------------------

@pytest.mark.parametrize("adv, expected", [
    ([0.0101, 0.0301], 1.0),   # mean 0.0201, std 0.01 -> LCB 0.0101 > eps 0.01
    ([0.0099, 0.0299], 0.0),   # LCB 0.0099 < eps
    ([-0.05, 0.15], 0.0),      # mean 0.05 well above eps, but ensemble disagreement: LCB -0.05
])
def test_greedy_fires_iff_lcb_above_eps(adv, expected):
    arb = only("greedy", eps_A=0.01, kappa=1.0)
    q_base = np.array([0.3, 0.7])
    r = arb.step(q_base + np.array(adv), q_base, 0.5)
    assert r.advantage_mean == pytest.approx(np.mean(adv))
    assert r.advantage_std == pytest.approx(np.std(adv))
    assert r.advantage_lcb == pytest.approx(np.mean(adv) - np.std(adv))
    assert r.g_greedy == expected
    assert r.lambda_value == expected


def test_greedy_needs_lcb_strictly_above_eps():
    q_base = np.array([0.5, 0.25])  # dyadic values: the advantages are exactly 0.125
    r = only("greedy", eps_A=0.125).step(q_base + 0.125, q_base, 0.5)
    assert r.advantage_lcb == 0.125 and r.g_greedy == 0.0


def test_greedy_kappa_scales_the_std_penalty():
    adv = np.array([0.0, 0.1])  # mean 0.05, std 0.05
    assert only("greedy", kappa=0.5).step(adv, np.zeros(2), 0.5).g_greedy == 1.0   # LCB 0.025
    assert only("greedy", kappa=1.5).step(adv, np.zeros(2), 0.5).g_greedy == 0.0   # LCB -0.025


def test_greedy_value_baseline_compares_the_residual_action_with_v():
    arb = only("greedy", eps_A=0.0, kappa=0.0, greedy_baseline="value")
    q_res, q_base = np.array([0.60, 0.62]), np.array([0.9, 0.9])   # worse than the base action ...
    r = arb.step(q_res, q_base, 0.5)                                # ... but better than V(s) = 0.5
    assert r.advantage_mean == pytest.approx(0.11) and r.g_greedy == 1.0
    assert arb.step(q_res, q_base, 0.7).g_greedy == 0.0
    assert arb.step(q_res, q_base, None).g_greedy == 0.0             # no V: no evidence
    assert only("greedy", eps_A=0.0, kappa=0.0).step(q_res, q_base, 0.5).g_greedy == 0.0   # "base"
    with pytest.raises(ValueError, match="greedy_baseline"):
        VGMConfig.paper(greedy_baseline="median")


def test_greedy_hold_keeps_the_gate_open_for_n_steps_after_it_fired():
    arb = only("greedy", eps_A=0.0, kappa=0.0, greedy_hold_steps=2)
    up, down = np.array([0.6, 0.6]), np.array([0.4, 0.4])
    q_base = np.array([0.5, 0.5])
    gates = [arb.step(q, q_base, 0.5).g_greedy for q in (up, down, down, down, up, down)]
    assert gates == [1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    arb.reset()   # a new episode starts shut
    assert arb.step(down, q_base, 0.5).g_greedy == 0.0
    plain = only("greedy", eps_A=0.0, kappa=0.0)   # default 0: the paper's instantaneous gate
    assert [plain.step(q, q_base, 0.5).g_greedy for q in (up, down)] == [1.0, 0.0]
    with pytest.raises(ValueError, match="greedy_hold_steps"):
        VGMConfig.paper(greedy_hold_steps=-1)


# --- regress gate ------------------------------------------------------------------------------

def test_regress_half_drop_gives_half_and_clips_at_one():
    arb = only("regress", delta_r=0.05, W_r=5)
    r = feed(arb, [0.6, 0.6, 0.575])[-1]
    assert r.value_window_max == pytest.approx(0.6)
    assert r.value_drop == pytest.approx(0.025)
    assert r.g_regress == pytest.approx(0.5)
    assert r.lambda_value == pytest.approx(0.5)
    assert arb.step(ZERO_Q, ZERO_Q, 0.4).g_regress == 1.0   # drop 0.2 = 4 * delta_r -> clipped


def test_regress_is_zero_while_value_rises():
    reports = feed(only("regress"), [0.1, 0.2, 0.3, 0.4])
    assert [r.g_regress for r in reports] == [0.0] * 4
    assert [r.value_drop for r in reports] == [0.0] * 4


def test_regress_window_covers_exactly_w_r_past_steps():
    arb = only("regress", W_r=5, delta_r=0.05)
    reports = feed(arb, [0.9] + [0.5] * 6)
    assert reports[5].value_window_max == pytest.approx(0.9)   # peak at t-5: inside the window
    assert reports[5].g_regress == 1.0
    assert reports[6].value_window_max == pytest.approx(0.5)   # peak at t-6: forgotten
    assert reports[6].g_regress == 0.0


# --- escape gate -------------------------------------------------------------------------------

def test_escape_latches_after_w_e_flat_steps_and_unlatches_on_progress():
    arb = only("escape", W_e=4, eta_e=0.01)
    reports = feed(arb, [0.3] * 5)
    assert [r.g_escape for r in reports] == [0, 0, 0, 0, 1]  # needs V(s_{t-4})
    assert [r.value_progress for r in reports] == [0.0] * 5   # NaN-safe before history exists
    assert reports[-1].escape_latched and reports[-1].lambda_value == 1.0
    # Slow progress (0.004 per W_e steps < eta_e) keeps it latched.
    slow = feed(arb, [0.301, 0.302, 0.303, 0.304])
    assert all(r.g_escape == 1.0 for r in slow)
    assert slow[-1].value_progress == pytest.approx(0.004)
    # Progress above eta_e releases it.
    r = arb.step(ZERO_Q, ZERO_Q, 0.4)
    assert r.value_progress == pytest.approx(0.4 - 0.301)
    assert r.g_escape == 0.0 and not r.escape_latched


def test_escape_progress_exactly_eta_neither_latches_nor_releases():
    arb = only("escape", W_e=2, eta_e=0.25)
    assert not feed(arb, [0.0, 0.125, 0.25])[-1].escape_latched   # progress 0.25 == eta: no stagnation
    arb.reset()
    feed(arb, [0.0, 0.0, 0.0])
    assert arb.step(ZERO_Q, ZERO_Q, 0.25).escape_latched        # progress 0.25 == eta: no release
    assert not arb.step(ZERO_Q, ZERO_Q, 0.5).escape_latched     # 0.5 > eta: released


def test_escape_never_fires_while_value_progresses():
    reports = feed(only("escape", W_e=4, eta_e=0.01), [0.02 * t for t in range(20)])
    assert all(r.g_escape == 0.0 for r in reports)


def test_reset_clears_latch_and_history():
    arb = only("escape", W_e=4)
    assert feed(arb, [0.3] * 5)[-1].escape_latched
    arb.reset()
    reports = feed(arb, [0.3] * 4)   # W_e steps of fresh history are needed again
    assert not any(r.escape_latched for r in reports)
    assert feed(arb, [0.3])[-1].escape_latched


def test_done_step_cannot_latch_and_ends_the_episode():
    arb = VGMArbiter(VGMConfig.paper(W_e=4, W_r=5))
    feed(arb, [0.9] + [0.3] * 3)
    r = arb.step(ZERO_Q, ZERO_Q, 0.3, done=True)       # would be stagnation without done
    assert r.g_escape == 0.0 and not r.escape_latched
    r = arb.step(ZERO_Q, ZERO_Q, 0.3)                  # next episode: history was cleared
    assert r.value_window_max == pytest.approx(0.3) and r.g_regress == 0.0


# --- lambda composition ------------------------------------------------------------------------

def firing_all(arb: VGMArbiter) -> GateReport:
    """Drive all three gates open: flat-then-dropping value, confident positive advantage."""
    cfg = arb.config
    feed(arb, [0.8] * cfg.W_e)
    return arb.step(np.array([1.0, 1.0]), ZERO_Q, 0.7)


def test_lambda_is_clipped_to_lambda_max():
    r = firing_all(VGMArbiter(VGMConfig.paper(lambda_max=0.7)))
    assert (r.g_greedy, r.g_regress, r.g_escape) == (1.0, 1.0, 1.0)
    assert r.lambda_raw == pytest.approx(3.0)
    assert r.lambda_value == pytest.approx(0.7)
    np.testing.assert_allclose(r.lambda_per_dim, 0.7)


def test_negative_weighted_sum_is_clipped_to_zero():
    arb = only("regress", beta=-1.0)
    r = feed(arb, [0.6, 0.5])[-1]
    assert r.g_regress == 1.0 and r.lambda_raw == -1.0 and r.lambda_value == 0.0


def test_weights_scale_each_gate():
    r = firing_all(VGMArbiter(VGMConfig.paper(alpha=0.1, beta=0.2, gamma=0.3)))
    assert r.lambda_value == pytest.approx(0.6)


@pytest.mark.parametrize("gate", ["greedy", "regress", "escape"])
def test_switched_off_gate_contributes_exactly_zero(gate):
    flags = {f"use_{g}": g != gate for g in ("greedy", "regress", "escape")}
    r = firing_all(VGMArbiter(VGMConfig.paper(alpha=0.1, beta=0.2, gamma=0.4, **flags)))
    assert getattr(r, f"g_{gate}") == 0.0
    expected = {"greedy": 0.6, "regress": 0.5, "escape": 0.3}[gate]
    assert r.lambda_value == pytest.approx(expected)


def test_all_gates_off_gives_zero_lambda():
    r = firing_all(VGMArbiter(VGMConfig.paper(use_greedy=False, use_regress=False, use_escape=False)))
    assert r.lambda_value == 0.0 and not r.escape_latched


# --- modes -------------------------------------------------------------------------------------

def test_static_mode_ignores_gates():
    arb = VGMArbiter(VGMConfig.paper(mode="static", lambda_static=0.5))
    assert firing_all(arb).lambda_value == 0.5
    assert arb.step(ZERO_Q, ZERO_Q, 0.8).lambda_value == 0.5   # nothing firing: still static
    assert arb.set_mode("static", lambda_static=0.3) == "static"
    r = arb.step(ZERO_Q, ZERO_Q, 0.8)
    assert r.lambda_value == 0.3 and r.mode == "static"
    np.testing.assert_allclose(r.lambda_per_dim, 0.3)


@pytest.mark.parametrize("mode, expected", [("base_only", 0.0), ("residual_only", 1.0), ("vgm", 0.7)])
def test_fixed_modes_and_vgm(mode, expected):
    arb = VGMArbiter(VGMConfig.paper(lambda_max=0.7))
    arb.set_mode(mode)
    assert firing_all(arb).lambda_value == expected


def test_invalid_mode_lists_the_valid_ones():
    arb = VGMArbiter()
    with pytest.raises(ValueError, match="base_only.*residual_only"):
        arb.set_mode("greedy_only")
    assert arb.mode == "vgm"
    with pytest.raises(ValueError):
        arb.set_mode("static", lambda_static=-0.1)
    with pytest.raises(ValueError, match="valid modes"):
        VGMConfig.paper(mode="bogus")


# --- per-group lambda --------------------------------------------------------------------------

def test_per_group_weights_and_caps_expand_to_seven_dims():
    arb = only("greedy", per_group=True,
               group_weights={"translation": 1.0, "rotation": 0.5, "gripper": 0.0},
               group_lambda_max={"translation": 0.8})  # missing groups default to 1
    r = arb.step(np.array([1.0, 1.0]), ZERO_Q, 0.5)
    np.testing.assert_allclose(r.lambda_per_dim, [0.8, 0.8, 0.8, 0.5, 0.5, 0.5, 0.0])
    assert r.lambda_value == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    a = compose(np.zeros(7), np.ones(7), r)
    np.testing.assert_allclose(a, r.lambda_per_dim)


def test_group_caps_never_exceed_global_lambda_max():
    arb = only("greedy", per_group=True, lambda_max=0.6, group_weights={"translation": 2.0})
    r = arb.step(np.array([1.0, 1.0]), ZERO_Q, 0.5)
    np.testing.assert_allclose(r.lambda_per_dim, 0.6)


def test_unknown_group_name_is_rejected():
    with pytest.raises(ValueError, match="unknown groups"):
        VGMConfig.paper(group_weights={"translaton": 1.0})


def test_scalar_lambda_still_reports_seven_dims():
    r = only("regress").step(ZERO_Q, ZERO_Q, 0.5)
    assert r.lambda_per_dim.shape == (7,)


# --- rate limit --------------------------------------------------------------------------------

def test_rate_limit_ramps_lambda_both_ways():
    arb = only("greedy", max_lambda_rate=0.25)
    up = [arb.step(np.array([1.0, 1.0]), ZERO_Q, 0.5) for _ in range(5)]
    assert [r.lambda_value for r in up] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert [r.rate_limited for r in up] == [True, True, True, False, False]
    down = [arb.step(ZERO_Q, ZERO_Q, 0.5) for _ in range(2)]
    assert [r.lambda_value for r in down] == pytest.approx([0.75, 0.5])


def test_rate_limit_does_not_delay_base_only_and_zero_means_off():
    arb = only("greedy", max_lambda_rate=0.25)
    for _ in range(4):
        arb.step(np.array([1.0, 1.0]), ZERO_Q, 0.5)
    arb.set_mode("base_only")
    assert arb.step(np.array([1.0, 1.0]), ZERO_Q, 0.5).lambda_value == 0.0
    assert only("greedy", max_lambda_rate=0.0).step(np.array([1.0, 1.0]), ZERO_Q, 0.5).lambda_value == 1.0


# --- invalid critic inputs ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.array([np.nan, 1.0]), np.array([np.inf, 1.0]), None])
def test_non_finite_q_means_no_greedy_evidence(bad):
    r = only("greedy").step(bad, ZERO_Q, 0.5)
    assert not r.critic_valid and "Q" in r.critic_issue
    assert r.g_greedy == 0.0 and r.lambda_value == 0.0
    assert r.advantage_mean == 0.0 and r.advantage_lcb == 0.0


def test_non_finite_value_skips_history_and_never_reaches_lambda():
    arb = VGMArbiter(VGMConfig.paper(W_r=5, W_e=4, delta_r=0.05))
    feed(arb, [0.6] * 5)
    assert arb.step(ZERO_Q, ZERO_Q, 0.6).escape_latched
    r = arb.step(np.array([np.nan, 1.0]), ZERO_Q, float("nan"))
    assert not r.critic_valid and "V" in r.critic_issue
    assert (r.g_greedy, r.g_regress, r.g_escape) == (0.0, 0.0, 0.0)
    assert r.escape_latched                         # latch untouched, only no evidence this step
    assert r.value == 0.0 and np.all(np.isfinite(r.lambda_per_dim)) and r.lambda_value == 0.0
    r = arb.step(ZERO_Q, ZERO_Q, 0.575)             # history intact: drop measured from 0.6
    assert r.critic_valid and r.g_regress == pytest.approx(0.5) and r.g_escape == 1.0


def test_ensemble_size_mismatch_is_a_caller_bug():
    with pytest.raises(ValueError, match="ensemble size"):
        VGMArbiter().step(np.zeros(3), np.zeros(2), 0.5)


# --- compose -----------------------------------------------------------------------------------

def test_compose_adds_scaled_residual_and_rejects_bad_inputs():
    r = only("regress").step(ZERO_Q, ZERO_Q, 0.5)
    r = dataclasses.replace(r, lambda_per_dim=np.full(7, 0.5, dtype=np.float32))
    a_vla = np.arange(7, dtype=np.float32)
    np.testing.assert_allclose(compose(a_vla, np.full(7, 2.0), r), a_vla + 1.0)
    np.testing.assert_array_equal(compose(a_vla, None, r), a_vla)
    with pytest.raises(InvalidActionError):
        compose(a_vla, np.full(7, np.nan), r)
    with pytest.raises(InvalidActionError):
        compose(np.zeros(6), np.zeros(7), r)


# --- config ------------------------------------------------------------------------------------

def test_config_rejects_bad_constants():
    for bad in ({"delta_r": 0.0}, {"W_e": 0}, {"W_r": 2.5}, {"lambda_max": -1.0},
                {"max_lambda_rate": -0.1}, {"alpha": math.nan}):
        with pytest.raises(ValueError):
            VGMConfig.paper(**bad)
