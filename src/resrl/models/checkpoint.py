"""Checkpoints and over-the-wire weights, loadable with ``torch.load(weights_only=True)``.

Nothing pickled but tensors, strings, numbers and dicts: a checkpoint from an untrusted
place (or a corrupted topic message) cannot execute code. Checkpoint layout::

    {"format": "resrl.checkpoint", "format_version": 1, "version": int,
     "config_json": str, "modules": {name: state_dict}, "extra": {str: int | float | bool}}

A weight payload (PolicyWeights.payload) is ``torch.save`` of one module's state_dict.
Loading validates everything (hash, keys, shapes, finiteness) before touching the module, so
a bad payload leaves the running policy exactly as it was.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from resrl.fileio import fsync_dir

FORMAT_NAME = "resrl.checkpoint"
FORMAT_VERSION = 1
StateDict = dict[str, Tensor]


class CheckpointError(ValueError):
    """A checkpoint or weight payload is unreadable, corrupted or does not fit the module."""


def _config_json(cfg: Any) -> str:
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    return json.dumps(data, sort_keys=True)


def _plain_numbers(extra: Mapping[str, Any] | None) -> dict[str, int | float | bool]:
    extra = dict(extra or {})
    bad = {k: type(v).__name__ for k, v in extra.items()
           if not isinstance(k, str) or not isinstance(v, (int, float, bool))}
    if bad:
        raise TypeError(f"checkpoint extra must map str -> int/float/bool; bad entries: {bad}")
    return extra


def save_checkpoint(path: str | Path, modules: Mapping[str, nn.Module], cfg: Any, version: int,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Atomically write ``modules``' state_dicts + config + version to ``path``.

    Written to a temp file in the same directory, fsynced, then ``os.replace``d: a crash or
    error mid-save leaves the previous checkpoint intact.
    """
    path = Path(path)
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "version": int(version),
        "config_json": _config_json(cfg),
        "modules": {name: {k: v.detach().cpu() for k, v in m.state_dict().items()}
                    for name, m in modules.items()},
        "extra": _plain_numbers(extra),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def load_checkpoint(path: str | Path) -> tuple[dict[str, StateDict], dict, int, dict]:
    """-> (state_dicts by module name, config dict, version, extra). Raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle opcodes outside the allow-list, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: not a {FORMAT_NAME} file")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {data.get('format_version')} unsupported "
                              f"(expected {FORMAT_VERSION})")
    modules, extra, version = data.get("modules"), data.get("extra"), data.get("version")
    if not isinstance(modules, dict) or not all(_is_state_dict(sd) for sd in modules.values()):
        raise CheckpointError(f"{path}: 'modules' must map names to state_dicts of tensors")
    if not isinstance(version, int) or not isinstance(extra, dict):
        raise CheckpointError(f"{path}: missing or malformed 'version' / 'extra'")
    try:
        cfg = json.loads(data.get("config_json", ""))
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: malformed config_json ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: config_json must be a JSON object")
    return modules, cfg, version, extra


def load_state_dict_checked(module: nn.Module, state_dict: Any, what: str = "weights") -> None:
    """Load ``state_dict`` into ``module`` only if every key, shape and value fits.

    (``nn.Module.load_state_dict`` copies the tensors that fit before raising on the rest,
    which would leave a half-updated policy.)
    """
    if not _is_state_dict(state_dict):
        raise CheckpointError(f"{what}: not a state_dict of tensors")
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(state_dict)), sorted(set(state_dict) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{what}: key mismatch (missing {missing[:5]}, unexpected {unexpected[:5]}"
                              f"{', ...' if len(missing) > 5 or len(unexpected) > 5 else ''})")
    shapes = [f"{k}: {tuple(v.shape)} vs module {tuple(own[k].shape)}"
              for k, v in state_dict.items() if v.shape != own[k].shape]
    if shapes:
        raise CheckpointError(f"{what}: shape mismatch: {shapes[:5]}")
    nonfinite = [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise CheckpointError(f"{what}: non-finite values in {nonfinite[:5]}")
    module.load_state_dict(state_dict)


def serialize_state_dict(module: nn.Module) -> bytes:
    """The PolicyWeights payload for ``module`` (format "torch_state_dict")."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buf)
    return buf.getvalue()


def payload_sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def deserialize_into(module: nn.Module, payload: bytes, sha256: str | None = None) -> None:
    """Verify ``payload`` (against ``sha256`` when given) and load it into ``module``.

    Raises CheckpointError on hash mismatch, corruption or any mismatch with the module; the
    module is untouched in that case.
    """
    payload = bytes(payload)
    if sha256 is not None:
        actual = payload_sha256(payload)
        if actual != sha256.strip().lower():
            raise CheckpointError(f"weights: sha256 mismatch (expected {sha256}, got {actual}); "
                                  "payload corrupted or truncated in transit")
    try:
        state_dict = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"weights: corrupted payload ({type(exc).__name__}: {exc})") from exc
    load_state_dict_checked(module, state_dict)
