"""resrl.algos: losses, targets and learning on toy residual tasks (CPU, seconds each).

The toy networks below follow the model contract (actor(obs) -> xi*tanh residual, zero at init;
critic.q(obs, action) -> (E, B) over the executed action, critic.v(obs) -> (B,)) without
importing resrl.models.

Toy "biased VLA" task: the state is a goal g in [-1, 1]^2, the VLA proposes ``g + BIAS``; the
residual has to learn ``-BIAS``. Each step is independent (a contextual bandit chain), so a task
can be 1-step (terminal) or multi-step (discounted, to exercise bootstrapping).
"""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from resrl.algos import common
from resrl.algos.calql import CalQL, CalQLConfig
from resrl.algos.intervention import DEMO, ONLINE, bc_loss, residual_target, route, transition_fields
from resrl.algos.learner import Learner, LearnerConfig, load_configs, make_agent
from resrl.algos.rlpd import RLPD, RLPDConfig
from resrl.algos.td3 import TD3, TD3Config
from resrl.replay.sampling import concat_batches, sample_mixed

DIM = 2
BIAS = np.array([0.15, -0.10], dtype=np.float32)
XI = 0.3


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny networks run fastest single-threaded (and leave the other core to the neighbours)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------
# toy networks (same interface as resrl.models)
# --------------------------------------------------------------------------------------------
def _mlp(i, h, o, ln=True):
    layers = []
    for w in h:
        layers += [nn.Linear(i, w)] + ([nn.LayerNorm(w)] if ln else []) + [nn.ReLU()]
        i = w
    layers.append(nn.Linear(i, o))
    return nn.Sequential(*layers)


class ToyActor(nn.Module):
    def __init__(self, state_dim=DIM, dim=DIM, hidden=(64, 64), xi=XI):
        super().__init__()
        self.register_buffer("xi", torch.full((dim,), float(xi)))
        self.net = _mlp(state_dim + dim, hidden, dim)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, obs):
        x = torch.cat([obs["state"], obs["base_action"]], dim=-1)
        return self.xi * torch.tanh(self.net(x))


class ToyCritic(nn.Module):
    """Shared trunk over (state, base_action); E LayerNorm Q heads over (trunk, (a - base)/xi)."""

    def __init__(self, state_dim=DIM, dim=DIM, hidden=64, ensemble=2, xi=XI):
        super().__init__()
        self.xi = xi
        self.trunk = nn.Sequential(nn.Linear(state_dim + dim, hidden), nn.LayerNorm(hidden), nn.ReLU())
        self.heads = nn.ModuleList(_mlp(hidden + dim, (hidden, hidden), 1) for _ in range(ensemble))
        self.v_head = _mlp(hidden, (hidden,), 1)

    def _h(self, obs):
        return self.trunk(torch.cat([obs["state"], obs["base_action"]], dim=-1))

    def q(self, obs, action):
        x = torch.cat([self._h(obs), (action - obs["base_action"]) / self.xi], dim=-1)
        return torch.stack([h(x).squeeze(-1) for h in self.heads])

    def v(self, obs):
        return self.v_head(self._h(obs)).squeeze(-1)


class ToyBuffer:
    """Flat numpy transition store with the replay's ``sample(n, rng)`` API."""

    def __init__(self):
        self.data: dict | None = None

    def add(self, batch: dict):
        self.data = batch if self.data is None else concat_batches([self.data, batch])

    def __len__(self):
        return 0 if self.data is None else len(self.data["reward"])

    def sample(self, n, rng):
        idx = rng.integers(0, len(self), size=n)

        def take(d):
            return {k: take(v) if isinstance(v, dict) else v[idx] for k, v in d.items()}
        return take(self.data)


# --------------------------------------------------------------------------------------------
# toy task
# --------------------------------------------------------------------------------------------
def goals(rng, n):
    return rng.uniform(-1, 1, size=(n, DIM)).astype(np.float32)


def obs_of(g, t=None, horizon=None):
    state = g if t is None else np.concatenate([g, (t / horizon)[:, None].astype(np.float32)], axis=1)
    return {"state": state, "base_action": (g + BIAS).astype(np.float32)}


def dense_reward(action, g):
    return (-np.linalg.norm(action - g, axis=-1)).astype(np.float32)


def sparse_reward(action, g, tol=0.05):
    return (np.linalg.norm(action - g, axis=-1) < tol).astype(np.float32)


def bandit_transitions(rng, g, action, reward, intervention=False):
    """1-step terminal transitions (next_obs is an unrelated fresh state)."""
    n = len(g)
    obs = obs_of(g)
    return {"obs": obs, "next_obs": obs_of(goals(rng, n)), "action": action.astype(np.float32),
            "residual": (action - obs["base_action"]).astype(np.float32),
            "lambda": np.ones(n, np.float32), "intervention": np.full(n, intervention),
            "reward": reward, "discount": np.zeros(n, np.float32), "done": np.ones(n, bool),
            "mc_return": reward.copy()}


def demos(rng, n, reward_fn):
    g = goals(rng, n)
    return bandit_transitions(rng, g, g.copy(), reward_fn(g, g), intervention=True)


@torch.no_grad()
def eval_error(actor, rng, n=512):
    g = goals(rng, n)
    obs = common.to_torch(obs_of(g))
    a = (obs["base_action"] + actor(obs)).numpy()
    return float(np.linalg.norm(a - g, axis=-1).mean()), float((np.linalg.norm(a - g, axis=-1) < 0.05).mean())


def run_online(agent, reward_fn, iters, rng, demo_buf=None, envs=8, batch=128, offline_ratio=0.5, utd=1):
    """Collect ``envs`` exploratory 1-step transitions per iteration, then ``utd`` updates."""
    online = ToyBuffer()
    metrics = {}
    for _ in range(iters):
        g = goals(rng, envs)
        obs = common.to_torch(obs_of(g))
        with torch.no_grad():
            res = agent.explore(agent.actor(obs))
        a = (obs["base_action"] + res).numpy()
        online.add(bandit_transitions(rng, g, a, reward_fn(a, g)))
        batches = [sample_mixed(online, demo_buf, batch, offline_ratio, rng=rng) for _ in range(utd)]
        metrics = agent.update(batches)
    return metrics


