"""Run-time networks: hot-swap of weights pushed as bytes, rejection of bad payloads, gate inputs."""
import numpy as np
import pytest
import torch

from resrl.models import build_critic, build_residual
from resrl.models.config import ModelConfig
from resrl.policy_runtime import PolicyRuntime, WeightsError, pack_weights

CFG = ModelConfig(obs_mode="object", actor_hidden=(32, 32), critic_hidden=(32, 32), object_trunk_dim=32)
OBS = {"state": np.zeros(7, np.float32), "base_action": np.full(7, 0.1, np.float32),
       "object_poses": np.array([0.5, 0, 0.02, 0, 0, 0, 1], np.float32), "object_conf": np.ones(1, np.float32)}


def _trained_residual():
    torch.manual_seed(0)
    net = build_residual(CFG)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def test_residual_hot_swap_changes_output_and_version():
    rt = PolicyRuntime("residual", CFG)
    assert not rt.residual(OBS).any()                      # a fresh residual is exactly zero
    net = _trained_residual()
    payload, sha = pack_weights(net)
    rt.load(payload, sha, version=3, config_json=CFG.to_json())
    expected = net.eval()({k: torch.from_numpy(v)[None] for k, v in OBS.items()})[0].detach().numpy()
    np.testing.assert_allclose(rt.residual(OBS), expected, atol=1e-5)
    assert rt.version == 3 and np.abs(rt.residual(OBS)).max() > 0


def test_bad_weights_keep_the_previous_version():
    rt = PolicyRuntime("residual", CFG)
    payload, sha = pack_weights(_trained_residual())
    rt.load(payload, sha, version=1)
    before = rt.residual(OBS)
    with pytest.raises(WeightsError):
        rt.load(payload[:-10], sha, version=2)             # truncated
    with pytest.raises(WeightsError):
        rt.load(payload, "0" * 64, version=2)              # hash mismatch
    with pytest.raises(WeightsError):
        rt.load(payload, sha, version=1)                   # not newer
    other = ModelConfig(obs_mode="object", actor_hidden=(16,), critic_hidden=(16,), object_trunk_dim=16)
    with pytest.raises(WeightsError):
        rt.load(*pack_weights(build_residual(other)), version=2)   # shapes do not fit
    assert rt.version == 1
    np.testing.assert_array_equal(rt.residual(OBS), before)


def test_critic_gate_inputs_match_the_module():
    critic = build_critic(CFG).eval()
    rt = PolicyRuntime("critic", CFG)
    rt.load(*pack_weights(critic), version=1)
    a_vla, a_res = OBS["base_action"], np.full(7, 0.02, np.float32)
    q_comb, q_base, v = rt.critic(OBS, a_vla, a_res)
    batch = {k: torch.from_numpy(x)[None] for k, x in OBS.items()}
    with torch.no_grad():
        np.testing.assert_allclose(q_comb, critic.q(batch, torch.from_numpy(a_vla + a_res)[None])[:, 0], atol=1e-5)
        np.testing.assert_allclose(q_base, critic.q(batch, torch.from_numpy(a_vla)[None])[:, 0], atol=1e-5)
        assert v == pytest.approx(float(critic.v(batch)[0]), abs=1e-5)
    assert q_comb.shape == (CFG.ensemble_size,)
