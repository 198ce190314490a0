"""Session plan, episode recorder, observation assembly and keyboard teleop (ROS-free)."""
import numpy as np
import pytest

from resrl.obs_assembly import ObservationAssembler
from resrl.recorder import Command, EpisodeRecorder, Terminal
from resrl.replay import ReplayBuffer
from resrl.session import EpisodeRecord, SessionConfig, SessionPlan
from resrl.teleop import FAILURE, SUCCESS, KeyboardTeleop, TeleopConfig

SPEC = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
        "object_poses": ((7,), "float32"), "object_conf": ((1,), "float32")}


def _obs(stamp, base):
    return {"state": np.full(7, stamp, np.float32), "base_action": np.asarray(base, np.float32),
            "object_poses": np.full(7, -stamp, np.float32), "object_conf": np.ones(1, np.float32)}


def test_assembler_waits_for_all_parts_and_matches_stamps():
    a = ObservationAssembler(["pose", "img"], max_skew_ns=0)
    a.add("pose", 100, "p100")
    assert a.get(100) is None and a.missing(100) == ["img"]
    a.add("img", 200, "i200")
    assert a.get(100) is None
    a.add("img", 100, "i100")
    assert a.get(100) == {"pose": "p100", "img": "i100"}
    skew = ObservationAssembler(["pose", "img"], max_skew_ns=15)
    skew.add("pose", 100, "p")
    skew.add("img", 110, "near")
    skew.add("img", 130, "far")
    assert skew.get(100)["img"] == "near"
    with pytest.raises(KeyError):
        a.add("depth", 1, None)


def _cmd(step, intervention=False):
    base = np.full(7, 0.1 * step, np.float32)
    residual = np.full(7, 0.01, np.float32)
    action = base + (0.5 if intervention else 1.0) * residual if not intervention else base + 0.2
    return Command(step, step * 100, action.astype(np.float32), base, residual, 1.0, intervention)


def test_recorder_builds_transitions_in_any_arrival_order():
    online = ReplayBuffer(SPEC, 1000)
    available = {}
    rec = EpisodeRecorder("train", [online], lambda stamp, base: available.get(stamp) and _obs(stamp, base))
    for s in (1, 2, 3):
        rec.add_command(_cmd(s))
    rec.set_terminal(Terminal(400, success=True, reward=1.0, truncated=False))
    assert not rec.pump() and len(online) == 0         # no observation yet
    available.update({100: True, 200: True})
    assert not rec.pump() and len(online) == 1         # o_1 -> o_2 stored once o_2 exists
    available.update({300: True, 400: True})
    assert rec.pump() and rec.finished
    ep = next(online.episodes())
    assert ep.success and len(ep.action) == 3
    np.testing.assert_array_equal(ep.reward, [0, 0, 1])
    np.testing.assert_array_equal(ep.obs["state"][:, 0], [100, 200, 300, 400])   # o_1..o_3 + terminal o_4
    assert ep.done[-1] and not ep.done[0]


def test_intervention_target_uses_the_human_intent_before_clamping():
    online = ReplayBuffer(SPEC, 100)
    rec = EpisodeRecorder("demo", [online], lambda stamp, base: _obs(stamp, base))
    cmd = _cmd(1, intervention=True)
    cmd.composed = cmd.base_action + 0.02            # the teleoperator's target
    cmd.action = cmd.base_action + 0.01              # what the safety filter let through
    rec.add_command(cmd)
    rec.set_terminal(Terminal(200, success=True, reward=1.0, truncated=False))
    assert rec.pump()
    ep = next(online.episodes())
    np.testing.assert_allclose(ep.residual[0], np.full(7, 0.02), atol=1e-6)
    np.testing.assert_allclose(ep.action[0], cmd.action, atol=1e-6)   # the critic sees what was executed


def test_intervention_residual_target_and_copy_to_offline():
    online, offline = ReplayBuffer(SPEC, 1000), ReplayBuffer(SPEC, 1000)
    rec = EpisodeRecorder("train", [online], lambda stamp, base: _obs(stamp, base))
    rec.add_command(_cmd(1))
    rec.add_command(_cmd(2, intervention=True))
    rec.set_terminal(Terminal(300, success=False, reward=0.0, truncated=True))
    assert rec.pump(offline)
    ep_on, ep_off = next(online.episodes()), next(offline.episodes())
    np.testing.assert_allclose(ep_on.residual[1], np.full(7, 0.2), atol=1e-6)   # a_human - a_VLA
    np.testing.assert_array_equal(ep_on.intervention, [False, True])
    np.testing.assert_array_equal(ep_on.action, ep_off.action)
    assert ep_on.truncated[-1] and not ep_on.done[-1]


