"""Replay buffer: n-step/MC targets, frame sharing, eviction, mixing, persistence, crashes, threads."""
from __future__ import annotations

import os
import shutil
import stat
import threading
import warnings

import numpy as np
import pytest

from resrl.replay import (CapacityError, ReplayBuffer, ReplayFormatError, estimate_bytes,
                          frame_capacity, sample_mixed)
from resrl.replay.storage import FORMAT_VERSION, MAGIC

OBJ_SPEC = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
            "object_poses": ((14,), "float32"), "object_conf": ((2,), "float32")}
IMG_SPEC = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
            "image": ((8, 8, 3), "uint8"), "depth": ((8, 8), "uint8")}


def make_obs(spec, ep: int, t: int) -> dict:
    """Observation tagged with (episode, step) so samples can be checked against their source."""
    obs = {}
    for k, (shape, dt) in spec.items():
        a = np.full(shape, (ep * 10 + t) % 256, dtype=dt)
        if k == "state":
            a[0], a[1] = ep, t
        obs[k] = a
    return obs


def run_episode(buf, spec, ep_tag, rewards, done_last=True, truncated_last=False, success=True,
                end=True, intervention_at=(), meta=None):
    buf.start_episode(make_obs(spec, ep_tag, 0), meta=meta)
    for t, r in enumerate(rewards):
        last = t == len(rewards) - 1
        buf.add_step(np.full(7, t, np.float32), np.full(7, -t, np.float32), 0.5, r,
                     make_obs(spec, ep_tag, t + 1), done=done_last and last,
                     truncated=truncated_last and last, intervention=t in intervention_at)
    if end:
        buf.end_episode(success)


def rows_by_step(batch) -> dict[int, dict]:
    """One sampled row per step index t (state[1]), all rows for the same t must agree."""
    out = {}
    for i in range(len(batch["reward"])):
        t = int(batch["obs"]["state"][i, 1])
        row = {"reward": float(batch["reward"][i]), "discount": float(batch["discount"][i]),
               "done": bool(batch["done"][i]), "next_t": int(batch["next_obs"]["state"][i, 1]),
               "mc": float(batch["mc_return"][i])}
        assert out.setdefault(t, row) == row
    return out


def test_nstep_terminal_episode_hand_computed():
    buf = ReplayBuffer(OBJ_SPEC, 100, gamma=0.5, n_step=3)
    run_episode(buf, OBJ_SPEC, 0, [1.0, 2.0, 3.0, 4.0], done_last=True)
    rows = rows_by_step(buf.sample(400, np.random.default_rng(0)))
    # r_t + 0.5 r_{t+1} + 0.25 r_{t+2}; the window stops at the terminal step 3 (discount 0).
    assert rows == {
        0: {"reward": 2.75, "discount": 0.125, "done": False, "next_t": 3, "mc": 3.25},
        1: {"reward": 4.5, "discount": 0.0, "done": True, "next_t": 4, "mc": 4.5},
        2: {"reward": 5.0, "discount": 0.0, "done": True, "next_t": 4, "mc": 5.0},
        3: {"reward": 4.0, "discount": 0.0, "done": True, "next_t": 4, "mc": 4.0},
    }


def test_nstep_truncated_and_running_episode_bootstrap():
    buf = ReplayBuffer(OBJ_SPEC, 100, gamma=0.5, n_step=3)
    run_episode(buf, OBJ_SPEC, 0, [1.0, 2.0, 3.0], done_last=False, truncated_last=True, success=False)
    rows = rows_by_step(buf.sample(300, np.random.default_rng(1)))
    # Time-limit truncation is not terminal: the shortened window bootstraps from o_3.
    assert rows[1] == {"reward": 2 + 1.5, "discount": 0.25, "done": False, "next_t": 3, "mc": 3.5}
    assert rows[2] == {"reward": 3.0, "discount": 0.5, "done": False, "next_t": 3, "mc": 3.0}

    buf = ReplayBuffer(OBJ_SPEC, 100, gamma=0.5, n_step=3)
    run_episode(buf, OBJ_SPEC, 0, [0.0, 1.0], done_last=False, end=False)
    rows = rows_by_step(buf.sample(200, np.random.default_rng(2)))
    # Running episode: steps are sampleable, window stops at the newest step, MC is the placeholder.
    assert rows[0] == {"reward": 0.5, "discount": 0.25, "done": False, "next_t": 2, "mc": 0.0}
    buf.add_step(np.zeros(7), np.zeros(7), 1.0, 1.0, make_obs(OBJ_SPEC, 0, 3), done=True)
    buf.end_episode(True)
    rows = rows_by_step(buf.sample(300, np.random.default_rng(3)))
    assert rows[0] == {"reward": 0.75, "discount": 0.0, "done": True, "next_t": 3, "mc": 0.75}
    assert rows[1]["mc"] == 1.5


