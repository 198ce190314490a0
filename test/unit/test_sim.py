"""Tests for resrl.sim: env determinism/clamping/rendering, scripted VLA/expert/oracle, depth helpers."""
from __future__ import annotations

import math

import numpy as np
import pytest

try:  # resrl.sim falls back to EGL when MUJOCO_GL=osmesa but libosmesa6 is missing
    import resrl.sim.franka_env  # noqa: F401
except Exception as exc:  # pragma: no cover
    pytest.skip(f"mujoco unavailable: {exc!r}", allow_module_level=True)

from resrl.actions import ACTION_DIM, STATE_DIM, InvalidActionError  # noqa: E402
from resrl.configs import ConfigError  # noqa: E402
from resrl.sim import (JOINT_NAMES, FrankaTableEnv, ScriptedExpert, ScriptedVLA, SimConfig,  # noqa: E402
                       check_success, load_task_config, metric_to_relative_depth, oracle_correction,
                       run_episode, sensor_depth_to_uint16_mm)
from resrl.perception.depth import uint16_mm_to_metric  # noqa: E402
from resrl.sim.scripted import ChunkRunner  # noqa: E402

TASKS = ("pick_lift", "pick_place")
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def task_cfgs():
    return {t: load_task_config(t) for t in TASKS}


@pytest.fixture(scope="module")
def envs(task_cfgs):
    out = {t: FrankaTableEnv(task_cfgs[t].sim) for t in TASKS}
    yield out
    for e in out.values():
        e.close()


# ----------------------------------------------------------------------------- env basics
def test_obs_layout(envs):
    env = envs["pick_place"]
    obs = env.reset(seed=0)
    assert obs["state"].shape == (STATE_DIM,) and obs["state"].dtype == np.float32
    assert obs["object_poses"].shape == (7,) and obs["target_pose"].shape == (7,)
    assert obs["joint_pos"].shape == (len(JOINT_NAMES),) == obs["joint_vel"].shape
    assert obs["ee_pos"].shape == (3,) and obs["ee_quat"].shape == (4,)
    assert obs["gripper_width"].shape == (1,)
    assert "image" not in obs and "depth_m" not in obs
    assert JOINT_NAMES[:7] == tuple(f"panda_joint{i}" for i in range(1, 8))
    # Home: gripper open, pointing down (rotvec ~ 0), at the configured home position.
    np.testing.assert_allclose(obs["state"][:3], env.cfg.home_tcp_pos, atol=2e-3)
    np.testing.assert_allclose(obs["state"][3:6], 0.0, atol=1e-2)
    assert obs["state"][6] == pytest.approx(1.0, abs=1e-3)
    assert abs(np.linalg.norm(obs["object_poses"][3:]) - 1.0) < 1e-5


def test_reset_reproducible_and_randomised(envs):
    env = envs["pick_place"]
    a = env.reset(seed=7)
    b = env.reset(seed=7)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    poses = np.stack([env.reset(seed=s)["object_poses"] for s in range(6)])
    targets = np.stack([env.reset(seed=s)["target_pose"] for s in range(6)])
    assert len({tuple(np.round(p, 5)) for p in poses}) == 6
    assert len({tuple(np.round(t, 5)) for t in targets}) == 6
    cfg = env.cfg
    assert np.all((poses[:, 0] >= cfg.object_x_range[0]) & (poses[:, 0] <= cfg.object_x_range[1]))
    assert np.all(np.linalg.norm(poses[:, :2] - targets[:, :2], axis=1) >= cfg.min_object_target_distance - 1e-6)
    yaws = [2 * math.atan2(p[5], p[6]) for p in poses]
    assert np.ptp(yaws) > 0.1


