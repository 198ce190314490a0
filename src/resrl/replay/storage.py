"""Crash-safe, append-only episode files: one file per episode, ``episode-<id>.rrb``.

Layout (all integers little-endian)::

    header : MAGIC(8) | version u32 | json_len u32 | json (utf-8) | crc32 u32 (of version..json)
             json = {"obs_spec": [[key, shape, dtype], ...], "episode_id": int, "meta": {...}}
    records: type u8 | length u32 | crc32 u32 | payload[length]
             crc32 covers type + length + payload, so a flipped type/length byte is caught too.
      OBS0  (1): obs_0 arrays, raw bytes in spec order
      STEP  (2): action f32[7] | residual f32[7] | lambda f32[7] | reward f32 | done u8 |
                 truncated u8 | intervention u8 | next_obs arrays in spec order
                 (version 1 files, still read: one lambda f32 per step, the same for every dimension)
      END   (3): success u8
      ABORT (4): empty (operator reset mid-episode: kept on disk as evidence, never reloaded)

The header and OBS0 are written to a temp file, fsynced and renamed, so a file under its final
name always has a complete header; a bad header is therefore real corruption -> ReplayFormatError.
Every later record is fsynced before ``append`` returns. On read, the first truncated or
CRC-failing record and everything after it is dropped with a warning (a crash mid-write).
Files are never deleted or rewritten here: the directory is the dataset.
"""
from __future__ import annotations

import json
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from resrl.actions import ACTION_DIM
from resrl.fileio import fsync_dir

FORMAT_VERSION = 2        # 2: lambda per action dimension (per-group VGM); 1: one scalar lambda
READ_VERSIONS = (1, 2)
MAGIC = b"RESRLRB\n"
OBS0, STEP, END, ABORT = 1, 2, 3, 4
_HEAD = struct.Struct("<II")  # version, json_len
_REC = struct.Struct("<BII")  # type, length, crc32
_FILE_RE = re.compile(r"^episode-(\d+)\.rrb$")

# Normalised obs spec: key -> (shape, little-endian dtype), insertion order = serialisation order.
ObsSpec = dict[str, tuple[tuple[int, ...], np.dtype]]

# Per-step scalars/vectors stored in a STEP record before next_obs (and in memory per transition).
STEP_FIELDS: dict[str, tuple[tuple[int, ...], np.dtype]] = {
    "action": ((ACTION_DIM,), np.dtype("<f4")),
    "residual": ((ACTION_DIM,), np.dtype("<f4")),
    "lambda": ((ACTION_DIM,), np.dtype("<f4")),   # the arbiter's lambda per action dimension
    "reward": ((), np.dtype("<f4")),
    "done": ((), np.dtype("bool")),
    "truncated": ((), np.dtype("bool")),
    "intervention": ((), np.dtype("bool")),
}
_STEP_FIELDS_V1 = {**STEP_FIELDS, "lambda": ((), np.dtype("<f4"))}


def _step_fields(version: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    return STEP_FIELDS if version == FORMAT_VERSION else _STEP_FIELDS_V1


class ReplayFormatError(ValueError):
    """An episode file cannot be read at all (bad header, unknown version, spec mismatch)."""


def normalize_spec(obs_spec: dict[str, Any]) -> ObsSpec:
    return {k: (tuple(int(d) for d in shape), np.dtype(dtype).newbyteorder("<"))
            for k, (shape, dtype) in obs_spec.items()}


def nbytes(fields: dict[str, tuple[tuple[int, ...], np.dtype]]) -> int:
    """Bytes of one record of ``fields`` (an obs spec or STEP_FIELDS)."""
    return sum(int(np.prod(shape, dtype=np.int64)) * dt.itemsize for shape, dt in fields.values())


def pack(fields: dict[str, tuple[tuple[int, ...], np.dtype]], values: dict[str, np.ndarray]) -> bytes:
    """Raw bytes of ``values`` in ``fields`` order; values must already have the right shape."""
    return b"".join(np.ascontiguousarray(values[k], dtype=dt).tobytes()
                    for k, (_, dt) in fields.items())


def unpack(fields: dict[str, tuple[tuple[int, ...], np.dtype]], buf: bytes, offset: int = 0) -> dict:
    """Inverse of ``pack`` starting at ``offset``; returns native-endian copies."""
    out = {}
    for k, (shape, dt) in fields.items():
        n = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(buf, dtype=dt, count=n, offset=offset).reshape(shape)
        out[k] = arr.astype(dt.newbyteorder("="))
        offset += n * dt.itemsize
    return out


def episode_path(directory: Path, episode_id: int) -> Path:
    return Path(directory) / f"episode-{episode_id:08d}.rrb"


def list_episode_files(directory: Path) -> list[tuple[int, Path]]:
    """(episode_id, path) of every episode file in ``directory``, oldest id first."""
    found = []
    for p in Path(directory).iterdir():
        m = _FILE_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def _spec_to_json(spec: ObsSpec) -> list:
    return [[k, list(shape), dt.name] for k, (shape, dt) in spec.items()]


def _record_header(rtype: int, payload: bytes) -> bytes:
    head = struct.pack("<BI", rtype, len(payload))
    return _REC.pack(rtype, len(payload), zlib.crc32(payload, zlib.crc32(head)))


class EpisodeWriter:
    """Creates one episode file and appends its records; each call is fsynced when it returns."""

    def __init__(self, directory: Path, episode_id: int, spec: ObsSpec, meta: dict, obs0: bytes):
        directory = Path(directory)
        self.path = episode_path(directory, episode_id)
        header_json = json.dumps({"obs_spec": _spec_to_json(spec), "episode_id": episode_id,
                                  "meta": meta}).encode()
        body = _HEAD.pack(FORMAT_VERSION, len(header_json)) + header_json
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC + body + struct.pack("<I", zlib.crc32(body)) + _record_header(OBS0, obs0) + obs0)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fsync_dir(directory)

    def append(self, rtype: int, payload: bytes) -> None:
        # Raw fd opened per record: nothing buffered in userspace, no handle outlives the call.
        data = memoryview(_record_header(rtype, payload) + payload)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            except BaseException:
                # Cut the half-written record so later records are not hidden behind it on reload.
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


