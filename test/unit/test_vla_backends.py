"""VLA backends: the openpi client against a server speaking openpi's websocket protocol
(msgpack-numpy, metadata handshake), its faults (dead, slow, dying, erroring server, bad
chunks -> VLAError, then reconnect), the DROID joint-velocity -> EE mapping through the FR3
kinematics, and the LeRobot backend's load errors."""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stand_ins"))
from openpi_server import OpenPIServerStandIn, eef_policy, free_port  # noqa: E402

from resrl.vla.action_mapping import ActionMapper, franka_fk, integrate_joint_velocity, transform_to_pose6  # noqa: E402
from resrl.vla.backends import VLAError, make_backend  # noqa: E402

READY_Q = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])


def robot_obs(gripper_open=0.25):
    rng = np.random.default_rng(0)
    return {"state": np.array([0.4, 0.05, 0.3, np.pi, 0.0, 0.0, gripper_open], np.float32),
            "joint_position": READY_Q.copy(),
            "image": rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)}


def openpi(port, **kw):
    args = dict(host="127.0.0.1", port=port, horizon=16, prompt="put the cube in the bowl",
                connect_timeout_s=1.0, timeout_s=1.0)
    args.update(kw)
    return make_backend("openpi", **args)


def test_openpi_round_trip_with_droid_keys_and_metadata_handshake():
    with OpenPIServerStandIn(eef_policy(10), metadata={"robot": "droid", "action_horizon": 10}) as server:
        backend = openpi(server.port)
        obs = robot_obs()
        chunk = backend.infer(obs)
        assert backend.metadata == {"robot": "droid", "action_horizon": 10}
        req = server.requests[0]
        assert set(req) == {"observation/exterior_image_1_left", "observation/wrist_image_left",
                            "observation/joint_position", "observation/gripper_position",
                            "observation/cartesian_position", "prompt"}
        for key in ("observation/exterior_image_1_left", "observation/wrist_image_left"):
            assert req[key].shape == (224, 224, 3) and req[key].dtype == np.uint8
        assert req["observation/wrist_image_left"].max() == 0          # no wrist camera: black
        np.testing.assert_allclose(req["observation/joint_position"], READY_Q)
        np.testing.assert_allclose(req["observation/gripper_position"], [0.75])   # DROID: 1 = closed
        assert req["prompt"] == "put the cube in the bowl"
        # the chunk is the server's (10 rows, absolute EE): x advances 1 cm per row from the state
        assert chunk.shape == (10, 7) and chunk.dtype == np.float32
        np.testing.assert_allclose(chunk[:, 0], 0.4 + 0.01 * np.arange(1, 11), atol=1e-6)
        np.testing.assert_allclose(chunk[:, 3:6], np.tile([np.pi, 0, 0], (10, 1)), atol=1e-6)
        assert "infer_ms" in backend.server_timing
        # a server chunk longer than the horizon is cut to the horizon
        server.policy = eef_policy(50)
        assert backend.infer(obs).shape == (16, 7)


