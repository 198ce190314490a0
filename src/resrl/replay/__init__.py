"""Replay storage for the residual learner: episode buffer, on-disk format, mixed sampling.

See ``buffer.py`` for the memory layout and sampling semantics and ``storage.py`` for the
crash-safe episode file format.
"""
from resrl.replay.buffer import (CapacityError, Episode, ReplayBuffer, discounted_returns,
                                 estimate_bytes, frame_capacity)
from resrl.replay.sampling import sample_mixed
from resrl.replay.storage import FORMAT_VERSION, ReplayFormatError

__all__ = ["CapacityError", "Episode", "FORMAT_VERSION", "ReplayBuffer", "ReplayFormatError",
           "discounted_returns", "estimate_bytes", "frame_capacity", "sample_mixed"]