def critic_target_params(agent):
    return [p.detach().clone() for p in agent.critic_target.parameters()]


def params_of(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def random_batch(rng, n=32, intervention=False):
    g = goals(rng, n)
    a = (g + BIAS + rng.uniform(-XI, XI, size=(n, DIM))).astype(np.float32)
    return bandit_transitions(rng, g, a, dense_reward(a, g), intervention=intervention)


# --------------------------------------------------------------------------------------------
# common
# --------------------------------------------------------------------------------------------
def test_to_torch_dtypes_and_nesting():
    batch = {"obs": {"state": np.zeros((3, 7), np.float64), "image": np.zeros((3, 4, 4, 3), np.uint8)},
             "done": np.array([True, False, True]), "episode": np.arange(3, dtype=np.int32),
             "reward": np.frombuffer(np.ones(3, np.float32).tobytes(), dtype=np.float32)}  # read-only
    t = common.to_torch(batch)
    assert t["obs"]["state"].dtype == torch.float32 and t["obs"]["state"].shape == (3, 7)
    assert t["obs"]["image"].dtype == torch.uint8
    assert t["done"].dtype == torch.bool and t["episode"].dtype == torch.int64
    assert t["reward"].tolist() == [1.0, 1.0, 1.0]


def test_soft_update_is_polyak():
    torch.manual_seed(0)
    src, tgt = nn.Linear(4, 3), nn.Linear(4, 3)
    before = params_of(tgt)
    common.soft_update(tgt, src, 0.1)
    for t_new, t_old, s in zip(tgt.parameters(), before, src.parameters()):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * s)
    common.hard_update(tgt, src)
    assert same(params_of(tgt), params_of(src))


def test_min_over_subset_and_noise_bounds():
    qs = torch.tensor([[1.0, 5.0], [2.0, 0.0], [3.0, 4.0]])
    assert common.min_over_subset(qs, 0).tolist() == [1.0, 0.0]
    g = torch.Generator().manual_seed(0)
    for _ in range(20):  # any 2-subset: the min is one of the pair's values, never below global min
        m = common.min_over_subset(qs, 2, g)
        assert m[0] in (1.0, 2.0) and m[1] in (0.0, 4.0)
    limit = torch.tensor([0.1, 0.5])
    res = torch.tensor([[0.09, -0.4]]).repeat(1000, 1)
    out = common.gaussian_explore(res, 0.3 * limit, 0.2 * limit, limit, g)
    assert (out.abs() <= limit + 1e-7).all()
    assert ((out - res).abs() <= 0.2 * limit + 1e-6).all()
    assert (out - res).std(0).min() > 0.01