def test_mc_returns_and_one_step_defaults():
    buf = ReplayBuffer(OBJ_SPEC, 100, gamma=0.9)
    run_episode(buf, OBJ_SPEC, 0, [0.0, 0.0, 1.0])
    (ep,) = list(buf.episodes())
    np.testing.assert_allclose(ep.mc_return, [0.81, 0.9, 1.0], rtol=1e-6)
    assert ep.success is True and ep.obs["state"].shape == (4, 7)
    rows = rows_by_step(buf.sample(100, np.random.default_rng(0)))
    assert [rows[t]["next_t"] for t in range(3)] == [1, 2, 3]
    assert rows[0]["discount"] == pytest.approx(0.9) and rows[2]["discount"] == 0.0


def test_frames_are_shared_between_obs_and_next_obs():
    cap, T = 60, 10
    buf = ReplayBuffer(IMG_SPEC, cap)
    run_episode(buf, IMG_SPEC, 3, [0.0] * T)
    assert len(buf) == T and buf.num_frames == T + 1
    b = buf.sample(64, np.random.default_rng(0))
    t = b["obs"]["state"][:, 1].astype(int)
    np.testing.assert_array_equal(b["next_obs"]["image"][:, 0, 0, 0], (30 + t + 1) % 256)
    np.testing.assert_array_equal(b["obs"]["depth"][:, 0, 0], (30 + t) % 256)
    # Memory is one frame per transition plus small per-episode headroom, never two copies.
    frame = 8 * 8 * 4 + 14 * 4
    assert buf.nbytes == estimate_bytes(IMG_SPEC, cap)
    assert frame_capacity(cap) * frame < buf.nbytes < 1.5 * cap * frame + cap * 100


def test_eviction_drops_oldest_whole_episodes_and_bounds_memory():
    buf = ReplayBuffer(OBJ_SPEC, 20)
    nbytes = buf.nbytes
    for ep in range(10):
        run_episode(buf, OBJ_SPEC, ep, [0.0] * 6)
        assert len(buf) <= 20 and buf.num_frames <= buf.frame_capacity
    kept = [e.episode_id for e in buf.episodes()]
    assert kept == [7, 8, 9] and len(buf) == 18 and buf.nbytes == nbytes
    b = buf.sample(500, np.random.default_rng(0))
    assert set(b["obs"]["state"][:, 0].astype(int)) == {7, 8, 9}
    assert np.all(b["next_obs"]["state"][:, 0] == b["obs"]["state"][:, 0])
    assert np.all(b["next_obs"]["state"][:, 1] == b["obs"]["state"][:, 1] + 1)

    # Export while the adder keeps going: episodes evicted meanwhile are skipped, never garbage.
    buf = ReplayBuffer(OBJ_SPEC, 20)
    for ep in range(3):
        run_episode(buf, OBJ_SPEC, ep, [0.0] * 6)
    it = buf.episodes()
    assert next(it).episode_id == 0
    for ep in (3, 4):
        run_episode(buf, OBJ_SPEC, ep, [0.0] * 6)
    rest = list(it)
    assert [e.episode_id for e in rest] == [2] and np.all(rest[0].obs["state"][:, 0] == 2)

    small = ReplayBuffer(OBJ_SPEC, 4)
    small.start_episode(make_obs(OBJ_SPEC, 0, 0))
    for t in range(4):
        small.add_step(np.zeros(7), np.zeros(7), 0.0, 0.0, make_obs(OBJ_SPEC, 0, t + 1), done=False)
    with pytest.raises(CapacityError):
        small.add_step(np.zeros(7), np.zeros(7), 0.0, 0.0, make_obs(OBJ_SPEC, 0, 5), done=False)


