"""Keyboard reward and intervention logic (ROS-free; the keyboard node feeds it key presses).

Keys
  s  start episode        y  success (reward 1)     n  failure        r  reset
  p  pause / resume       i  toggle intervention (human takeover)
  while intervening (letters, since arrow keys are not portable in raw terminal mode):
     x+ 'k'  x- 'j'   y+ 'l'  y- 'h'   z+ 'u'  z- 'd'   gripper toggle 'g'
  q  quit the UI
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from resrl.actions import ACTION_DIM, GRIPPER, TRANSLATION

# EpisodeEvent codes (mirrors msg/EpisodeEvent.msg so this module stays ROS-free).
START, SUCCESS, FAILURE, RESET, ABORT, PAUSE, RESUME = 0, 1, 2, 3, 4, 5, 6

MOVE_KEYS = {
    "k": np.array([1.0, 0.0, 0.0]), "j": np.array([-1.0, 0.0, 0.0]),
    "l": np.array([0.0, 1.0, 0.0]), "h": np.array([0.0, -1.0, 0.0]),
    "u": np.array([0.0, 0.0, 1.0]), "d": np.array([0.0, 0.0, -1.0]),
}
EVENT_KEYS = {"s": START, "y": SUCCESS, "n": FAILURE, "r": RESET}

HELP = ("keys: s=start y=success n=failure r=reset p=pause/resume i=intervene "
        "| while intervening: k/j=x+/- l/h=y+/- u/d=z+/- g=gripper | q=quit")


@dataclass
class TeleopConfig:
    step_m: float = 0.01          # translation per key press while intervening
    success_reward: float = 1.0


@dataclass
class KeyResult:
    events: List[int] = field(default_factory=list)   # EpisodeEvent codes to publish
    intervention_changed: bool = False                # publish an Intervention message
    quit: bool = False
    message: str = ""


class KeyboardTeleop:
    """Turns key presses into episode events and an absolute teleop action."""

    def __init__(self, cfg: TeleopConfig = TeleopConfig()):
        self.cfg = cfg
        self.paused = False
        self.intervening = False
        self.target: Optional[np.ndarray] = None   # absolute action while intervening
        self._ee: Optional[np.ndarray] = None

    def update_state(self, state: np.ndarray) -> None:
        """Latest proprioceptive state [pos(3), rotvec(3), gripper]: takeover starts from here."""
        self._ee = np.asarray(state, dtype=np.float32)

    def press(self, key: str) -> KeyResult:
        r = KeyResult()
        if key == "q":
            r.quit = True
        elif key in EVENT_KEYS:
            r.events.append(EVENT_KEYS[key])
            r.message = {START: "episode start", SUCCESS: "success", FAILURE: "failure", RESET: "reset"}[EVENT_KEYS[key]]
        elif key == "p":
            self.paused = not self.paused
            r.events.append(PAUSE if self.paused else RESUME)
            r.message = "paused" if self.paused else "resumed"
        elif key == "i":
            if not self.intervening and self._ee is None:
                r.message = "no robot state yet: cannot take over"
                return r
            self.intervening = not self.intervening
            self.target = self._ee.copy() if self.intervening else None
            r.intervention_changed = True
            r.message = "intervention ON" if self.intervening else "intervention OFF"
        elif self.intervening and key in MOVE_KEYS:
            self.target[TRANSLATION] += self.cfg.step_m * MOVE_KEYS[key]
            r.intervention_changed = True
        elif self.intervening and key == "g":
            self.target[GRIPPER] = 0.0 if self.target[GRIPPER][0] > 0.5 else 1.0
            r.intervention_changed = True
        else:
            r.message = HELP
        return r

    def teleop_action(self) -> np.ndarray:
        """The absolute action while intervening (empty when not)."""
        if not self.intervening or self.target is None:
            return np.zeros(0, dtype=np.float32)
        assert self.target.shape == (ACTION_DIM,)
        return self.target.astype(np.float32)