def test_drq_random_shift_consistent_across_image_and_depth():
    torch.manual_seed(0)
    b, h, w, pad = 16, 12, 10, 4
    # pixel value encodes its (row, col), so the applied shift can be read back
    rows = torch.arange(h)[:, None].expand(h, w)
    cols = torch.arange(w)[None, :].expand(h, w)
    image = torch.stack([rows, cols, rows * 0], dim=-1).to(torch.uint8)[None].repeat(b, 1, 1, 1)
    depth = (rows * 16 + cols).to(torch.uint8)[None].repeat(b, 1, 1)
    obs = {"image": image, "depth": depth, "state": torch.zeros(b, 7)}
    out = common.random_shift(obs, pad, generator=torch.Generator().manual_seed(1))
    assert out["image"].dtype == torch.uint8 and out["image"].shape == image.shape
    assert out["depth"].shape == depth.shape and out["state"] is obs["state"]
    shifts = set()
    for i in range(b):
        # the centre pixel (no clamping there) tells the shift; depth must show the same one
        r, c = int(out["image"][i, h // 2, w // 2, 0]), int(out["image"][i, h // 2, w // 2, 1])
        dy, dx = r - h // 2, c - w // 2
        assert abs(dy) <= pad and abs(dx) <= pad
        assert int(out["depth"][i, h // 2, w // 2]) == r * 16 + c
        shifts.add((dy, dx))
        # equals replicate-pad + crop
        padded = torch.nn.functional.pad(image[i].permute(2, 0, 1)[None].float(), (pad,) * 4, mode="replicate")
        crop = padded[0, :, pad + dy: pad + dy + h, pad + dx: pad + dx + w].permute(1, 2, 0)
        assert torch.equal(crop.to(torch.uint8), out["image"][i])
    assert len(shifts) > 4  # independent per sample


def test_q_and_v_single_trunk_pass_matches_q_and_v():
    """Critics exposing features/q_from_features/v_from_features (resrl.models.Critic) are
    evaluated with one trunk pass; the numbers must equal the plain q/q_multi/v path."""

    class FeatureCritic(ToyCritic):
        calls = 0

        def features(self, obs):
            FeatureCritic.calls += 1
            return self._h(obs)

        def q_from_features(self, f, action):
            base = self._base
            lead = action.shape[:-1]
            x = torch.cat([f.expand(lead + f.shape[-1:]), (action - base) / self.xi], dim=-1)
            return torch.stack([h(x).squeeze(-1) for h in self.heads])

        def v_from_features(self, f):
            return self.v_head(f).squeeze(-1)

    torch.manual_seed(0)
    critic = FeatureCritic()
    obs = common.to_torch(obs_of(goals(np.random.default_rng(0), 5)))
    critic._base = obs["base_action"]
    action = obs["base_action"] + 0.1
    cand = obs["base_action"] + torch.randn(3, 5, DIM) * 0.1
    q, qc, v = common.q_and_v(critic, obs, action, cand)
    assert FeatureCritic.calls == 1 and q.shape == (2, 5) and qc.shape == (2, 3, 5) and v.shape == (5,)
    plain = ToyCritic()
    plain.load_state_dict(critic.state_dict())
    q2, qc2, v2 = common.q_and_v(plain, obs, action, cand)
    torch.testing.assert_close(q, q2)
    torch.testing.assert_close(qc, qc2)
    torch.testing.assert_close(v, v2)


def test_mc_returns_and_n_step():
    r = np.array([0, 0, 1], np.float32)
    np.testing.assert_allclose(common.mc_returns(r, 0.9), [0.81, 0.9, 1.0], rtol=1e-6)
    rsum, disc, nxt = common.n_step(r, terminal=True, gamma=0.9, n=2)
    np.testing.assert_allclose(rsum, [0.0, 0.9, 1.0], rtol=1e-6)
    np.testing.assert_allclose(disc, [0.81, 0.0, 0.0], rtol=1e-6)
    assert nxt.tolist() == [2, 3, 3]


# --------------------------------------------------------------------------------------------
# targets, delays, warm-up
# --------------------------------------------------------------------------------------------
def test_td3_target_is_clipped_double_q_over_first_two_heads():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = TD3(ToyActor(), ToyCritic(ensemble=3), TD3Config(target_noise=0.0), seed=0)
    for p in agent.critic_target.heads[2].parameters():  # a third head far below: must be ignored
        p.data.zero_()
    agent.critic_target.heads[2][-1].bias.data.fill_(-100.0)
    batch = common.to_torch(random_batch(rng))
    batch["discount"] = torch.full_like(batch["reward"], 0.9)
    with torch.no_grad():
        nxt = batch["next_obs"]
        q_next = agent.critic_target.q(nxt, nxt["base_action"] + agent.actor_target(nxt))
        expected = batch["reward"] + 0.9 * q_next[:2].min(0).values
    m = agent.update_critic(batch, prepared=True)
    assert m["q_target_mean"] == pytest.approx(expected.mean().item(), abs=1e-5)


def test_rlpd_target_uses_target_critic_and_discount():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = RLPD(ToyActor(), ToyCritic(ensemble=2), RLPDConfig(target_noise=0.0, target_subset=2), seed=0)
    for p in agent.critic.parameters():  # online critic differs from the target
        p.data.add_(0.5)
    batch = common.to_torch(random_batch(rng))
    batch["discount"] = torch.full_like(batch["reward"], 0.5)
    with torch.no_grad():
        nxt = batch["next_obs"]
        q_next = agent.critic_target.q(nxt, nxt["base_action"] + agent.actor(nxt)).min(0).values
        expected = (batch["reward"] + 0.5 * q_next).mean().item()
    assert agent.update_critic(batch, prepared=True)["q_target_mean"] == pytest.approx(expected, abs=1e-5)


def test_td3_delayed_actor_and_polyak_targets():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tau = 0.2
    agent = TD3(ToyActor(), ToyCritic(), TD3Config(policy_delay=3, tau=tau), seed=0)
    for step in range(1, 10):
        actor_before, actor_tgt_before = params_of(agent.actor), params_of(agent.actor_target)
        critic_tgt_before = critic_target_params(agent)
        agent.update([random_batch(rng)])
        online_critic = params_of(agent.critic)
        if step % 3 == 0:
            assert not same(params_of(agent.actor), actor_before), step
            for new, old, src in zip(agent.critic_target.parameters(), critic_tgt_before, online_critic):
                torch.testing.assert_close(new, (1 - tau) * old + tau * src)
            for new, old, src in zip(agent.actor_target.parameters(), actor_tgt_before, agent.actor.parameters()):
                torch.testing.assert_close(new, (1 - tau) * old + tau * src)
        else:
            assert same(params_of(agent.actor), actor_before), step
            assert same(params_of(agent.actor_target), actor_tgt_before), step
            assert same(critic_target_params(agent), critic_tgt_before), step
    assert agent.critic_updates == 9 and agent.actor_updates == 3


def test_rlpd_utd_and_critic_warmup():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tau = 0.1
    agent = RLPD(ToyActor(), ToyCritic(), RLPDConfig(critic_warmup_steps=6, tau=tau), seed=0)
    actor0 = params_of(agent.actor)
    for _ in range(2):  # 2 env steps x UTD 3 = 6 critic-only updates
        tgt_before = critic_target_params(agent)
        m = agent.update([random_batch(rng) for _ in range(3)])
        assert "actor_loss" not in m and "critic_loss" in m
        assert not same(critic_target_params(agent), tgt_before)  # polyak after every critic step
    assert agent.critic_updates == 6 and agent.actor_updates == 0 and same(params_of(agent.actor), actor0)
    tgt_before = critic_target_params(agent)
    batch = random_batch(rng)
    m = agent.update([batch])
    assert "actor_loss" in m and agent.critic_updates == 7 and agent.actor_updates == 1
    assert not same(params_of(agent.actor), actor0)
    for new, old, src in zip(agent.critic_target.parameters(), tgt_before, agent.critic.parameters()):
        torch.testing.assert_close(new, (1 - tau) * old + tau * src)


# --------------------------------------------------------------------------------------------
# learning on the toy task
# --------------------------------------------------------------------------------------------
FAST = dict(bc_weight=0.0, explore_std=0.3, critic_lr=1e-3, actor_lr=3e-4)


def test_td3_learns_residual_dense_with_bootstrapping():
    """Continuing bandit chain (discount 0.5, reward 1 - 2|a - g|): the residual must cancel the
    VLA bias and Q(s, pi(s)) must reach the discounted value r(pi) / (1 - gamma) ~ 2 -- a critic
    without the bootstrapped target would sit at ~1."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = TD3(ToyActor(), ToyCritic(), TD3Config(tau=0.05, target_noise=0.0, **FAST), seed=0)

    def reward(a, g):
        return (1 - 2 * np.linalg.norm(a - g, axis=-1)).astype(np.float32)

    online = ToyBuffer()
    for _ in range(250):
        g = goals(rng, 8)
        obs = common.to_torch(obs_of(g))
        with torch.no_grad():
            a = (obs["base_action"] + agent.explore(agent.actor(obs))).numpy()
        tr = bandit_transitions(rng, g, a, reward(a, g))
        tr["discount"][:], tr["done"][:] = 0.5, False
        online.add(tr)
        agent.update([online.sample(128, rng) for _ in range(2)])
    err, success = eval_error(agent.actor, rng)
    assert err < 0.03 and success > 0.9, (err, success)  # base alone: |BIAS| = 0.18
    g = goals(rng, 512)
    obs = common.to_torch(obs_of(g))
    with torch.no_grad():
        a = obs["base_action"] + agent.actor(obs)
        q_pi = agent.critic.q(obs, a).mean().item()
    v_pi = reward(a.numpy(), g).mean() / (1 - 0.5)
    assert abs(q_pi - v_pi) < 0.3, (q_pi, v_pi)


def test_rlpd_learns_residual_sparse_reward_with_demos():
    """Sparse success reward (|a - g| < 0.05), never reached by the biased VLA plus exploration;
    200 demo transitions (human action = goal) in the offline half of each batch. No BC: the
    critic alone must lead the actor to -BIAS."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = RLPD(ToyActor(), ToyCritic(), RLPDConfig(**FAST), seed=0)
    demo_buf = ToyBuffer()
    demo_buf.add(demos(rng, 200, sparse_reward))
    err0, success0 = eval_error(agent.actor, rng)
    assert success0 == 0.0
    run_online(agent, sparse_reward, 200, rng, demo_buf=demo_buf, utd=2)
    err, success = eval_error(agent.actor, rng)
    assert success > 0.9 and err < 0.03, (err, success)


def uniform_behaviour_dataset(rng, n):
    """Offline data from a poor behaviour policy: residuals uniform over the whole [-xi, xi]^2."""
    g = goals(rng, n)
    a = (g + BIAS + rng.uniform(-XI, XI, size=(n, DIM))).astype(np.float32)
    return bandit_transitions(rng, g, a, (1 - 2 * np.linalg.norm(a - g, axis=-1)).astype(np.float32))


def _offline_q_gap(use_calibration, seed=0, steps=400):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = uniform_behaviour_dataset(rng, 1000)
    buf = ToyBuffer()
    buf.add(data)
    cfg = CalQLConfig(use_calibration=use_calibration, cql_alpha=2.0, bc_weight=0.0, critic_lr=1e-3,
                      actor_lr=3e-4)
    agent = CalQL(ToyActor(), ToyCritic(), cfg, seed=seed)
    for _ in range(steps):
        m = agent.update([buf.sample(64, rng)])
    assert np.isfinite(list(m.values())).all()
    t = common.to_torch(data)
    with torch.no_grad():
        o = t["obs"]
        q_pi = agent.critic.q(o, o["base_action"] + agent.actor(o)).min(0).values
    gap = q_pi - t["mc_return"]
    return gap.mean().item(), (gap > -0.05).float().mean().item()


def test_calql_policy_values_respect_mc_lower_bound_where_cql_does_not():
    cal_gap, cal_frac = _offline_q_gap(True)
    cql_gap, cql_frac = _offline_q_gap(False)
    # Cal-QL: Q(s, pi(s)) sits on/above the data's Monte-Carlo return (rewards span ~[0.2, 1];
    # seeds 0-2 give mean gaps -0.02 .. -0.05 with about half the states at or above the bound)
    assert cal_gap > -0.1 and cal_frac > 0.4, (cal_gap, cal_frac)
    # plain CQL (same code, calibration off) pushes the policy's values far below it (~ -1.2 .. -1.6)
    assert cql_gap < -0.5 and cql_frac < 0.15, (cql_gap, cql_frac)
    assert cal_gap - cql_gap > 0.5


def test_calql_warmup_on_successful_demos_keeps_values_in_return_scale():
    """VGM warm-up: 20 successful 10-step demos, 0/1 success reward at the end, gamma 0.99. With the
    default (consistent) policy/target noise, Q(s, a_data) and V(s) stay near the MC return (~0.96)
    -- the arbiter reads V in [0, 1]. (Backing up the noiseless peak instead inflates them to ~1.5.)"""
    horizon, gamma = 10, 0.99
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(20):
        g = goals(rng, horizon + 1)
        o = obs_of(g, np.arange(horizon + 1, dtype=np.float32), horizon)
        r = np.zeros(horizon, np.float32)
        r[-1] = 1.0
        disc = np.full(horizon, gamma, np.float32)
        disc[-1] = 0.0
        parts.append({"obs": {k: v[:horizon] for k, v in o.items()}, "next_obs": {k: v[1:] for k, v in o.items()},
                      "action": g[:horizon].copy(), "residual": g[:horizon] - o["base_action"][:horizon],
                      "lambda": np.ones(horizon, np.float32), "intervention": np.ones(horizon, bool), "reward": r,
                      "discount": disc, "done": disc == 0, "mc_return": common.mc_returns(r, gamma)})
    data = concat_batches(parts)
    buf = ToyBuffer()
    buf.add(data)
    agent = CalQL(ToyActor(DIM + 1), ToyCritic(DIM + 1), CalQLConfig(), seed=0)
    for _ in range(800):
        agent.update([buf.sample(64, rng)])
    t = common.to_torch(data)
    with torch.no_grad():
        q_data = agent.critic.q(t["obs"], t["action"]).mean(0)
        v = agent.critic.v(t["obs"])
    mc = t["mc_return"].mean().item()
    assert abs(q_data.mean().item() - mc) < 0.3 and abs(v.mean().item() - mc) < 0.3, (q_data.mean(), v.mean(), mc)
    err, _ = eval_error(lambda obs: agent.actor({**obs, "state": torch.cat([obs["state"], obs["state"][:, :1] * 0], 1)}),
                        rng)
    assert err < 0.03, err  # BC + Q on the demos: the residual already cancels most of the bias


class ConstCritic(nn.Module):
    """Q_e(s, a) = c_e for every state and action; V = 0."""

    def __init__(self, values):
        super().__init__()
        self.c = nn.Parameter(torch.tensor(values))

    def q(self, obs, action):
        return self.c[:, None].expand(len(self.c), action.shape[0]) + 0 * action.sum(-1)

    def v(self, obs):
        return obs["state"][:, 0] * 0


@pytest.mark.parametrize("use_calibration", [True, False])
def test_calql_regulariser_closed_form(use_calibration):
    """With Q_e == c_e the CQL term is alpha * sum_e mean_B [T log(n_r e^{c/T} + n_p e^{q_p/T} + e^{c/T}) - c],
    q_p = max(c, mc_return) with calibration, c without."""
    rng = np.random.default_rng(0)
    batch = common.to_torch(random_batch(rng, 6))
    batch["mc_return"] = torch.tensor([-5.0, 0.0, 0.5, 1.0, 2.0, 9.0])
    cfg = CalQLConfig(use_calibration=use_calibration, cql_alpha=3.0, cql_temp=0.5, num_random=3, num_policy=2,
                      v_weight=0.0)
    c = [0.7, 1.5]
    agent = CalQL(ToyActor(), ConstCritic(c), cfg, seed=0)
    m = agent.update_critic(batch, prepared=True)
    expected = 0.0
    for ce in c:
        ce = torch.tensor(ce)
        qp = torch.maximum(ce, batch["mc_return"]) if use_calibration else ce.expand(6)
        lse = 0.5 * torch.log(3 * torch.exp(ce / 0.5) + 2 * torch.exp(qp / 0.5) + torch.exp(ce / 0.5))
        expected += 3.0 * (lse - ce).mean().item()
    assert m["cql_loss"] == pytest.approx(expected, rel=1e-5)
    # calibrated_frac reports the share of policy samples whose Q fell below the MC bound
    below = sum((torch.tensor(ce) < batch["mc_return"]).float().mean().item() for ce in c) / 2
    assert m["calibrated_frac"] == pytest.approx(below)


def test_calql_metrics_and_images_shapes():
    """One Cal-QL update on image observations (uint8, DrQ) runs and reports calibration stats."""

    class ImgCritic(ToyCritic):
        def _h(self, obs):
            feat = obs["image"].float().mean(dim=(1, 2)) / 255 + obs["depth"].float().mean(dim=(1, 2))[:, None] / 255
            return self.trunk(torch.cat([obs["state"], obs["base_action"] - feat[:, :DIM]], dim=-1))

    rng = np.random.default_rng(0)
    batch = random_batch(rng, 8)
    for key in ("obs", "next_obs"):
        batch[key]["image"] = rng.integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
        batch[key]["depth"] = rng.integers(0, 255, (8, 16, 16), dtype=np.uint8)
    agent = CalQL(ToyActor(), ImgCritic(), CalQLConfig(), seed=0)
    m = agent.update(batch)
    for k in ("critic_loss", "td_loss", "cql_loss", "calibrated_frac", "v_loss", "actor_loss", "bc_loss"):
        assert k in m and np.isfinite(m[k]), k
    assert 0.0 <= m["calibrated_frac"] <= 1.0


# --------------------------------------------------------------------------------------------
# interventions
# --------------------------------------------------------------------------------------------
def test_intervention_fields_and_routing():
    a_vla = np.arange(7, dtype=np.float32) * 0.1
    a_human = a_vla + np.array([0.02, -0.01, 0, 0, 0, 0.05, 1.0], np.float32)
    np.testing.assert_allclose(residual_target(a_human, a_vla), a_human - a_vla)
    f = transition_fields(a_vla, a_res=np.zeros(7), lam=0.3, a_human=a_human)
    assert f["intervention"] is True and f["lambda"] == 1.0
    np.testing.assert_allclose(f["action"], a_human)
    np.testing.assert_allclose(f["residual"], a_human - a_vla, atol=1e-7)
    np.testing.assert_allclose(f["action"], a_vla + f["lambda"] * f["residual"], atol=1e-6)
    a_res = np.full(7, 0.01, np.float32)
    f = transition_fields(a_vla, a_res=a_res, lam=0.5)
    assert f["intervention"] is False
    np.testing.assert_allclose(f["action"], a_vla + 0.5 * a_res, atol=1e-7)
    np.testing.assert_allclose(f["residual"], a_res)
    assert route(True) == (ONLINE, DEMO) and route(False) == (ONLINE,)
    with pytest.raises(ValueError):
        transition_fields(a_vla, a_res=np.zeros(6), lam=1.0)


def test_bc_loss_masks_and_pulls_actor_to_human_residual():
    torch.manual_seed(0)
    pred = torch.zeros(4, 2, requires_grad=True)
    target = torch.tensor([[0.1, 0.1], [0.2, 0.0], [9.0, 9.0], [9.0, 9.0]])
    mask = torch.tensor([True, True, False, False])
    loss = bc_loss(pred, target, mask)
    assert loss.item() == pytest.approx(((0.01 + 0.01) / 2 + (0.04 + 0) / 2) / 2)
    loss.backward()
    assert pred.grad[2:].abs().sum() == 0  # non-intervention samples get no BC gradient
    assert bc_loss(pred, target, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    # clamped into the actor's reachable range
    assert bc_loss(torch.full((1, 2), 0.3), torch.full((1, 2), 5.0), torch.ones(1), torch.tensor(0.3)).item() == 0.0

    class FlatCritic(ToyCritic):  # Q independent of the action: only BC moves the actor
        def q(self, obs, action):
            return super().q(obs, action.detach())

    rng = np.random.default_rng(0)
    for cls, cfg in ((RLPD, RLPDConfig(bc_weight=1.0, actor_lr=3e-3)), (TD3, TD3Config(bc_weight=1.0, actor_lr=3e-3)),
                     (CalQL, CalQLConfig(bc_weight=1.0, actor_lr=3e-3))):
        agent = cls(ToyActor(), FlatCritic(), cfg, seed=0)
        g = goals(rng, 64)
        human = bandit_transitions(rng, g, g.copy(), np.ones(64, np.float32), intervention=True)
        batch = common.to_torch(human)
        for _ in range(150):
            agent.update_actor(batch, prepared=True)
        with torch.no_grad():
            res = agent.actor(batch["obs"])
        torch.testing.assert_close(res.mean(0), torch.as_tensor(-BIAS), atol=0.02, rtol=0), cls.__name__


# --------------------------------------------------------------------------------------------
# learner facade + config
# --------------------------------------------------------------------------------------------
def test_learner_warmup_train_step_versions_and_checkpoint(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    cfg = LearnerConfig(algo="td3", batch_size=32, offline_ratio=0.5, warmup_steps=5, learning_starts=10,
                        publish_every=2, seed=0)
    learner = Learner(ToyActor(), ToyCritic(), cfg, algo_configs={"td3": TD3Config(policy_delay=2, utd=1)})
    demo_buf, online = ToyBuffer(), ToyBuffer()
    assert learner.warmup(demo_buf) == {}  # nothing to learn from
    demo_buf.add(demos(rng, 50, sparse_reward))
    actor0 = params_of(learner.actor)
    m = learner.warmup(demo_buf)
    assert m["warmup_steps"] == 5 and learner.policy_version == 1 and learner.num_warmup_updates == 5
    assert learner.warmup_agent is not learner.agent and learner.warmup_agent.actor is learner.actor
    assert not same(params_of(learner.actor), actor0)
    # targets of the online agent start from the warmed-up networks
    assert same(params_of(learner.agent.critic_target), params_of(learner.critic))
    assert same(params_of(learner.agent.actor_target), params_of(learner.actor))

    tiny = ToyBuffer()
    tiny.add(random_batch(rng, 2))
    small_learner = Learner(ToyActor(), ToyCritic(), LearnerConfig(learning_starts=100))
    assert small_learner.train_step(tiny, None) == {}

    online.add(random_batch(rng, 40))
    versions = []
    for _ in range(8):
        m = learner.train_step(online, demo_buf)
        versions.append(learner.policy_version)
    assert learner.num_updates == 8 and learner.agent.actor_updates == 4  # delay 2
    assert versions == [1, 1, 1, 2, 2, 2, 2, 3]  # +1 every 2 actor updates
    assert m["num_updates"] == 8.0 and "critic_loss" in m
    weights = learner.actor_state_dict()
    assert all(v.device.type == "cpu" for v in weights.values())

    path = tmp_path / "ckpt.pt"
    torch.save(learner.state_dict(), path)
    other = Learner(ToyActor(), ToyCritic(), cfg, algo_configs={"td3": TD3Config(policy_delay=2, utd=1)})
    other.load_state_dict(torch.load(path, weights_only=False))
    assert other.policy_version == 3 and other.num_updates == 8
    assert same(params_of(other.actor), params_of(learner.actor))
    assert same(params_of(other.agent.actor_target), params_of(learner.agent.actor_target))


def test_learner_mixed_sampling_ratio_and_utd():
    rng = np.random.default_rng(0)
    online, offline = ToyBuffer(), ToyBuffer()
    online.add(random_batch(rng, 50, intervention=False))
    offline.add(random_batch(rng, 50, intervention=True))
    b = sample_mixed(online, offline, 40, 0.25, rng=rng)
    assert b["intervention"].sum() == 10 and b["obs"]["state"].shape == (40, DIM)
    assert sample_mixed(ToyBuffer(), offline, 8, 0.25, rng=rng)["intervention"].all()
    calls = []

    def sampler(on, off, n, ratio):
        calls.append((n, ratio))
        return sample_mixed(on, off, n, ratio, rng=rng)

    learner = Learner(ToyActor(), ToyCritic(), LearnerConfig(algo="rlpd", batch_size=16, offline_ratio=0.5,
                                                             learning_starts=0),
                      algo_configs={"rlpd": RLPDConfig(utd=3)}, sampler=sampler)
    learner.train_step(online, offline)
    assert calls == [(16, 0.5)] * 3 and learner.agent.critic_updates == 3 and learner.agent.actor_updates == 1
    assert learner.policy_version == 1


def test_config_yaml_matches_defaults_and_rejects_typos(tmp_path):
    import dataclasses
    from pathlib import Path

    from resrl.algos.learner import ALGORITHMS
    from resrl.configs import ConfigError

    path = Path(__file__).resolve().parents[2] / "config" / "learner.yaml"
    learner_cfg, algo_cfgs = load_configs(path)
    assert learner_cfg == LearnerConfig()
    for name, (_, cfg_cls) in ALGORITHMS.items():
        assert dataclasses.asdict(algo_cfgs[name]) == dataclasses.asdict(cfg_cls()), name
    bad = tmp_path / "bad.yaml"
    bad.write_text("rlpd:\n  utdd: 3\n")
    with pytest.raises(ConfigError):
        load_configs(bad)
    bad.write_text("learner:\n  algo: sac\n")
    with pytest.raises(ConfigError):
        load_configs(bad)
    with pytest.raises(ValueError):
        make_agent("ppo", ToyActor(), ToyCritic())


def test_return_bounds_clamp_the_td_target():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    batch = common.to_torch(random_batch(rng))
    batch["discount"] = torch.full_like(batch["reward"], 0.9)
    targets = {}
    for bounds in (None, (0.0, 1.0)):
        agent = RLPD(ToyActor(), ToyCritic(ensemble=2), RLPDConfig(target_noise=0.0, return_bounds=bounds), seed=0)
        for p in agent.critic_target.parameters():   # an overestimating target critic: Q >> 1
            p.data.add_(3.0)
        targets[bounds] = agent.update_critic(batch, prepared=True)["q_target_mean"]
    assert targets[None] > 1.5
    assert 0.0 <= targets[(0.0, 1.0)] <= 1.0


def test_calql_gated_target_scales_the_next_residual_by_the_logged_lambda():
    torch.manual_seed(0)
    batch = common.to_torch(random_batch(np.random.default_rng(0)))
    batch["discount"] = torch.full_like(batch["reward"], 0.9)
    cfg = dict(target_noise=0.0, target_subset=0, augment_pad=0)
    actor = ToyActor()
    nn.init.normal_(actor.net[-1].weight, std=1.0)   # a residual far from zero

    def target(gated, next_lambda):
        agent = CalQL(actor, ToyCritic(), CalQLConfig(gated_target=gated, **cfg), seed=0)
        torch.manual_seed(1)
        for p in agent.critic_target.parameters():
            p.data.normal_()
        b = {**batch, "next_lambda": torch.full_like(batch["reward"], next_lambda)}
        with torch.no_grad():
            res = actor(b["next_obs"])
            expect = {lam: (b["reward"] + 0.9 * agent.critic_target.q(
                b["next_obs"], b["next_obs"]["base_action"] + lam * res).min(0).values).mean()
                for lam in (0.0, 1.0)}
        return agent.critic_loss(b)[1]["q_target_mean"], expect

    got, expect = target(True, 0.0)      # lambda' = 0: the next step is the base action alone
    assert float(got) == pytest.approx(float(expect[0.0]), abs=1e-5)
    assert float(expect[0.0]) != pytest.approx(float(expect[1.0]), abs=1e-3)
    got, expect = target(False, 0.0)     # off: the full residual, whatever the arbiter did
    assert float(got) == pytest.approx(float(expect[1.0]), abs=1e-5)


def test_calql_self_imitation_pulls_toward_executed_corrections_of_successes_only():
    batch = common.to_torch(random_batch(np.random.default_rng(0)))
    n = len(batch["reward"])
    executed = batch["action"] - batch["obs"]["base_action"]
    agent = CalQL(ToyActor(), ToyCritic(), CalQLConfig(success_bc_weight=1.0, augment_pad=0), seed=0)
    with torch.no_grad():
        res = agent.actor(batch["obs"])
    expected = (((res - executed.clamp(-XI, XI)) / XI).pow(2).mean(-1)).mean()
    won = {**batch, "mc_return": torch.full((n,), 0.9), "intervention": torch.zeros(n, dtype=torch.bool)}
    assert float(agent.actor_loss(won)[1]["self_bc_loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    lost = {**won, "mc_return": torch.zeros(n)}                       # failed episodes: no pull
    assert float(agent.actor_loss(lost)[1]["self_bc_loss"].detach()) == 0.0
    human = {**won, "intervention": torch.ones(n, dtype=torch.bool)}  # takeovers have their own BC
    assert float(agent.actor_loss(human)[1]["self_bc_loss"].detach()) == 0.0
    off = CalQL(ToyActor(), ToyCritic(), CalQLConfig(augment_pad=0), seed=0)   # default: off
    assert float(off.actor_loss(won)[1]["self_bc_loss"]) == 0.0


def test_learner_deploys_a_polyak_average_of_the_actor():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    demo_buf, online = ToyBuffer(), ToyBuffer()
    demo_buf.add(demos(rng, 50, sparse_reward))
    online.add(random_batch(rng, 40))
    cfg = LearnerConfig(algo="rlpd", batch_size=16, warmup_steps=3, learning_starts=0, policy_ema=0.1, seed=0)
    learner = Learner(ToyActor(), ToyCritic(), cfg, algo_configs={"rlpd": RLPDConfig(utd=1)})
    assert learner.deployed_actor is not learner.actor
    learner.warmup(demo_buf)
    assert same(params_of(learner.deployed_actor), params_of(learner.actor))   # starts at the warm-up policy
    before = params_of(learner.deployed_actor)
    learner.train_step(online, demo_buf)
    after, actor = params_of(learner.deployed_actor), params_of(learner.actor)
    for b, a, x in zip(before, after, actor):   # one update: ema = 0.9 * old + 0.1 * actor
        torch.testing.assert_close(a, 0.9 * b + 0.1 * x)
    assert not same(after, actor)
    published = learner.actor_state_dict()
    assert all(torch.equal(published[k], v) for k, v in learner.deployed_actor.state_dict().items())
    plain = Learner(ToyActor(), ToyCritic(), LearnerConfig(policy_ema=0.0))
    assert plain.deployed_actor is plain.actor
    with pytest.raises(Exception):
        LearnerConfig(policy_ema=1.0)


# --------------------------------------------------------------------------------------------
# one TD-target helper, one base config: the refactor changed no number
# --------------------------------------------------------------------------------------------
def _smoothed_next_residual(agent, actor, next_obs):
    """The smoothing each algorithm wrote inline before ``AgentBase.td_target`` existed."""
    cfg = agent.cfg
    next_res = actor(next_obs)
    return common.clamp_residual(
        next_res + common.clipped_noise(next_res, agent.rel(cfg.target_noise), agent.rel(cfg.target_noise_clip),
                                        agent.generator), agent.limit)


@torch.no_grad()
def _old_calql_target(agent, b):
    cfg, next_obs = agent.cfg, b["next_obs"]
    next_res = _smoothed_next_residual(agent, agent.actor, next_obs)
    if cfg.gated_target and "next_lambda" in b:
        next_res = b["next_lambda"][:, None] * next_res
    next_q = common.min_over_subset(agent.critic_target.q(next_obs, next_obs["base_action"] + next_res),
                                    cfg.target_subset, agent.generator)
    return common.bound_returns(b["reward"] + b["discount"] * next_q, cfg.return_bounds)


@torch.no_grad()
def _old_rlpd_target(agent, b):
    cfg, next_obs = agent.cfg, b["next_obs"]
    next_res = _smoothed_next_residual(agent, agent.actor, next_obs)
    next_q = agent.critic_target.q(next_obs, next_obs["base_action"] + next_res)
    next_q = common.min_over_subset(next_q, cfg.target_subset, agent.generator)
    return common.bound_returns(b["reward"] + b["discount"] * next_q, cfg.return_bounds)


@torch.no_grad()
def _old_td3_target(agent, b):
    cfg, next_obs = agent.cfg, b["next_obs"]
    next_res = _smoothed_next_residual(agent, agent.actor_target, next_obs)
    next_q = agent.critic_target.q(next_obs, next_obs["base_action"] + next_res)
    if cfg.twin_heads > 0:
        next_q = next_q[: cfg.twin_heads]
    return common.bound_returns(b["reward"] + b["discount"] * next_q.min(dim=0).values, cfg.return_bounds)


def _bootstrapping_batch(rng, n=64, per_dim_lambda=False):
    b = random_batch(rng, n)
    b["discount"][:] = 0.9
    b["done"][:] = False
    b["next_lambda"] = rng.uniform(0, 1, size=(n, DIM) if per_dim_lambda else n).astype(np.float32)
    return common.to_torch(b)


def _randomise(*modules):
    """Non-zero residuals and distinct online / target networks (zero-init heads hide errors)."""
    for m in modules:
        for p in m.parameters():
            p.data.normal_(0.0, 0.5)


@pytest.mark.parametrize("name, cfg, old_target", [
    ("calql", CalQLConfig(), _old_calql_target),
    ("calql", CalQLConfig(gated_target=False, target_subset=0, return_bounds=(0.0, 0.5)), _old_calql_target),
    ("rlpd", RLPDConfig(), _old_rlpd_target),
    ("rlpd", RLPDConfig(target_subset=0, target_noise=0.5, target_noise_clip=0.1), _old_rlpd_target),
    ("td3", TD3Config(), _old_td3_target),
    ("td3", TD3Config(twin_heads=0, return_bounds=(-0.5, 0.0)), _old_td3_target),
])
def test_td_target_equals_the_pre_refactor_formula(name, cfg, old_target):
    """Each algorithm's critic_loss goes through ``AgentBase.td_target``; the target it uses is
    bit-identical to the one the algorithm computed inline before (same generator draws)."""
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    agent = make_agent(name, ToyActor(), ToyCritic(ensemble=4), cfg, seed=3)
    _randomise(agent.actor, agent.critic_target)
    if agent.actor_target is not None:
        _randomise(agent.actor_target)
    b = _bootstrapping_batch(rng)
    used = []

    def spy(*args, **kwargs):
        used.append(type(agent).td_target(agent, *args, **kwargs))
        return used[-1]

    agent.td_target = spy
    state = agent.generator.get_state()
    _, metrics = agent.critic_loss(b)
    after_new = agent.generator.get_state()
    agent.generator.set_state(state)
    expected = old_target(agent, b)
    assert len(used) == 1 and torch.equal(used[0], expected)
    assert not torch.equal(expected, b["reward"])  # it does bootstrap
    if name != "calql":  # Cal-QL draws its CQL candidates after the target
        assert torch.equal(after_new, agent.generator.get_state())
    q = agent.critic.q(b["obs"], b["action"])
    assert torch.equal(metrics["td_loss"], (q - expected).pow(2).mean(dim=1).sum())


def test_gated_target_takes_a_lambda_per_dimension():
    """(B,) lambda == the same lambda repeated per dimension (B, D); a per-dimension lambda that
    differs between dimensions gives another target."""
    rng = np.random.default_rng(2)
    agent = CalQL(ToyActor(), ToyCritic(), CalQLConfig(target_subset=0), seed=0)
    _randomise(agent.actor, agent.critic_target)
    b = _bootstrapping_batch(rng)
    reduce = lambda q: q.min(dim=0).values  # noqa: E731
    state = agent.generator.get_state()
    y_scalar = agent.td_target(b, agent.actor, reduce, b["next_lambda"])
    agent.generator.set_state(state)
    y_repeated = agent.td_target(b, agent.actor, reduce, b["next_lambda"][:, None].expand(-1, DIM))
    agent.generator.set_state(state)
    y_per_dim = agent.td_target(b, agent.actor, reduce, torch.stack([b["next_lambda"], 1 - b["next_lambda"]], 1))
    assert torch.equal(y_scalar, y_repeated) and not torch.allclose(y_scalar, y_per_dim)


def test_algorithm_configs_share_one_base():
    """The settings AgentBase reads are declared once (AgentConfig); each algorithm adds its own."""
    import dataclasses

    base = {f.name for f in dataclasses.fields(common.AgentConfig)}
    assert len(base) == 18
    for cls in (CalQLConfig, RLPDConfig, TD3Config):
        assert issubclass(cls, common.AgentConfig)
        assert base <= {f.name for f in dataclasses.fields(cls)}
    assert CalQLConfig().actor_lr == 1e-4 and RLPDConfig().utd == 2 and TD3Config().explore_clip == 0.5
    assert CalQL(ToyActor(), ToyCritic()).cfg == CalQLConfig()  # no config -> the algorithm's own


def test_v_target_q_or_monte_carlo_return():
    """V regresses to the critic's Q(s, a_data) by default, to the data's MC return-to-go with
    v_target "mc" (then an overestimating critic cannot lift it); an unknown target is refused."""
    q_data = torch.tensor([[0.9, 1.0, 1.1], [0.9, 1.0, 1.1]])     # (E, B): a critic reading ~1 everywhere
    target = q_data.clone()
    mc = torch.tensor([0.2, 0.5, 1.0])
    v = mc.clone()                                                 # V already at the MC return
    _, v_loss_q = common.td_and_value_losses(q_data, target, v, CalQLConfig(), {"mc_return": mc})
    _, v_loss_mc = common.td_and_value_losses(q_data, target, v, CalQLConfig(v_target="mc"), {"mc_return": mc})
    assert v_loss_mc.item() == 0.0
    assert v_loss_q.item() == pytest.approx(0.5 * ((q_data.mean(0) - mc) ** 2).mean().item())
    with pytest.raises(ValueError, match="v_target"):
        TD3Config(v_target="td")