def test_next_lambda_is_the_arbiters_lambda_at_the_bootstrap_step():
    buf = ReplayBuffer(OBJ_SPEC, 100, gamma=0.5, n_step=2)
    buf.start_episode(make_obs(OBJ_SPEC, 0, 0))
    lambdas = [0.1, 0.2, 0.3, 0.4, 0.5]
    for t, lam in enumerate(lambdas):
        buf.add_step(np.zeros(7), np.zeros(7), lam, 0.0, make_obs(OBJ_SPEC, 0, t + 1),
                     done=False, truncated=t == 4, intervention=t == 3)
    buf.end_episode(False)
    batch = buf.sample(300, np.random.default_rng(0))
    assert batch["next_lambda"].shape == (300, 7)   # per action dimension
    got = {int(t): float(v) for t, v in zip(batch["obs"]["state"][:, 1], batch["next_lambda"][:, 0])}
    # step t bootstraps at t+2: lambda of that step; 1 where a human acted (t+2 = 3) or the
    # episode has no such step (t = 3, 4).
    assert got == {0: pytest.approx(0.3), 1: 1.0, 2: pytest.approx(0.5), 3: 1.0, 4: 1.0}
    np.testing.assert_array_equal(batch["next_lambda"], batch["next_lambda"][:, :1].repeat(7, axis=1))


def test_lambda_per_dimension_is_stored_reloaded_and_bootstrapped(tmp_path):
    """Per-group VGM: the replay keeps each dimension's lambda, on disk too, for the gated TD target."""
    per_dim = np.array([0.8, 0.8, 0.8, 0.5, 0.5, 0.5, 0.0], np.float32)
    buf = ReplayBuffer(OBJ_SPEC, 100, tmp_path, gamma=0.5, n_step=1)
    buf.start_episode(make_obs(OBJ_SPEC, 0, 0))
    for t in range(3):
        buf.add_step(np.zeros(7), np.zeros(7), per_dim * (t + 1) / 3, 0.0, make_obs(OBJ_SPEC, 0, t + 1),
                     done=t == 2)
    buf.end_episode(True)
    for b in (buf, ReplayBuffer(OBJ_SPEC, 100, tmp_path, gamma=0.5, n_step=1)):
        ep = next(b.episodes())
        np.testing.assert_allclose(ep.lambda_, [per_dim / 3, per_dim * 2 / 3, per_dim])
        batch = b.sample(64, np.random.default_rng(0))
        first = batch["obs"]["state"][:, 1] == 0
        np.testing.assert_allclose(batch["next_lambda"][first], np.tile(per_dim * 2 / 3, (first.sum(), 1)), 1e-6)
    with pytest.raises(ValueError, match="lambda_"):
        buf.start_episode(make_obs(OBJ_SPEC, 0, 0))
        buf.add_step(np.zeros(7), np.zeros(7), np.zeros(3), 0.0, make_obs(OBJ_SPEC, 0, 1), done=False)


def test_version_1_files_load_with_one_lambda_for_every_dimension(tmp_path):
    """Replays written before per-dimension lambda (format 1: one f32) still load."""
    import struct
    import zlib

    from resrl.replay import storage
    buf = ReplayBuffer(OBJ_SPEC, 100, tmp_path, n_step=1)
    run_episode(buf, OBJ_SPEC, 0, [0.0, 1.0])
    path = next(tmp_path.glob("episode-*.rrb"))
    data = bytearray(path.read_bytes())
    spec, _, _, pos = storage.read_header(path, bytes(data))
    head = bytes(data[:pos])
    v = len(storage.MAGIC)
    version_1 = bytearray(head)
    version_1[v:v + 4] = (1).to_bytes(4, "little")
    version_1[pos - 4:pos] = struct.pack("<I", zlib.crc32(bytes(version_1[v:pos - 4])))
    out = bytearray(version_1)
    new_fields = storage.nbytes(storage.STEP_FIELDS)
    for rtype, payload in storage._records(path, bytes(data), pos):
        if rtype == storage.STEP:   # action, residual, then the 7 lambdas -> the first one only
            lam_at = 2 * 7 * 4
            payload = payload[:lam_at + 4] + payload[lam_at + 7 * 4:]
            assert len(payload) == new_fields - 6 * 4 + storage.nbytes(spec)
        rec = bytes([rtype]) + len(payload).to_bytes(4, "little")
        out += rec + struct.pack("<I", zlib.crc32(payload, zlib.crc32(rec))) + payload
    path.write_bytes(bytes(out))
    reloaded = ReplayBuffer(OBJ_SPEC, 100, tmp_path, n_step=1)
    ep = next(reloaded.episodes())
    assert ep.lambda_.shape == (2, 7) and len(reloaded) == 2


