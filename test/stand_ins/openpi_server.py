"""A test stand-in for openpi's policy server (openpi/serving/websocket_policy_server.py).

Same wire protocol: websockets, no compression, unlimited frame size; on connect the server
sends its metadata dict packed with openpi_client.msgpack_numpy; then each binary frame is an
observation dict answered with the policy's output dict (``actions`` (H, D) + ``server_timing``),
and a policy exception is answered with the traceback as a text frame and an INTERNAL_ERROR
close. Runs in a background thread; ``stop()`` kills it (open connections included) and
``start()`` brings it back on the same port, for dead-server tests.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
import traceback
from typing import Callable, Dict, List, Optional

import numpy as np
import websockets.asyncio.server as ws_server
import websockets.frames
from openpi_client import msgpack_numpy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OpenPIServerStandIn:
    def __init__(self, policy: Callable[[Dict], Dict], metadata: Optional[dict] = None, port: int = 0,
                 delay_s: float = 0.0):
        self.policy = policy
        self.metadata = metadata if metadata is not None else {"policy": "stand-in"}
        self.port = port or free_port()
        self.delay_s = delay_s
        self.requests: List[Dict] = []
        self.delivered = 0      # replies the client received
        self.undelivered = 0    # replies ready after the client had hung up (it gave up waiting)
        self._loop = None
        self._thread = None
        self._stop_event = None

    async def _handler(self, websocket):
        packer = msgpack_numpy.Packer()
        await websocket.send(packer.pack(self.metadata))
        while True:
            replying = False
            try:
                obs = msgpack_numpy.unpackb(await websocket.recv())
                self.requests.append(obs)
                replying = True
                t0 = time.monotonic()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                action = self.policy(obs)
                action["server_timing"] = {"infer_ms": (time.monotonic() - t0) * 1000}
                await websocket.send(packer.pack(action))
                self.delivered += 1
            except websockets.ConnectionClosed:
                self.undelivered += replying
                break
            except Exception:
                await websocket.send(traceback.format_exc())
                await websocket.close(code=websockets.frames.CloseCode.INTERNAL_ERROR,
                                      reason="Internal server error. Traceback included in previous frame.")
                break

    async def _run(self, ready: threading.Event):
        self._stop_event = asyncio.Event()
        async with ws_server.serve(self._handler, "127.0.0.1", self.port, compression=None, max_size=None) as server:
            ready.set()
            await self._stop_event.wait()
            server.close(close_connections=True)

    def start(self) -> "OpenPIServerStandIn":
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._run(ready),), daemon=True)
        self._thread.start()
        if not ready.wait(5.0):
            raise RuntimeError(f"openpi stand-in did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join(5.0)
        self._loop.close()
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def eef_policy(horizon: int = 10):
    """A policy in resrl's action space: the chunk walks from the EE position (read from
    ``observation/cartesian_position``) 1 cm per step along x, gripper closing."""
    def infer(obs):
        pose = np.asarray(obs["observation/cartesian_position"], dtype=np.float64)
        rows = np.tile(np.concatenate([pose, [0.0]]), (horizon, 1))
        rows[:, 0] += 0.01 * np.arange(1, horizon + 1)
        rows[:, 6] = np.linspace(0.0, 1.0, horizon)
        return {"actions": rows}
    return infer
