"""RLPD-style symmetric sampling: each batch mixes online and offline (demo/prior) data."""
from __future__ import annotations

import numpy as np

from resrl.replay.buffer import ReplayBuffer, sample_parts


def sample_mixed(online: ReplayBuffer | None, offline: ReplayBuffer | None, batch_size: int,
                 offline_ratio: float = 0.5, *, rng: np.random.Generator) -> dict:
    """``round(batch_size * offline_ratio)`` samples from ``offline``, the rest from ``online``.

    An empty (or None) side contributes nothing and the other fills the whole batch, e.g. before
    the first online step. Rows are online first, then offline. ValueError if both are empty.
    """
    n_on, n_off = split_counts(online, offline, batch_size, offline_ratio)
    parts = [(buf, n) for buf, n in ((online, n_on), (offline, n_off)) if n > 0]
    return sample_parts(parts, rng)


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
