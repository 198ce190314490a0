"""openpi (pi0 / pi0-FAST / pi0.5) policy server client, through ``openpi-client``.

Protocol (openpi's ``WebsocketPolicyServer``): on connect the server sends its metadata dict
(msgpack with numpy arrays); then every request is one msgpack'd observation dict answered by a
dict with ``actions`` (H, D), or by a text frame holding the server's traceback.

Observation keys are DROID's (openpi ``examples/droid``): ``observation/exterior_image_1_left``
and ``observation/wrist_image_left`` (224x224x3 uint8, resized with padding),
``observation/joint_position`` (7,), ``observation/gripper_position`` (1,) (0 open .. 1 closed)
and ``prompt``; ``observation/cartesian_position`` (6,) is added from the EE state for servers
whose policy reads it. The chunk is mapped to absolute EE targets by ``ActionMapper``.

Faults: connecting and every reply are bounded by timeouts; any failure (refused, timed out,
closed, server traceback, malformed chunk) raises VLAError and drops the connection, and the next
``infer`` reconnects. The caller (the chunk node's worker thread) keeps retrying; the arbiter
holds the robot once the current chunk runs out.
"""
from __future__ import annotations

import time
from typing import Dict, Optional

import numpy as np

from resrl.vla.action_mapping import ActionMapper
from resrl.vla.base import VLAError, check_chunk

DROID_IMAGE_SIZE = 224


def droid_observation(obs: Dict[str, np.ndarray], prompt: str, image_size: int = DROID_IMAGE_SIZE) -> dict:
    """resrl observation dict -> openpi DROID request. Missing inputs are an error, except the
    wrist camera, which is sent black when the robot has none (documented limitation)."""
    from openpi_client import image_tools

    for key in ("image", "joint_position", "state"):
        if key not in obs:
            raise VLAError(f"openpi: observation has no '{key}' yet")
    image = np.asarray(obs["image"])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise VLAError(f"openpi: exterior image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    wrist = obs.get("wrist_image")
    wrist = np.zeros_like(image) if wrist is None else np.asarray(wrist)
    joints = np.asarray(obs["joint_position"], dtype=np.float64)
    state = np.asarray(obs["state"], dtype=np.float64)
    if joints.shape != (7,) or state.shape != (7,) or not (np.all(np.isfinite(joints)) and np.all(np.isfinite(state))):
        raise VLAError(f"openpi: joint positions {joints.shape} / EE state {state.shape} must be 7 finite values")

    def resize(im):
        return image_tools.convert_to_uint8(image_tools.resize_with_pad(im, image_size, image_size))
    return {
        "observation/exterior_image_1_left": resize(image),
        "observation/wrist_image_left": resize(wrist),
        "observation/joint_position": joints,
        "observation/gripper_position": np.array([1.0 - state[6]]),   # resrl state: 1 = open
        "observation/cartesian_position": state[:6],
        "prompt": prompt,
    }


class OpenPIBackend:
    name = "openpi"

    def __init__(self, host: str, port: int, horizon: int, prompt: str, action_space: str = "eef_absolute",
                 kinematics: str = "franka", connect_timeout_s: float = 2.0, timeout_s: float = 5.0,
                 api_key: str = "", image_size: int = DROID_IMAGE_SIZE):
        try:
            from openpi_client.websocket_client_policy import WebsocketClientPolicy
        except ImportError as exc:   # pragma: no cover - requirements.txt installs it
            raise VLAError(f"openpi backend needs openpi-client ({exc})") from exc
        self._client_cls = WebsocketClientPolicy
        self.host, self.port, self.horizon, self.prompt = host, int(port), int(horizon), prompt
        self.connect_timeout_s, self.timeout_s = float(connect_timeout_s), float(timeout_s)
        self.api_key, self.image_size = api_key or None, int(image_size)
        self.mapper = ActionMapper(action_space, kinematics)
        self.client = None
        self.metadata: Optional[dict] = None
        self.server_timing: dict = {}

    # openpi-client's WebsocketClientPolicy connects in its constructor without a handshake
    # timeout and receives replies without one; these two methods bound both, keeping the
    # library's URI handling, packer and msgpack-numpy codec.
    def _connect(self):
        import websockets.sync.client
        from openpi_client import msgpack_numpy

        backend = self

        class _TimedClient(self._client_cls):
            def _wait_for_server(self):
                headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
                conn = websockets.sync.client.connect(self._uri, compression=None, max_size=None,
                                                      additional_headers=headers,
                                                      open_timeout=backend.connect_timeout_s)
                # The connection outlives this call and is closed by OpenPIBackend.close(); entering
                # it marks it as managed (websockets >= 17.1 deprecates unmanaged connections).
                conn.__enter__()
                try:
                    metadata = msgpack_numpy.unpackb(conn.recv(timeout=backend.connect_timeout_s))
                except BaseException:
                    conn.close()
                    raise
                return conn, metadata

            def infer(self, obs):
                self._ws.send(self._packer.pack(obs))
                reply = self._ws.recv(timeout=backend.timeout_s)
                if isinstance(reply, str):
                    raise VLAError(f"openpi server error:\n{reply}")
                return msgpack_numpy.unpackb(reply)

        try:
            self.client = _TimedClient(self.host, self.port, api_key=self.api_key)
        except Exception as exc:   # refused, unreachable, handshake or metadata timeout
            self.client = None
            raise VLAError(f"openpi: cannot connect to ws://{self.host}:{self.port} "
                           f"({type(exc).__name__}: {exc})") from exc
        meta = self.client.get_server_metadata()
        if not isinstance(meta, dict):
            self.close()
            raise VLAError(f"openpi: server metadata is {type(meta).__name__}, expected a dict")
        self.metadata = meta

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client._ws.close()
            except Exception:  # already broken; nothing left to release
                pass
        self.client = None

    def reset(self, seed: int) -> None:
        if self.client is not None:
            self.client.reset()

    def infer(self, obs):
        request = droid_observation(obs, self.prompt, self.image_size)
        if self.client is None:
            self._connect()
        t0 = time.perf_counter()
        try:
            reply = self.client.infer(request)
        except VLAError:
            self.close()
            raise
        except Exception as exc:   # timeout, connection closed/reset, bad frame
            self.close()
            raise VLAError(f"openpi: no reply from ws://{self.host}:{self.port} within "
                           f"{self.timeout_s:.1f} s ({type(exc).__name__}: {exc})") from exc
        self.round_trip_s = time.perf_counter() - t0
        if not isinstance(reply, dict) or "actions" not in reply:
            self.close()
            keys = sorted(reply) if isinstance(reply, dict) else type(reply).__name__
            raise VLAError(f"openpi: reply has no 'actions' (got {keys})")
        self.server_timing = reply.get("server_timing", {}) or {}
        actions = np.asarray(reply["actions"])
        if actions.ndim != 2 or not np.all(np.isfinite(actions)):
            raise VLAError(f"openpi: actions of shape {actions.shape} must be a finite (H, D) array")
        try:
            mapped = self.mapper(actions[: self.horizon], obs)
        except ValueError as exc:
            raise VLAError(f"openpi: {exc}") from exc
        return check_chunk(mapped, self.horizon, 7, "openpi")
