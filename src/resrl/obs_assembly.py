"""Assemble one observation from parts that arrive on separate topics.

Every part is keyed by its header stamp. An observation for stamp ``t`` is complete when each
required part has a message with stamp in ``[t - max_skew_ns, t + max_skew_ns]``; the closest one
is used (sample-and-hold). In lockstep simulation all parts share the stamp exactly
(``max_skew_ns = 0``); on a real robot camera and state clocks differ by a few ms.
"""
from __future__ import annotations

import bisect
import threading
from typing import Any, Dict, Iterable, Optional


class ObservationAssembler:
    def __init__(self, required: Iterable[str], max_skew_ns: int = 0, history: int = 64):
        self.required = tuple(required)
        self.max_skew_ns = int(max_skew_ns)
        self.history = int(history)
        self._stamps: Dict[str, list] = {name: [] for name in self.required}
        self._values: Dict[str, list] = {name: [] for name in self.required}
        self._lock = threading.Lock()

    def add(self, part: str, stamp_ns: int, value: Any) -> None:
        if part not in self._stamps:
            raise KeyError(f"unknown observation part '{part}' (required: {self.required})")
        with self._lock:
            stamps, values = self._stamps[part], self._values[part]
            i = bisect.bisect_left(stamps, stamp_ns)
            if i < len(stamps) and stamps[i] == stamp_ns:
                values[i] = value  # a re-sent message replaces the old one
            else:
                stamps.insert(i, stamp_ns)
                values.insert(i, value)
            if len(stamps) > self.history:
                del stamps[0], values[0]

    def _closest(self, part: str, stamp_ns: int, max_skew_ns: Optional[int] = None) -> Optional[Any]:
        skew = self.max_skew_ns if max_skew_ns is None else int(max_skew_ns)
        stamps = self._stamps[part]
        i = bisect.bisect_left(stamps, stamp_ns)
        best, best_dt = None, None
        for j in (i - 1, i):
            if 0 <= j < len(stamps):
                dt = abs(stamps[j] - stamp_ns)
                if dt <= skew and (best_dt is None or dt < best_dt):
                    best, best_dt = j, dt
        return None if best is None else self._values[part][best]

    def get(self, stamp_ns: int, max_skew_ns: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """All parts for ``stamp_ns``, or None while any is missing. ``max_skew_ns`` overrides the
        assembler's window for this lookup (a stamp that is not on the parts' clock: a key press)."""
        with self._lock:
            out = {}
            for part in self.required:
                value = self._closest(part, stamp_ns, max_skew_ns)
                if value is None:
                    return None
                out[part] = value
            return out

    def missing(self, stamp_ns: int, max_skew_ns: Optional[int] = None) -> list:
        with self._lock:
            return [p for p in self.required if self._closest(p, stamp_ns, max_skew_ns) is None]

    def latest_stamp(self, part: str) -> Optional[int]:
        with self._lock:
            stamps = self._stamps[part]
            return stamps[-1] if stamps else None

    def clear(self) -> None:
        with self._lock:
            for part in self.required:
                self._stamps[part].clear()
                self._values[part].clear()