def test_session_plan_demos_warmup_eval_and_finish():
    plan = SessionPlan(SessionConfig(num_demos=2, eval_episodes=2, eval_every=3, eval_trigger_streak=2,
                                     max_env_steps=10_000))
    kinds = []
    for _ in range(2):
        kind, seed = plan.next_episode()
        kinds.append(kind)
        plan.record(EpisodeRecord(len(plan.records), kind, seed, 10, True, 0))
    assert kinds == ["demo", "demo"] and plan.needs_warmup()
    plan.warmup_done = True
    seq = []
    for success in (False, True, True, True, True):
        kind, seed = plan.next_episode()
        seq.append(kind)
        plan.record(EpisodeRecord(len(plan.records), kind, seed, 10, success, 0))
    # two train successes in a row trigger an evaluation block of 2, which succeeds -> done
    assert seq == ["train", "train", "train", "eval", "eval"]
    assert plan.next_episode() is None and "2/2" in plan.finished_reason
    assert plan.eval_results == [(50, 2, 2)]


def test_session_plan_step_budget():
    plan = SessionPlan(SessionConfig(num_demos=0, max_env_steps=25, eval_every=100, eval_trigger_streak=100))
    while (nxt := plan.next_episode()) is not None:
        plan.record(EpisodeRecord(len(plan.records), nxt[0], nxt[1], 10, False, 0))
    assert plan.finished_reason == "step budget" and plan.env_steps == 30


def test_keyboard_teleop_events_and_takeover():
    kb = KeyboardTeleop(TeleopConfig(step_m=0.01))
    assert kb.press("s").start == "train" and kb.press("s").events == []   # a reset starts it
    assert kb.press("y").events == [SUCCESS] and kb.press("n").events == [FAILURE]
    assert "cannot take over" in kb.press("i").message   # no robot state yet
    kb.update_state(np.array([0.5, 0.0, 0.2, 0, 0, 0, 0.0], np.float32))
    assert kb.press("i").intervention_changed and kb.intervening
    kb.press("k")
    kb.press("u")
    kb.press("g")
    np.testing.assert_allclose(kb.teleop_action(), [0.51, 0.0, 0.21, 0, 0, 0, 1.0], atol=1e-6)
    kb.press("i")
    assert kb.teleop_action().size == 0


def test_evaluation_block_stops_at_first_failure():
    plan = SessionPlan(SessionConfig(num_demos=0, eval_episodes=5, eval_every=1, eval_trigger_streak=100))
    outcomes = {"train": True, "eval": False}
    seq = []
    for _ in range(4):
        kind, seed = plan.next_episode()
        seq.append(kind)
        plan.record(EpisodeRecord(len(plan.records), kind, seed, 10, outcomes[kind], 0))
    assert seq == ["train", "eval", "train", "eval"]
    assert plan.eval_results == [(20, 0, 1), (40, 0, 1)]
    full = SessionPlan(SessionConfig(num_demos=0, eval_episodes=3, eval_every=1, stop_eval_on_failure=False))
    for _ in range(4):
        kind, seed = full.next_episode()
        full.record(EpisodeRecord(len(full.records), kind, seed, 10, kind == "train", 0))
    assert full.eval_results == [(40, 0, 3)]


def test_session_keeps_learning_after_the_goal_when_asked():
    def play(stop_at_goal):
        plan = SessionPlan(SessionConfig(num_demos=0, eval_episodes=2, eval_every=1, eval_trigger_streak=100,
                                         max_env_steps=60, stop_at_goal=stop_at_goal))
        while (nxt := plan.next_episode()) is not None:
            plan.record(EpisodeRecord(index=len(plan.records), kind=nxt[0], seed=nxt[1], steps=10,
                                      success=True, env_steps_total=0))
        return plan
    assert play(True).finished_reason == "2/2 evaluation successes" and len(play(True).eval_results) == 1
    kept = play(False)
    assert kept.finished_reason == "step budget" and [r[1:] for r in kept.eval_results] == [(2, 2), (2, 2)]


def test_commands_stamped_before_the_terminal_still_count_when_they_arrive_after_it():
    online = ReplayBuffer(SPEC, 1000)
    rec = EpisodeRecorder("train", [online], lambda stamp, base: _obs(stamp, base))
    rec.add_command(_cmd(1))
    rec.set_terminal(Terminal(300, success=True, reward=1.0, truncated=False))   # event overtook command 2
    rec.add_command(_cmd(2))          # stamped 200 < 300: part of the episode
    rec.add_command(_cmd(3))          # stamped 300: at the terminal observation, not an action
    assert rec.pump()
    ep = next(online.episodes())
    assert len(ep.action) == 2
    np.testing.assert_array_equal(ep.obs["state"][:, 0], [100, 200, 300])


def test_a_command_for_the_terminal_observation_that_beats_the_terminal_event_is_not_stored():
    online = ReplayBuffer(SPEC, 1000)
    rec = EpisodeRecorder("train", [online], lambda stamp, base: _obs(stamp, base))
    for s in (1, 2, 3):                 # command 3 answers o_3 -- which is the terminal observation
        rec.add_command(_cmd(s))
        assert not rec.pump()
    assert len(online) == 1             # o_1 -> o_2 only: o_3 is not known to be non-terminal yet
    rec.set_terminal(Terminal(300, success=False, reward=0.0, truncated=True))
    assert rec.pump()
    ep = next(online.episodes())
    assert len(ep.action) == 2 and ep.truncated[-1]
    np.testing.assert_array_equal(ep.obs["state"][:, 0], [100, 200, 300])


