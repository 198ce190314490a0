"""One control step for both runners: the in-process runner's decisions, replayed through the
arbiter node's decide/publish path (the real VGMArbiterNode, its critic runtime loaded from weight
messages, its CommandedAction messages) and the learner's recorder, give the same commands,
lambdas and stored transitions (1e-6), same seed.

The node is driven by direct calls to its decision method (no DDS transport); the transport is
covered by test/ros/test_graph_integration.py."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import rclpy

from resrl.arbiter.safety import SafetyConfig, SafetyFilter
from resrl.arbiter.vgm import VGMArbiter, VGMConfig
from resrl.control import ControlStep
from resrl.models.checkpoint import payload_sha256, serialize_state_dict
from resrl.msg import EpisodeEvent, PolicyWeights
from resrl.node_config import episode_buffers, make_buffers, obs_spec
from resrl.recorder import EpisodeRecorder, Terminal, command
from resrl.sim.inprocess import InProcessConfig, InProcessSession


def test_control_step_composes_filters_and_records_takeovers():
    state = np.array([0.5, 0, 0.2, 0, 0, 0, 0], np.float32)
    a_vla = np.array([0.5, 0, 0.2, 0, 0, 0, 1.0], np.float32)
    a_res = np.array([0.01, 0, 0, 0, 0, 0, 0], np.float32)
    step = ControlStep(VGMArbiter(VGMConfig(mode="static", lambda_static=0.5)),
                       SafetyFilter(SafetyConfig(max_step_translation=0.004)))
    d = step.decide(state, {}, a_vla, a_res)
    np.testing.assert_allclose(d.composed[0], 0.505)
    np.testing.assert_allclose(d.action[0], 0.504)            # clamped by the configured filter
    assert "translation" in " ".join(d.limits_hit) or d.limits_hit
    np.testing.assert_array_equal(d.record.lambda_per_dim, 0.5)
    np.testing.assert_array_equal(d.record.residual, a_res)
    human = a_vla + 0.002
    d = step.decide(state, {}, a_vla, a_res, human)
    assert d.intervention and np.allclose(d.record.residual, 0.002)   # a_human - a_VLA, pre-clamp
    d = step.decide(state, {}, None, a_res)
    assert d.held and d.hold_reason == "no base action"
    np.testing.assert_array_equal(d.action[:6], state[:6])


def test_critic_errors_mean_no_evidence_not_motion():
    def broken(*_):
        raise RuntimeError("boom")
    step = ControlStep(VGMArbiter(VGMConfig()), SafetyFilter(), critic=broken)
    state = np.array([0.5, 0, 0.2, 0, 0, 0, 0], np.float32)
    d = step.decide(state, {"x": 1}, state.copy(), np.full(7, 0.01, np.float32))
    assert "boom" in d.critic_error and not d.report.critic_valid


@pytest.fixture(params=[{}, {"pld_alpha": 1.0}, {"vgm": {"greedy_input": "executed"}}],
                ids=["plain", "pld", "executed-gate"])
def session_trace(request):
    """A short in-process session (demo, warm-up, train, eval) with every control step's inputs;
    "pld": the train episode is a PLD hybrid rollout (vgm_arbiter.pld.alpha 1); "executed-gate": the
    gates judge the residual with its exploration noise (default: the policy's action before it)."""
    cfg = InProcessConfig(mode="vgm", seed=4, **request.param,
                          session={"num_demos": 1, "eval_every": 1, "eval_episodes": 1, "max_env_steps": 101,
                                   "eval_trigger_streak": 100},
                          learner={"batch_size": 16, "warmup_steps": 3, "learning_starts": 16})
    s = InProcessSession(cfg, log=lambda line: None)
    trace, episode = [], {}
    decide = s.control.decide
    reset = s.control.reset

    def traced_reset():
        reset()
        episode["critic"] = copy.deepcopy(s.critic.state_dict())
        episode["steps"] = []
        trace.append(episode.copy())

    def traced_decide(state, obs, a_vla, a_res, human=None, a_res_policy=None, **kw):
        d = decide(state, obs, a_vla, a_res, human, a_res_policy=a_res_policy, **kw)
        trace[-1]["steps"].append(dict(state=state.copy(), obs=copy.deepcopy(obs), a_vla=a_vla.copy(),
                                       a_res=None if a_res is None else a_res.copy(),
                                       a_res_policy=None if a_res_policy is None else a_res_policy.copy(),
                                       human=None if human is None else human.copy(), decision=d))
        return d
    s.control.decide, s.control.reset = traced_decide, traced_reset
    s.run()
    return s, trace


def test_inprocess_decisions_equal_the_arbiter_nodes(session_trace, tmp_path):
    from resrl.nodes.vgm_arbiter_node import VGMArbiterNode
    session, trace = session_trace
    kinds = [r.kind for r in session.plan.records]
    assert kinds[:3] == ["demo", "train", "eval"] and len(trace) == len(kinds)

    from resrl.node_config import sim_graph_yaml
    # As launch starts it: the graph YAML, then the launch overrides.
    overrides = []
    if session.cfg.pld_alpha:   # node-scoped, as launch passes it: the YAML's node section would win over -p
        (tmp_path / "pld.yaml").write_text(f"vgm_arbiter:\n  ros__parameters:\n    pld.alpha: {session.cfg.pld_alpha}\n")
        overrides = ["--params-file", str(tmp_path / "pld.yaml")]
    if session.cfg.vgm.get("greedy_input"):
        overrides += ["-p", f"vgm.greedy_input:={session.cfg.vgm['greedy_input']}"]
    rclpy.init(args=["--ros-args", "--params-file", str(sim_graph_yaml()), "-p", "seed:=4", "-p", "vgm.mode:=vgm",
                     *overrides])
    node = VGMArbiterNode()
    sent = []
    node.command_pub.publish = sent.append
    gates = []
    node.gate_pub.publish = gates.append
    online, offline = make_buffers(obs_spec("object", session.model_cfg), session.graph.learner.replay)
    try:
        assert node.control.vgm.config == session.control.vgm.config
        assert node.control.safety.config == session.control.safety.config
        for version, (episode, record) in enumerate(zip(trace, session.plan.records), start=1):
            payload = serialize_state_dict(_module_from(session, episode["critic"]))
            node._on_weights(PolicyWeights(model="critic", version=version, format="torch_state_dict",
                                           payload=payload, sha256=payload_sha256(payload)))
            assert node.critic.version == version
            # The learner's START event (the arbiter resets; with PLD it draws T_base as the runner did)
            node._on_event(EpisodeEvent(event=EpisodeEvent.START, episode_id=record.index + 1, note=record.kind))
            assert node.control.t_base == record.gate_activity["t_base"]
            sent.clear()
            gates.clear()
            for t, st in enumerate(episode["steps"]):
                residual = None if st["a_res"] is None else (st["a_res"], SimpleNamespace(policy_version=version),
                                                             st["a_res_policy"])
                info = SimpleNamespace(status="ok", chunk_id=1)
                node._decide(t * node.period_ns, t, st["state"], st["obs"], st["a_vla"], info, residual, st["human"])
            assert len(sent) == len(episode["steps"]) == record.steps
            node._on_event(EpisodeEvent(event=EpisodeEvent.SUCCESS if record.success else EpisodeEvent.FAILURE,
                                        episode_id=record.index + 1))
            # The gates judged the same residual (by default the policy's, not the noisy one) on every step.
            np.testing.assert_allclose([g.advantage_mean for g in gates],
                                       [st["decision"].report.advantage_mean for st in episode["steps"]], atol=1e-5)
            for st, msg in zip(episode["steps"], sent):
                d = st["decision"]
                np.testing.assert_allclose(msg.action, d.action, atol=1e-6)
                np.testing.assert_allclose(msg.lambda_per_dim, d.lambda_per_dim, atol=1e-6)
                np.testing.assert_allclose(msg.composed_action, d.composed if d.composed is not None else d.action,
                                           atol=1e-6)
                np.testing.assert_allclose(msg.residual_action, d.residual, atol=1e-6)
                assert msg.intervention == d.intervention and msg.held == d.held
            theirs = session.offline if record.kind == "demo" else session.online
            _record(sent, episode, record, online, offline, node.period_ns, theirs)
        if session.cfg.pld_alpha:
            assert [e.t_base for e in node.control.hybrid.episodes] == \
                [e.t_base for e in session.control.hybrid.episodes] and session.control.hybrid.episodes[0].t_base > 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    # The learner's recorder, fed the node's messages, stores what the in-process runner stored.
    for mine, theirs in ((online, session.online), (offline, session.offline)):
        a, b = list(mine.episodes()), list(theirs.episodes())
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            for field in ("action", "residual", "lambda_", "reward", "done", "truncated", "intervention"):
                np.testing.assert_allclose(getattr(x, field), getattr(y, field), atol=1e-6, err_msg=field)
            for key in x.obs:
                np.testing.assert_allclose(x.obs[key], y.obs[key], atol=1e-6, err_msg=key)


def _module_from(session, state):
    critic = copy.deepcopy(session.critic)
    critic.load_state_dict(state)
    return critic


def _record(sent, episode, record, online, offline, period_ns, theirs):
    """What the learner node does with the commands of one episode (resrl.recorder). The terminal
    observation (no decision is taken on it) comes from the in-process replay's last frame."""
    steps = episode["steps"]
    observations = {t * period_ns: st["obs"] for t, st in enumerate(steps)}
    rec = EpisodeRecorder(record.kind, episode_buffers(record.kind, online, offline),
                          lambda stamp, base: {**observations[stamp], "base_action": base},
                          {"episode_id": record.index, "seed": record.seed}, period_ns=period_ns)
    for t, msg in enumerate(sent):
        rec.add_command(command(msg.step, t * period_ns, msg.action, msg.base_action, msg.residual_action,
                                msg.lambda_per_dim, msg.intervention, msg.composed_action))
        rec.pump(offline)
    if record.kind == "eval":
        assert rec.buffers == []   # nothing stored anywhere: evaluation never enters the replay
        return
    ep = next(e for e in theirs.episodes() if e.meta["episode_id"] == record.index)
    terminal_stamp = len(sent) * period_ns
    observations[terminal_stamp] = {k: v[-1] for k, v in ep.obs.items()}
    rec.set_terminal(Terminal(terminal_stamp, record.success, float(record.success), truncated=bool(ep.truncated[-1])))
    assert rec.pump(offline)
