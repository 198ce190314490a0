"""Checkpoints (weights_only, atomic) and PolicyWeights payloads (hash-verified, all-or-nothing)."""
from __future__ import annotations

import io

import pytest
import torch

from resrl.models import (CheckpointError, ModelConfig, build_critic, build_residual, deserialize_into,
                          load_checkpoint, load_state_dict_checked, payload_sha256, save_checkpoint,
                          serialize_state_dict)
from resrl.models import checkpoint as ckpt_module

CFG = ModelConfig(obs_mode="object", num_objects=2, actor_hidden=(32, 32), critic_hidden=(32, 32),
                  object_trunk_dim=16)


def trained_residual(seed: int = 0, cfg: ModelConfig = CFG):
    torch.manual_seed(seed)
    policy = build_residual(cfg)
    for p in policy.parameters():  # non-zero head, so outputs reveal the weights
        torch.nn.init.normal_(p, std=0.3)
    return policy.eval()


def obs(b: int = 5) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"state": torch.randn(b, 7, generator=g), "base_action": torch.randn(b, 7, generator=g),
            "object_poses": torch.randn(b, 14, generator=g), "object_conf": torch.ones(b, 2)}


def snapshot(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_unchanged(module, before: dict) -> None:
    after = module.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_checkpoint_round_trip(tmp_path):
    policy, critic = trained_residual(), build_critic(CFG).eval()
    path = tmp_path / "ckpt" / "latest.pt"
    save_checkpoint(path, {"residual": policy, "critic": critic}, CFG, version=42,
                    extra={"env_steps": 1234, "success_rate": 0.75, "offline": True})

    raw = torch.load(path, weights_only=True)  # plain containers only: no pickled classes
    assert isinstance(raw["config_json"], str) and isinstance(raw["modules"]["residual"], dict)

    state_dicts, cfg_dict, version, extra = load_checkpoint(path)
    assert version == 42 and extra == {"env_steps": 1234, "success_rate": 0.75, "offline": True}
    cfg = ModelConfig.from_dict(cfg_dict)
    assert cfg == CFG
    policy2, critic2 = build_residual(cfg).eval(), build_critic(cfg).eval()
    load_state_dict_checked(policy2, state_dicts["residual"])
    load_state_dict_checked(critic2, state_dicts["critic"])
    o, a = obs(), torch.randn(5, 7)
    with torch.no_grad():
        assert torch.equal(policy2(o), policy(o))
        assert torch.equal(critic2.q(o, a), critic.q(o, a))
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temp files left


def test_failing_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {"residual": trained_residual(0)}, CFG, version=1)
    original = path.read_bytes()

    def disk_full(obj, f):  # writes part of a file, then fails like a full disk
        f.write(b"PK\x03\x04partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_module.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"residual": trained_residual(1)}, CFG, version=2)
    monkeypatch.undo()

    assert path.read_bytes() == original
    assert load_checkpoint(path)[2] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]

    with pytest.raises(TypeError, match="extra"):
        save_checkpoint(path, {"residual": trained_residual(1)}, CFG, version=3, extra={"tag": [1, 2]})
    assert path.read_bytes() == original


def test_load_checkpoint_rejects_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(garbage)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "resrl.checkpoint", "cfg": ModelConfig()}, pickled)  # a pickled class
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(pickled)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a resrl.checkpoint"):
        load_checkpoint(foreign)


def test_weights_payload_round_trip_with_sha():
    src, dst = trained_residual(0), trained_residual(1)
    payload = serialize_state_dict(src)
    assert isinstance(payload, bytes)
    deserialize_into(dst, payload, sha256=payload_sha256(payload).upper())  # hex case-insensitive
    with torch.no_grad():
        assert torch.equal(dst(obs()), src(obs()))
    # ROS delivers uint8[] as a sequence of ints, not bytes.
    other = trained_residual(2)
    deserialize_into(other, list(payload))
    assert torch.equal(other.head.net[0].weight, src.head.net[0].weight)


def test_sha_mismatch_raises_and_leaves_module_unchanged():
    src, dst = trained_residual(0), trained_residual(1)
    before = snapshot(dst)
    payload = serialize_state_dict(src)
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        deserialize_into(dst, payload, sha256=payload_sha256(payload + b"x"))
    assert_unchanged(dst, before)


def test_corrupted_payload_raises_and_leaves_module_unchanged():
    src, dst = trained_residual(0), trained_residual(1)
    before = snapshot(dst)
    payload = bytearray(serialize_state_dict(src))
    for bad in (bytes(payload[: len(payload) // 2]), bytes(payload[:100]) + b"\xff" * 64, b""):
        with pytest.raises(CheckpointError, match="corrupted"):
            deserialize_into(dst, bad)
        assert_unchanged(dst, before)


def test_mismatching_weights_raise_and_leave_module_unchanged():
    dst = trained_residual(1)
    before = snapshot(dst)
    wider = ModelConfig(obs_mode="object", num_objects=2, actor_hidden=(32, 48))
    with pytest.raises(CheckpointError, match="shape mismatch"):
        deserialize_into(dst, serialize_state_dict(trained_residual(0, wider)))
    assert_unchanged(dst, before)

    with pytest.raises(CheckpointError, match="key mismatch"):
        deserialize_into(dst, serialize_state_dict(build_critic(CFG)))
    assert_unchanged(dst, before)

    nan_src = trained_residual(0)
    with torch.no_grad():
        nan_src.head.net[-1].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite"):
        deserialize_into(dst, serialize_state_dict(nan_src))
    assert_unchanged(dst, before)

    buf = io.BytesIO()
    torch.save([1, 2, 3], buf)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        deserialize_into(dst, buf.getvalue())
    assert_unchanged(dst, before)