def test_on_a_step_grid_the_terminal_transition_waits_for_the_last_command():
    online = ReplayBuffer(SPEC, 1000)
    rec = EpisodeRecorder("train", [online], lambda stamp, base: _obs(stamp, base), period_ns=100)
    for s in (1, 2):
        rec.add_command(_cmd(s))
    rec.set_terminal(Terminal(400, success=True, reward=1.0, truncated=False))   # overtook command 3
    assert not rec.pump()                  # o_2 -> o_4 would skip a step: wait for command 3
    rec.add_command(_cmd(3))
    assert rec.pump()
    ep = next(online.episodes())
    np.testing.assert_array_equal(ep.obs["state"][:, 0], [100, 200, 300, 400])
    lost = EpisodeRecorder("train", [ReplayBuffer(SPEC, 1000)], lambda stamp, base: _obs(stamp, base), period_ns=100)
    for s in (1, 2):
        lost.add_command(_cmd(s))
    lost.set_terminal(Terminal(400, success=True, reward=1.0, truncated=False))
    assert not lost.pump() and lost.pump(force=True)   # the node gives command 3 up after a while


def test_finish_now_stores_a_labelled_episode_whose_last_command_never_came():
    """A manual session: the operator labels the episode and starts the next one before the
    command of the step before the terminal arrived (lost or late under load). The episode is
    stored with the commands that came, not dropped with its takeover."""
    online, offline = ReplayBuffer(SPEC, 100), ReplayBuffer(SPEC, 100)
    rec = EpisodeRecorder("train", [online], lambda stamp, base: _obs(stamp, base), period_ns=100)
    for s in (1, 2):
        rec.add_command(_cmd(s, intervention=(s == 2)))
    rec.set_terminal(Terminal(400, success=False, reward=0.0, truncated=False))   # step 3's command is missing
    assert not rec.pump(offline) and len(online) == 1                              # it waits for that command
    assert rec.finish_now(offline) and rec.finished
    ep = next(online.episodes())
    assert len(ep.action) == 2 and not ep.success and ep.done[-1]
    np.testing.assert_array_equal(ep.obs["state"][:, 0], [100, 200, 400])
    assert len(offline) == 2                       # the takeover's copy for the demo buffer
    assert not rec.finish_now(offline)             # once only


def test_finish_now_drops_an_episode_without_its_terminal_observation_or_label():
    online = ReplayBuffer(SPEC, 100)
    available = {100: True, 200: True}
    rec = EpisodeRecorder("train", [online], lambda stamp, base: available.get(stamp) and _obs(stamp, base))
    for s in (1, 2):
        rec.add_command(_cmd(s))
    rec.set_terminal(Terminal(300, success=True, reward=1.0, truncated=False))
    assert not rec.finish_now() and rec.finished and len(online) == 0 and not list(online.episodes())
    unlabelled = EpisodeRecorder("train", [online], lambda stamp, base: _obs(stamp, base))
    unlabelled.add_command(_cmd(1))
    assert not unlabelled.finish_now() and unlabelled.finished and not list(online.episodes())


def test_a_key_press_between_two_state_samples_finds_its_terminal_observation_in_a_wider_window():
    """The keyboard stamps a label with its own clock. When the state stream skipped a beat around
    it (load), no part lies within the loop's skew: the episode waits, and once it stops waiting
    the label's observation is looked up in a wider window instead of the episode being dropped."""
    a = ObservationAssembler(["pose", "objects"], max_skew_ns=50)
    for stamp in (100, 200, 500):            # 300 and 400 never came
        a.add("pose", stamp, f"p{stamp}")
        a.add("objects", stamp, f"o{stamp}")
    assert a.get(330) is None and a.missing(330) == ["pose", "objects"]
    assert a.get(330, max_skew_ns=250) == {"pose": "p200", "objects": "o200"}   # the nearest wins
    assert a.missing(330, max_skew_ns=250) == []

    online = ReplayBuffer(SPEC, 100)
    on_clock = {100: True, 200: True}
    rec = EpisodeRecorder("train", [online], lambda stamp, base: on_clock.get(stamp) and _obs(stamp, base))
    for s in (1, 2):
        rec.add_command(_cmd(s))
    rec.set_terminal(Terminal(260, success=True, reward=1.0, truncated=False))   # the key press
    assert not rec.pump()
    assert rec.finish_now(terminal_obs=lambda stamp, base: _obs(280, base))     # the wider lookup's answer
    ep = next(online.episodes())
    assert ep.success and ep.reward[-1] == 1.0
    np.testing.assert_array_equal(ep.obs["state"][:, 0], [100, 200, 280])