def test_mixed_sampling_ratio_and_empty_sides():
    online, offline = ReplayBuffer(OBJ_SPEC, 100), ReplayBuffer(OBJ_SPEC, 100, name="offline")
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        sample_mixed(online, offline, 8, rng=rng)
    run_episode(offline, OBJ_SPEC, 2, [0.0] * 5)
    assert np.all(sample_mixed(online, offline, 32, 0.25, rng=rng)["obs"]["state"][:, 0] == 2)
    assert np.all(sample_mixed(None, offline, 32, 0.25, rng=rng)["obs"]["state"][:, 0] == 2)
    run_episode(online, OBJ_SPEC, 1, [0.0] * 5)
    b = sample_mixed(online, offline, 256, 0.25, rng=rng)
    src = b["obs"]["state"][:, 0]
    assert (src == 2).sum() == 64 and (src == 1).sum() == 192
    assert b["next_obs"]["object_poses"].shape == (256, 14) and b["reward"].shape == (256,)


def _fill_dir(directory):
    buf = ReplayBuffer(IMG_SPEC, 200, directory=directory, n_step=2)
    run_episode(buf, IMG_SPEC, 0, [0.0, 0.0, 1.0], intervention_at=(1,), meta={"task": "pick", "ok": 1})
    run_episode(buf, IMG_SPEC, 1, [0.0, 0.0], success=False, done_last=False, truncated_last=True)
    run_episode(buf, IMG_SPEC, 2, [0.0] * 3, end=False)
    buf.abort_episode()
    run_episode(buf, IMG_SPEC, 3, [0.0, 0.5], end=False, done_last=False)  # "crash": never ended
    return buf


def test_persistence_round_trip_is_bit_identical(tmp_path):
    buf = _fill_dir(tmp_path)  # left with a running episode, as if the process died
    again = ReplayBuffer.load(tmp_path, 200, n_step=2)
    assert (len(again), again.num_frames) == (len(buf), buf.num_frames) == (3 + 2 + 2, 4 + 3 + 3)
    before, after = list(buf.episodes()), list(again.episodes())
    assert [e.episode_id for e in after] == [0, 1, 3]  # the aborted episode 2 stays on disk only
    assert [e.success for e in after] == [True, False, None] and after[0].meta == {"task": "pick", "ok": 1}
    for a, b in zip(before, after):
        for k in IMG_SPEC:
            assert a.obs[k].dtype == b.obs[k].dtype and a.obs[k].tobytes() == b.obs[k].tobytes()
        for k in ("action", "residual", "lambda_", "reward", "done", "truncated", "intervention",
                  "mc_return"):
            assert getattr(a, k).tobytes() == getattr(b, k).tobytes(), k
    assert after[0].intervention.tolist() == [False, True, False]
    # The unfinished episode gets MC returns as if truncated (it was 0 while running).
    np.testing.assert_allclose(after[2].mc_return, [0.495, 0.5], rtol=1e-6)
    # Same memory layout -> same batches from the same seed (the intervention flag included).
    x, y = buf.sample(64, np.random.default_rng(5)), again.sample(64, np.random.default_rng(5))
    for k in ("action", "residual", "reward", "discount", "done", "intervention", "lambda"):
        np.testing.assert_array_equal(x[k], y[k])
    np.testing.assert_array_equal(x["next_obs"]["image"], y["next_obs"]["image"])
    assert x["intervention"].any()
    # New episodes continue after the highest id on disk, aborted ones included.
    assert again.start_episode(make_obs(IMG_SPEC, 9, 0)) == 4


