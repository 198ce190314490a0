"""RLPD-style symmetric sampling: each batch mixes online and offline (demo/prior) data."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from resrl.replay.buffer import ReplayBuffer, sample_parts


def sample_mixed(online, offline, batch_size: int, offline_ratio: float = 0.5, *,
                 rng: np.random.Generator) -> dict:
    """``round(batch_size * offline_ratio)`` samples from ``offline``, the rest from ``online``
    (RLPD symmetric sampling); the one mixed sampler of the learner, the in-process runner and
    the tests.

    An empty (or None) side contributes nothing and the other fills the whole batch, e.g. before
    the first online step. Rows are online first, then offline. ValueError if both are empty.
    ``ReplayBuffer``s are gathered straight into one batch (``sample_parts``); any other buffer
    with ``len()`` and ``sample(n, rng) -> dict`` is sampled and concatenated, same rng order.
    """
    n_on, n_off = split_counts(online, offline, batch_size, offline_ratio)
    parts = [(buf, n) for buf, n in ((online, n_on), (offline, n_off)) if n > 0]
    if all(isinstance(buf, ReplayBuffer) for buf, _ in parts):
        return sample_parts(parts, rng)
    return concat_batches([buf.sample(n, rng) for buf, n in parts])


def concat_batches(batches) -> dict:
    """Concatenate numpy batches (nested dicts of arrays) along the batch dim."""
    batches = [b for b in batches if b is not None]
    if len(batches) == 1:
        return dict(batches[0])
    return {k: concat_batches([b[k] for b in batches]) if isinstance(v, Mapping)
            else np.concatenate([b[k] for b in batches], axis=0) for k, v in batches[0].items()}


def split_counts(online, offline, batch_size: int, offline_ratio: float) -> tuple[int, int]:
    """(rows from online, rows from offline) for one mixed batch; any buffer with ``len()``."""
    if not 0.0 <= offline_ratio <= 1.0:
        raise ValueError(f"offline_ratio must be in [0, 1], got {offline_ratio}")
    n_online = 0 if online is None else len(online)
    n_offline = 0 if offline is None else len(offline)
    if n_online == 0 and n_offline == 0:
        raise ValueError("mixed sampling: both buffers are empty")
    n_off = int(round(batch_size * offline_ratio))
    if n_offline == 0:
        n_off = 0
    elif n_online == 0:
        n_off = batch_size
    return batch_size - n_off, n_off