@dataclass
class EpisodeFile:
    """What was recovered from one episode file."""

    episode_id: int
    meta: dict
    obs0: dict[str, np.ndarray]
    steps: list[tuple[dict, dict]] = field(default_factory=list)  # (step fields, next_obs)
    success: bool | None = None  # None: no END record (crashed or still running)
    aborted: bool = False


def read_header(path: Path, data: bytes) -> tuple[ObsSpec, int, dict, int]:
    """Parse the header -> (spec, episode_id, meta, offset of the first record)."""
    spec, episode_id, meta, pos, _ = _read_header(path, data)
    return spec, episode_id, meta, pos


def _read_header(path: Path, data: bytes) -> tuple[ObsSpec, int, dict, int, int]:
    if data[:len(MAGIC)] != MAGIC:
        raise ReplayFormatError(f"{path}: not a resrl replay episode file (bad magic)")
    pos = len(MAGIC)
    if len(data) < pos + _HEAD.size:
        raise ReplayFormatError(f"{path}: corrupted header (file too short)")
    version, jlen = _HEAD.unpack_from(data, pos)
    if version not in READ_VERSIONS:
        raise ReplayFormatError(f"{path}: unknown format version {version} (supported: {list(READ_VERSIONS)})")
    end = pos + _HEAD.size + jlen
    if len(data) < end + 4 or struct.unpack_from("<I", data, end)[0] != zlib.crc32(data[pos:end]):
        raise ReplayFormatError(f"{path}: corrupted header (CRC mismatch or truncated)")
    try:
        header = json.loads(data[pos + _HEAD.size:end])
        spec = normalize_spec({k: (shape, dt) for k, shape, dt in header["obs_spec"]})
        return spec, int(header["episode_id"]), dict(header["meta"]), end + 4, version
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplayFormatError(f"{path}: corrupted header ({exc})") from exc


def _records(path: Path, data: bytes, pos: int) -> Iterator[tuple[int, bytes]]:
    """Valid records from ``pos``; stops with a warning at the first damaged one."""
    while pos < len(data):
        problem = None
        if len(data) - pos < _REC.size:
            problem = "truncated record header"
        else:
            rtype, length, crc = _REC.unpack_from(data, pos)
            payload = data[pos + _REC.size:pos + _REC.size + length]
            if len(payload) < length:
                problem = "truncated record"
            elif zlib.crc32(payload, zlib.crc32(data[pos:pos + 5])) != crc:
                problem = "CRC mismatch"
        if problem:
            warnings.warn(f"{path}: {problem} at offset {pos}; dropping the last "
                          f"{len(data) - pos} bytes (crash mid-write?)", stacklevel=3)
            return
        yield rtype, payload
        pos += _REC.size + length


def read_episode(path: Path, expected_spec: ObsSpec | None = None) -> EpisodeFile:
    """Read one episode file, keeping every intact record before the first damaged one."""
    path = Path(path)
    data = path.read_bytes()
    spec, episode_id, meta, pos, version = _read_header(path, data)
    fields = _step_fields(version)
    if expected_spec is not None and spec != expected_spec:
        raise ReplayFormatError(f"{path}: obs_spec {_spec_to_json(spec)} does not match the "
                                f"buffer's {_spec_to_json(expected_spec)}")
    sizes = {OBS0: nbytes(spec), STEP: nbytes(fields) + nbytes(spec), END: 1, ABORT: 0}
    ep: EpisodeFile | None = None
    for rtype, payload in _records(path, data, pos):
        # A well-framed record in the wrong place is corruption too: stop like for a bad CRC.
        allowed = (OBS0,) if ep is None else (STEP, END, ABORT)
        if rtype not in allowed or sizes[rtype] != len(payload):
            warnings.warn(f"{path}: unexpected record type {rtype} (len {len(payload)}); "
                          "ignoring the rest of the file", stacklevel=2)
            break
        if rtype == OBS0:
            ep = EpisodeFile(episode_id, meta, unpack(spec, payload))
        elif rtype == STEP:
            step = unpack(fields, payload)
            if version == 1:   # one lambda for every dimension
                step["lambda"] = np.full(ACTION_DIM, step["lambda"], np.float32)
            ep.steps.append((step, unpack(spec, payload, nbytes(fields))))
        elif rtype == END:
            ep.success = bool(payload[0])
            break
        else:
            ep.aborted = True
            break
    if ep is None:  # cannot happen for files this module wrote (OBS0 is written with the header)
        raise ReplayFormatError(f"{path}: header without its first observation")
    return ep