def _last_step_file(tmp_path):
    """A file whose last record is the 4th step; returns (path, offset of that record, buf)."""
    buf = ReplayBuffer(OBJ_SPEC, 100, directory=tmp_path / "src")
    run_episode(buf, OBJ_SPEC, 0, [0.0, 0.0, 0.0], end=False, done_last=False, intervention_at=(2,))
    (path,) = (tmp_path / "src").iterdir()
    start = path.stat().st_size
    buf.add_step(np.ones(7), np.ones(7), 1.0, 1.0, make_obs(OBJ_SPEC, 0, 4), done=False)
    return path, start, buf


def _reload_damaged(tmp_path, path, mutate):
    dst = tmp_path / "dst"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir()
    data = bytearray(path.read_bytes())
    (dst / path.name).write_bytes(mutate(data))
    (dst / "episode-00000001.tmp").write_bytes(b"partial")  # crash inside start_episode: ignored
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        buf = ReplayBuffer.load(dst, 100)
    return buf, [str(w.message) for w in caught]


def test_crash_mid_write_keeps_acknowledged_steps(tmp_path):
    path, start, _ = _last_step_file(tmp_path)
    size = path.stat().st_size
    damages = [lambda d, n=n: d[:n] for n in (start + 1, start + 4, start + 9, start + 10, size - 1)]
    for off in (start, start + 3, start + 7, start + 20, size - 1):  # type, length, crc, payload
        def flip(d, off=off):
            d[off] ^= 0x40
            return d
        damages.append(flip)
    for damage in damages:
        buf, msgs = _reload_damaged(tmp_path, path, damage)
        (ep,) = list(buf.episodes())
        assert len(buf) == 3 and ep.success is None
        assert ep.intervention.tolist() == [False, False, True]
        np.testing.assert_array_equal(ep.obs["state"][:, 1], [0, 1, 2, 3])
        assert any(path.name in m and f"offset {start}" in m for m in msgs), msgs
    # A clean cut at the record boundary is just an unfinished episode: no warning.
    buf, msgs = _reload_damaged(tmp_path, path, lambda d: d[:start])
    assert len(buf) == 3 and not msgs
    buf, _ = _reload_damaged(tmp_path, path, lambda d: d)
    assert len(buf) == 4


def test_every_call_is_fsynced_before_it_returns(tmp_path, monkeypatch):
    synced = []  # file size seen by each fsync of a regular file

    def spy(fd, real=os.fsync):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            synced.append(os.fstat(fd).st_size)
        real(fd)
    monkeypatch.setattr(os, "fsync", spy)
    buf = ReplayBuffer(OBJ_SPEC, 10, directory=tmp_path)
    calls = [lambda: buf.start_episode(make_obs(OBJ_SPEC, 0, 0)),
             lambda: buf.add_step(np.zeros(7), np.zeros(7), 0.0, 0.0, make_obs(OBJ_SPEC, 0, 1), done=False),
             lambda: buf.add_step(np.zeros(7), np.zeros(7), 0.0, 1.0, make_obs(OBJ_SPEC, 0, 2), done=True),
             lambda: buf.end_episode(True)]
    for call in calls:
        n = len(synced)
        call()
        (path,) = tmp_path.glob("*.rrb")
        assert len(synced) > n and synced[-1] == path.stat().st_size


def test_bad_header_or_version_is_a_clear_error(tmp_path):
    path, _, _ = _last_step_file(tmp_path)
    version_at = len(MAGIC)
    json_at = version_at + 8 + 2

    def bump_version(d):
        d[version_at:version_at + 4] = (FORMAT_VERSION + 98).to_bytes(4, "little")
        return d

    def flip_json(d):
        d[json_at] ^= 0x01
        return d
    damages = ((bump_version, "version"), (flip_json, "header"), (lambda d: b"junk" + d, "magic"))
    for mutate, what in damages:
        with pytest.raises(ReplayFormatError, match=what) as err:
            _reload_damaged(tmp_path, path, mutate)
        assert path.name in str(err.value)
    with pytest.raises(ReplayFormatError, match="obs_spec"):
        ReplayBuffer(IMG_SPEC, 10, directory=path.parent)