def test_dead_server_raises_vla_error_within_the_connect_timeout():
    backend = openpi(free_port(), connect_timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(VLAError, match="cannot connect"):
        backend.infer(robot_obs())
    assert time.monotonic() - t0 < 1.5


def test_slow_server_times_out_then_the_backend_reconnects():
    with OpenPIServerStandIn(eef_policy(8), delay_s=2.0) as server:
        backend = openpi(server.port, timeout_s=0.3)
        t0 = time.monotonic()
        with pytest.raises(VLAError, match="no reply"):
            backend.infer(robot_obs())
        assert time.monotonic() - t0 < 1.5 and backend.client is None
        server.delay_s = 0.0
        assert backend.infer(robot_obs()).shape == (8, 7)   # new connection, fresh reply


def test_server_dying_mid_session_then_returning():
    server = OpenPIServerStandIn(eef_policy(8)).start()
    backend = openpi(server.port)
    assert backend.infer(robot_obs()).shape == (8, 7)
    server.stop()
    with pytest.raises(VLAError):
        backend.infer(robot_obs())
    with pytest.raises(VLAError, match="cannot connect"):
        backend.infer(robot_obs())
    server.start()   # same port
    try:
        assert backend.infer(robot_obs()).shape == (8, 7)
    finally:
        server.stop()


@pytest.mark.parametrize("reply, match", [
    ({"actions": np.zeros((10, 5))}, "must be \\(H, >= 7\\)"),
    ({"actions": np.full((10, 7), np.nan)}, "finite"),
    ({"actions": np.zeros(7)}, "finite \\(H, D\\)"),
    ({"action": np.zeros((10, 7))}, "no 'actions'"),
])
def test_bad_chunks_raise_vla_error(reply, match):
    with OpenPIServerStandIn(lambda obs: dict(reply)) as server:
        with pytest.raises(VLAError, match=match):
            openpi(server.port).infer(robot_obs())


def test_server_exception_traceback_becomes_vla_error():
    def broken(obs):
        raise RuntimeError("checkpoint expects 8-dim state")
    with OpenPIServerStandIn(broken) as server:
        with pytest.raises(VLAError, match="checkpoint expects 8-dim state"):
            openpi(server.port).infer(robot_obs())


def test_missing_inputs_are_reported_before_anything_is_sent():
    with OpenPIServerStandIn(eef_policy(8)) as server:
        backend = openpi(server.port)
        obs = robot_obs()
        del obs["joint_position"]
        with pytest.raises(VLAError, match="joint_position"):
            backend.infer(obs)
        obs = robot_obs()
        obs["image"] = obs["image"][..., 0]
        with pytest.raises(VLAError, match="exterior image"):
            backend.infer(obs)
        assert server.requests == []


def test_franka_forward_kinematics_at_the_ready_pose():
    # libfranka's O_T_EE at the ready pose: TCP 0.307 m in front, 0.487 m up, pointing down
    t = franka_fk(READY_Q)
    np.testing.assert_allclose(t[:3, 3], [0.3069, 0.0, 0.4869], atol=5e-4)
    np.testing.assert_allclose(t[:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-9)
    np.testing.assert_allclose(transform_to_pose6(t)[3:], [np.pi, 0, 0], atol=1e-9)


def test_droid_joint_velocity_chunk_integrates_to_ee_targets():
    fk = franka_fk
    still = np.zeros((4, 8))
    still[:, 7] = [0.0, 0.3, 1.0, 2.0]
    out = integrate_joint_velocity(still, READY_Q, fk)
    np.testing.assert_allclose(out[:, :3], np.tile(fk(READY_Q)[:3, 3], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(out[:, 6], [0.0, 0.3, 1.0, 1.0])     # gripper clipped to [0, 1]
    # joint 1 (base yaw) at velocity 0.5 -> 0.1 rad per step: the TCP turns about z, radius kept
    yaw = np.zeros((3, 8))
    yaw[:, 0] = 0.5
    out = integrate_joint_velocity(yaw, READY_Q, fk)
    r = np.hypot(*fk(READY_Q)[:2, 3])
    np.testing.assert_allclose(np.arctan2(out[:, 1], out[:, 0]), [0.1, 0.2, 0.3], atol=1e-5)
    np.testing.assert_allclose(np.hypot(out[:, 0], out[:, 1]), r, atol=1e-5)
    # rows over the unit limit are rescaled like DROID's controller: 3.0 -> 1.0 -> 0.2 rad
    fast = np.zeros((1, 8))
    fast[0, 0] = 3.0
    np.testing.assert_allclose(np.arctan2(*integrate_joint_velocity(fast, READY_Q, fk)[0, 1::-1]), 0.2, atol=1e-5)


def test_openpi_joint_velocity_mode_end_to_end():
    def droid(obs):
        rows = np.zeros((10, 8))
        rows[:, 0] = 0.5
        return {"actions": rows}
    with OpenPIServerStandIn(droid) as server:
        chunk = openpi(server.port, action_space="joint_velocity").infer(robot_obs())
    assert chunk.shape == (10, 7)
    np.testing.assert_allclose(np.arctan2(chunk[:, 1], chunk[:, 0]), 0.1 * np.arange(1, 11), atol=1e-5)


def test_action_mapper_errors():
    with pytest.raises(ValueError, match="unknown action space"):
        ActionMapper("joint_position")
    with pytest.raises(ValueError, match="module:function"):
        ActionMapper("joint_velocity", kinematics="ur5e")
    with pytest.raises(ValueError, match="joint positions"):
        ActionMapper("joint_velocity")(np.zeros((2, 8)), {"state": np.zeros(7)})
    custom = ActionMapper("joint_velocity", kinematics="resrl.vla.action_mapping:franka_fk")
    assert custom.fk is franka_fk
    with pytest.raises(VLAError, match="unknown VLA backend"):
        make_backend("octo")


def test_lerobot_backend_reports_what_is_missing(tmp_path):
    """Checked before lerobot is imported (the loaded-policy paths: test_lerobot_policies.py)."""
    with pytest.raises(VLAError, match="has no config.json"):
        make_backend("lerobot", checkpoint_dir=str(tmp_path), horizon=16)
    (tmp_path / "config.json").write_text('{"type": "act"}')
    with pytest.raises(VLAError, match="has no model.safetensors"):
        make_backend("lerobot", checkpoint_dir=str(tmp_path), horizon=16)