def test_step_determinism(task_cfgs):
    tc = task_cfgs["pick_place"]
    rng = np.random.default_rng(0)
    env1, env2 = FrankaTableEnv(tc.sim), FrankaTableEnv(tc.sim)
    o1, o2 = env1.reset(seed=11), env2.reset(seed=11)
    expert = ScriptedExpert(tc, noise_std=0.004, seed=3)
    for _ in range(25):
        a = expert.act(o1).expert_action + rng.normal(0, 0.002, ACTION_DIM).astype(np.float32)
        o1, r1, te1, tr1, i1 = env1.step(a)
        o2, r2, te2, tr2, i2 = env2.step(a)
        for k in o1:
            np.testing.assert_array_equal(o1[k], o2[k])
        assert (r1, te1, tr1) == (r2, te2, tr2)


def test_workspace_clamp_and_step_limit(envs):
    env = envs["pick_lift"]
    cfg = env.cfg
    obs = env.reset(seed=0)
    far = np.array([5.0, -5.0, -1.0, 2.0, -2.0, 3.0, 7.0], dtype=np.float32)
    a, clamped = env.clamp_action(far)
    assert clamped
    p0 = obs["state"][:3]
    assert np.linalg.norm(a[:3] - p0) <= cfg.max_step_translation + 1e-6
    assert a[6] == 1.0
    for _ in range(30):
        obs, _, _, _, info = env.step(far)
        app = info["applied_action"]
        assert info["clamped"]
        assert np.all(app[:3] >= np.asarray(cfg.workspace_low) - 1e-6)
        assert np.all(app[:3] <= np.asarray(cfg.workspace_high) + 1e-6)
        assert np.all(np.abs(app[3:6]) <= np.maximum(np.abs(cfg.rotvec_low), np.abs(cfg.rotvec_high)) + 1e-5)
    # A top-down target far outside: the TCP ends in the box corner the action points at.
    far_down = np.array([5.0, -5.0, -1.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)
    for _ in range(30):
        obs, _, _, _, info = env.step(far_down)
        assert np.linalg.norm(info["applied_action"][:3] - p0) > 0 and info["clamped"]
    corner = [cfg.workspace_high[0], cfg.workspace_low[1], cfg.workspace_low[2]]
    np.testing.assert_allclose(obs["state"][:3], corner, atol=0.01)
    # Inside the box and close by: untouched.
    inside = env.clamp_action(np.r_[obs["state"][:3], obs["state"][3:6], 0.0])
    assert not inside[1]
    with pytest.raises(InvalidActionError):
        env.step([np.nan] * ACTION_DIM)
    with pytest.raises(InvalidActionError):
        env.step([0.0] * 6)


def test_tracking_reaches_target(envs):
    env = envs["pick_lift"]
    env.reset(seed=0)
    target = np.array([0.5, 0.1, 0.1, 0.0, 0.0, 0.4, 0.0], dtype=np.float32)
    for _ in range(15):
        obs, *_ = env.step(target)
    np.testing.assert_allclose(obs["state"][:3], target[:3], atol=3e-3)
    np.testing.assert_allclose(obs["state"][3:6], target[3:6], atol=2e-2)


def test_success_oracle_function():
    cfg = SimConfig(task="pick_place")
    h = cfg.cube_half_size
    tgt = [0.5, 0.1, 0.0, 0, 0, 0, 1]
    on_target = [0.505, 0.1, h, 0, 0, 0, 1]
    assert check_success(cfg, on_target, tgt, grasped=False, gripper_width=0.08, object_speed=0.0)
    assert not check_success(cfg, on_target, tgt, grasped=True, gripper_width=2 * h, object_speed=0.0)
    assert not check_success(cfg, [0.53, 0.1, h, 0, 0, 0, 1], tgt, False, 0.08, 0.0)
    assert not check_success(cfg, on_target, tgt, False, 0.08, object_speed=0.5)
    lift = SimConfig(task="pick_lift")
    assert check_success(lift, [0.5, 0, h + 0.06, 0, 0, 0, 1], tgt, True, 2 * h, 0.1)
    assert not check_success(lift, [0.5, 0, h + 0.06, 0, 0, 0, 1], tgt, False, 0.08, 0.1)
    assert not check_success(lift, [0.5, 0, h + 0.02, 0, 0, 0, 1], tgt, True, 2 * h, 0.1)


def test_task_configs_strict(tmp_path):
    for t in TASKS:
        tc = load_task_config(t)
        assert tc.task == t and tc.vla.chunk_size == 16
    bad = tmp_path / "bad.yaml"
    bad.write_text("sim:\n  task: pick_lift\n  cube_size: 0.02\n")
    with pytest.raises(ConfigError):
        load_task_config(bad)
    with pytest.raises(ValueError):
        SimConfig(task="stack")


# ----------------------------------------------------------------------------- scripted policies
def test_chunk_shapes(task_cfgs, envs):
    for t in TASKS:
        env, vla = envs[t], ScriptedVLA(task_cfgs[t])
        obs = env.reset(seed=0)
        chunk = vla.infer(obs, env.privileged_info())
        assert chunk.shape == (vla.chunk_size, ACTION_DIM) == (16, 7) and chunk.dtype == np.float32
        assert np.all(np.isfinite(chunk)) and set(np.unique(chunk[:, 6])) <= {0.0, 1.0}
        assert vla.ideal_chunk(obs).shape == (16, 7)
        corr = vla.oracle_correction(obs)
        assert corr.shape == (ACTION_DIM,) and corr.dtype == np.float32
        np.testing.assert_allclose(corr, oracle_correction(task_cfgs[t], obs))
        step = ScriptedExpert(task_cfgs[t]).act(obs)
        np.testing.assert_allclose(step.expert_action, step.vla_action + step.correction, atol=1e-6)
        # The VLA's intent is right: its chunk heads toward the cube.
        d0 = np.linalg.norm(obs["state"][:2] - obs["object_poses"][:2])
        assert np.linalg.norm(chunk[-1, :2] - obs["object_poses"][:2]) < min(d0, 0.03)


@pytest.mark.parametrize("task", TASKS)
def test_expert_succeeds(task, envs):
    for s in SEEDS:
        out = run_episode(envs[task], "expert", seed=s, record=(s == 0))
        assert out["success"], (task, s, out)
        if s == 0:
            n = out["steps"]
            assert len(out["expert_action"]) == len(out["vla_action"]) == len(out["obs"]) == n
            assert out["done"][-1] and out["reward"][-1] == 1.0


@pytest.mark.parametrize("task", TASKS)
def test_vla_fails_but_oracle_correction_fixes_it(task, task_cfgs, envs):
    env, vla = envs[task], ScriptedVLA(task_cfgs[task])
    bound = vla.cfg.correction_bound
    for s in SEEDS:
        for replan in (1, 16):
            assert not run_episode(env, "vla", seed=s, replan_every=replan, vla=vla)["success"], (task, s, replan)
        # base + oracle correction, executing the VLA's chunks open-loop (16 steps per chunk)
        obs = env.reset(seed=s)
        info = env.privileged_info()
        runner = ChunkRunner(vla, replan_every=16, residual_fn=lambda o, i, b: vla.oracle_correction(o, i))
        nonzero = False
        for _ in range(env.max_episode_steps):
            corr = vla.oracle_correction(obs)
            assert np.all(np.abs(corr[:3]) <= bound) and abs(corr[5]) <= vla.cfg.rotation_bound
            assert corr[6] == 0.0
            nonzero |= bool(np.abs(corr[:3]).max() > 0.005)
            a, _ = runner.act(obs, info)
            obs, _, term, trunc, info = env.step(a)
            if term or trunc:
                break
        assert info["success"], (task, s)
        assert nonzero


# ----------------------------------------------------------------------------- rendering
def test_render_shapes_visibility_and_intrinsics():
    cfg = SimConfig(task="pick_place", render=True, image_width=48, image_height=40)
    env = FrankaTableEnv(cfg)
    try:
        obs = env.reset(seed=0)
        img, depth = obs["image"], obs["depth_m"]
        assert img.shape == (40, 48, 3) and img.dtype == np.uint8
        assert depth.shape == (40, 48) and depth.dtype == np.float32
        assert np.all(depth > 0) and img.std() > 5
        k = env.camera_intrinsics()
        assert k["fx"] == pytest.approx(k["fy"]) and k["cx"] == pytest.approx(23.5) and k["cy"] == pytest.approx(19.5)
        # The cube projects inside the image, and the rendered depth there matches the geometry.
        obj = obs["object_poses"][:3].astype(np.float64)
        top = obj + [0, 0, cfg.cube_half_size]
        u, v = env.project(top)[0]
        assert 0 <= u < 48 and 0 <= v < 40
        cam = env.camera_extrinsics()
        z_cam = (top - cam["position"]) @ cam["rotation"][:, 2]
        assert depth[int(round(v)), int(round(u))] == pytest.approx(z_cam, abs=0.05)
        # Moving the object changes the pixels.
        moved = obs["object_poses"].copy()
        moved[1] += 0.08
        obs2 = env.set_state(object_pose=moved)
        assert np.abs(obs2["image"].astype(int) - img.astype(int)).sum() > 100
        assert np.abs(obs2["depth_m"] - depth).max() > 0.01
        # Stepping keeps rendering.
        obs3, *_ = env.step(env.home_action())
        assert obs3["image"].shape == (40, 48, 3)
    finally:
        env.close()


# ----------------------------------------------------------------------------- depth helpers
def test_relative_depth_monotone_and_invalid():
    d = np.array([[0.5, 1.0, 2.0], [4.0, 0.0, np.nan], [np.inf, -1.0, 1.5]], dtype=np.float32)
    rel = metric_to_relative_depth(d)
    assert rel.dtype == np.uint8 and rel.shape == d.shape
    assert rel[0, 0] == 255 and rel[1, 0] == 0  # nearest / farthest valid
    valid = [(0, 0), (0, 1), (2, 2), (0, 2), (1, 0)]  # increasing depth
    vals = [int(rel[i]) for i in valid]
    assert vals == sorted(vals, reverse=True) and len(set(vals)) == len(vals)
    for idx in [(1, 1), (1, 2), (2, 0), (2, 1)]:
        assert rel[idx] == 0
    assert np.all(metric_to_relative_depth(np.zeros((4, 4))) == 0)
    assert np.all(metric_to_relative_depth(np.full((3, 3), 1.2)) == 255)
    ramp = np.linspace(0.3, 3.0, 50).reshape(5, 10)
    r = metric_to_relative_depth(ramp).reshape(-1).astype(int)
    assert np.all(np.diff(r) <= 0) and r[0] == 255 and r[-1] == 0
    with pytest.raises(ValueError):
        metric_to_relative_depth(np.zeros(5))


def test_sensor_depth_uint16():
    d = np.array([[0.0, 0.4567, 1.0], [np.nan, 12.0, 65.0]], dtype=np.float32)
    mm = sensor_depth_to_uint16_mm(d)
    assert mm.dtype == np.uint16
    assert mm.tolist() == [[0, 457, 1000], [0, 0, 0]]
    assert sensor_depth_to_uint16_mm(d, max_depth=100.0)[1, 2] == 65000
    back = uint16_mm_to_metric(mm)
    assert np.isnan(back[0, 0]) and back[0, 2] == pytest.approx(1.0)


def test_relative_depth_of_render_is_bright_near():
    cfg = SimConfig(task="pick_lift", render=True, image_width=32, image_height=32)
    env = FrankaTableEnv(cfg)
    try:
        obs = env.reset(seed=1)
        rel = metric_to_relative_depth(obs["depth_m"])
        d = obs["depth_m"]
        finite = d < 20
        i_near = np.unravel_index(np.argmin(np.where(finite, d, np.inf)), d.shape)
        assert rel[i_near] == 255
        assert np.all(rel[~finite] == 0)  # background at the far plane is invalid
    finally:
        env.close()