def test_misuse_raises_before_anything_is_written(tmp_path):
    buf = ReplayBuffer(OBJ_SPEC, 10, directory=tmp_path)
    with pytest.raises(RuntimeError):
        buf.add_step(np.zeros(7), np.zeros(7), 0.0, 0.0, make_obs(OBJ_SPEC, 0, 1), done=False)
    buf.start_episode(make_obs(OBJ_SPEC, 0, 0))
    with pytest.raises(RuntimeError):
        buf.start_episode(make_obs(OBJ_SPEC, 0, 0))
    with pytest.raises(ValueError):
        buf.add_step(np.full(7, np.nan), np.zeros(7), 0.0, 0.0, make_obs(OBJ_SPEC, 0, 1), done=False)
    bad = make_obs(OBJ_SPEC, 0, 1)
    bad["object_conf"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError):
        buf.add_step(np.zeros(7), np.zeros(7), 0.0, 0.0, bad, done=False)
    buf.add_step(np.zeros(7), np.zeros(7), 0.0, 1.0, make_obs(OBJ_SPEC, 0, 1), done=True)
    with pytest.raises(RuntimeError):
        buf.add_step(np.zeros(7), np.zeros(7), 0.0, 0.0, make_obs(OBJ_SPEC, 0, 2), done=False)
    buf.end_episode(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(ReplayBuffer.load(tmp_path, 10)) == 1


def test_concurrent_adder_and_sampler():
    buf = ReplayBuffer(OBJ_SPEC, 50, n_step=3, gamma=0.5)
    errors, stop = [], threading.Event()

    def adder():
        try:
            for ep in range(60):
                run_episode(buf, OBJ_SPEC, ep, [1.0] * (3 + ep % 5))
        except Exception as exc:  # surfaced by the assert below
            errors.append(exc)
        finally:
            stop.set()

    def sampler():
        rng, n = np.random.default_rng(0), 0
        try:
            while not stop.is_set() or n == 0:
                if len(buf) == 0:
                    continue
                b = buf.sample(64, rng)
                o, nx = b["obs"]["state"], b["next_obs"]["state"]
                h = nx[:, 1] - o[:, 1]
                assert np.all(nx[:, 0] == o[:, 0]) and np.all((h >= 1) & (h <= 3))
                np.testing.assert_allclose(b["reward"], (1 - 0.5 ** h) / 0.5)
                np.testing.assert_array_equal(o[:, 2:], b["obs"]["base_action"][:, 2:])
                n += 1
        except Exception as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=adder), threading.Thread(target=sampler)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=20)
    assert not errors, errors
    assert [e.episode_id for e in buf.episodes()][-1] == 59


def test_mixed_sampling_gathers_like_per_buffer_sampling():
    """ReplayBuffers are gathered in one pass; any buffer with ``sample(n, rng)`` (here a proxy
    of the same buffers) is sampled and concatenated. Same rng -> the same batch, bit for bit."""
    class Proxy:
        def __init__(self, buf):
            self.buf = buf

        def __len__(self):
            return len(self.buf)

        def sample(self, n, rng):
            return self.buf.sample(n, rng)

    online, offline = ReplayBuffer(OBJ_SPEC, 100, n_step=2), ReplayBuffer(OBJ_SPEC, 100, name="offline")
    for ep in range(3):
        run_episode(online, OBJ_SPEC, ep, [0.0, 1.0, 0.5, 2.0], intervention_at=(1,))
    run_episode(offline, OBJ_SPEC, 7, [1.0] * 6)
    fast = sample_mixed(online, offline, 50, 0.3, rng=np.random.default_rng(5))
    generic = sample_mixed(Proxy(online), Proxy(offline), 50, 0.3, rng=np.random.default_rng(5))

    def flat(b, prefix=""):
        out = {}
        for k, v in b.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
        return out
    f, g = flat(fast), flat(generic)
    assert f.keys() == g.keys() and "next_lambda" in f
    for k in f:
        assert f[k].dtype == g[k].dtype and np.array_equal(f[k], g[k]), k
    assert (f["obs.state"][:, 0] == 7).sum() == 15
