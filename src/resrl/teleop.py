"""Operator input -> episode events and human takeover (ROS-free; the keyboard node feeds it).

Two kinds of input:

* **Keys** (the operator console): episode lifecycle and labels, plus a coarse keyboard takeover.

      s  start a train episode (robot reset, then START)   e  start a demo episode (you teleoperate)
      y  success (reward 1)   n  failure   r  reset / abort   p  pause / resume
      i  toggle keyboard takeover; while on: k/j x+/x-  l/h y+/y-  u/d z+/z-  g gripper
      q  quit the console

* **Takeover devices** (a SpaceMouse through ``spacenav_node``'s ``/spacenav/twist`` +
  ``/spacenav/joy``, a gamepad through ``joy_node``'s ``sensor_msgs/Joy``): velocity commands,
  active only while the deadman button is held. Every control period the target moves by
  ``velocity / control_rate_hz`` from where it is, never more than ``max_lead_m`` ahead of the
  measured end effector, so releasing the deadman (or losing the device) stops the arm where it is.

Frames: device axes are mapped onto the robot base frame (franka_ros2: ``fr3_link0``, x away
from the base, y to its left, z up) as seen by an operator standing behind the base looking
along +x; ``operator_yaw_deg`` rotates that about z for an operator standing elsewhere (90: the
operator stands on the robot's right, looking along +y). Angular rates rotate the end effector
about base-frame axes. The takeover reaches the arbiter as an ``Intervention`` with the absolute
action ``[x y z rx ry rz gripper]`` of ``resrl.actions``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial.transform import Rotation

from resrl.actions import ACTION_DIM, GRIPPER, ROTATION, TRANSLATION

# EpisodeEvent codes (mirrors msg/EpisodeEvent.msg so this module stays ROS-free).
START, SUCCESS, FAILURE, RESET, ABORT, PAUSE, RESUME, TIMEOUT = 0, 1, 2, 3, 4, 5, 6, 7

MOVE_KEYS = {
    "k": np.array([1.0, 0.0, 0.0]), "j": np.array([-1.0, 0.0, 0.0]),
    "l": np.array([0.0, 1.0, 0.0]), "h": np.array([0.0, -1.0, 0.0]),
    "u": np.array([0.0, 0.0, 1.0]), "d": np.array([0.0, 0.0, -1.0]),
}
LABEL_KEYS = {"y": SUCCESS, "n": FAILURE}
START_KEYS = {"s": "train", "e": "demo"}

HELP = ("keys: s=start e=demo-episode y=success n=failure r=reset p=pause i=keyboard-takeover q=quit "
        "| takeover: k/j=x+/- l/h=y+/- u/d=z+/- g=gripper")


@dataclass
class TeleopConfig:
    step_m: float = 0.01              # keyboard takeover: translation per key press
    success_reward: float = 1.0
    max_linear_speed: float = 0.10    # device takeover: m/s at full deflection
    max_angular_speed: float = 0.6    # rad/s at full deflection
    max_lead_m: float = 0.05          # the target stays within this of the measured end effector
    deadzone: float = 0.08            # |axis| below this counts as zero (stick / puck noise)
    input_timeout_s: float = 0.5      # no device message for this long = deadman released
    operator_yaw_deg: float = 0.0     # operator's viewing direction about base z (0: looking along +x)


@dataclass
class DeviceMapping:
    """Which device axes / buttons drive what. Axis index -1: unused."""

    linear_axes: Tuple[int, int, int]        # device axes -> base x, y, z velocity
    linear_signs: Tuple[float, float, float]
    angular_axes: Tuple[int, int, int]       # device axes -> angular rate about base x, y, z
    angular_signs: Tuple[float, float, float]
    deadman_button: int                      # takeover while held
    gripper_close_button: int = -1           # -1: unused
    gripper_open_button: int = -1
    gripper_toggle_button: int = -1          # one button toggling open / closed (2-button SpaceMouse)
    full_scale: float = 1.0                  # axis value that means full speed


# spacenav_node: /spacenav/twist (x forward / push away, y left, z up; normalised to ~[-1, 1])
# and /spacenav/joy (buttons: 0 left, 1 right). Hold the right button to take over, the left
# toggles the gripper.
SPACEMOUSE = DeviceMapping(linear_axes=(0, 1, 2), linear_signs=(1.0, 1.0, 1.0),
                           angular_axes=(3, 4, 5), angular_signs=(1.0, 1.0, 1.0),
                           deadman_button=1, gripper_toggle_button=0, full_scale=0.7)
# joy_node with an Xbox-layout pad (axes 0/1 left stick x/y, 3/4 right stick x/y; stick pushed
# left / up is +1; buttons 0 A, 1 B, 4 LB): hold LB, left stick = x/y, right stick up/down = z,
# right stick left/right = yaw, A closes, B opens.
GAMEPAD = DeviceMapping(linear_axes=(1, 0, 4), linear_signs=(1.0, 1.0, 1.0),
                        angular_axes=(-1, -1, 3), angular_signs=(1.0, 1.0, 1.0),
                        deadman_button=4, gripper_close_button=0, gripper_open_button=1)
DEVICES: Dict[str, DeviceMapping] = {"spacemouse": SPACEMOUSE, "gamepad": GAMEPAD}


@dataclass
class KeyResult:
    events: List[int] = field(default_factory=list)   # EpisodeEvent codes to publish
    start: Optional[str] = None                       # episode type to reset into ("train" | "demo")
    intervention_changed: bool = False                # publish an Intervention message
    quit: bool = False
    message: str = ""


def _pressed(buttons: Sequence[int], index: int) -> bool:
    return 0 <= index < len(buttons) and bool(buttons[index])


class KeyboardTeleop:
    """Turns key presses into episode events, episode starts and a coarse absolute takeover."""

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
        elif key in START_KEYS:
            r.start = START_KEYS[key]
            r.message = f"starting a {r.start} episode (robot reset)"
        elif key in LABEL_KEYS:
            r.events.append(LABEL_KEYS[key])
            r.message = "labelled: success" if key == "y" else "labelled: failure"
        elif key == "r":
            r.events.append(RESET)
            r.message = "reset: episode aborted"
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
            r.message = "keyboard takeover ON" if self.intervening else "keyboard takeover OFF"
        elif self.intervening and key in MOVE_KEYS:
            self.target[TRANSLATION] += self.cfg.step_m * MOVE_KEYS[key]
            r.intervention_changed = True
        elif self.intervening and key == "g":
            self.target[GRIPPER] = 0.0 if self.target[GRIPPER][0] > 0.5 else 1.0
            r.intervention_changed = True
        elif key.strip():
            r.message = HELP
        return r

    def teleop_action(self) -> np.ndarray:
        """The absolute action while intervening (empty when not)."""
        if not self.intervening or self.target is None:
            return np.zeros(0, dtype=np.float32)
        assert self.target.shape == (ACTION_DIM,)
        return self.target.astype(np.float32)


@dataclass
class TakeoverStep:
    active: bool
    action: np.ndarray          # absolute action (empty when not active)
    changed: bool               # started or ended this tick
    message: str = ""


class DeviceTeleop:
    """A deadman-gated velocity takeover from one device, integrated at the control rate."""

    def __init__(self, name: str, mapping: DeviceMapping, cfg: TeleopConfig, control_rate_hz: float):
        if control_rate_hz <= 0:
            raise ValueError(f"control_rate_hz must be > 0, got {control_rate_hz}")
        self.name, self.mapping, self.cfg = name, mapping, cfg
        self.dt = 1.0 / control_rate_hz
        yaw = np.deg2rad(cfg.operator_yaw_deg)
        self._frame = Rotation.from_euler("z", yaw).as_matrix()   # operator frame -> base frame
        self.axes = np.zeros(0)
        self.buttons: Tuple[int, ...] = ()
        self.last_input_s: Optional[float] = None
        self.active = False
        self.target: Optional[np.ndarray] = None
        self._ee: Optional[np.ndarray] = None
        self._clicks: List[int] = []   # buttons pressed since the last tick

    def update_state(self, state: np.ndarray) -> None:
        self._ee = np.asarray(state, dtype=np.float64)

    def on_axes(self, axes: Sequence[float], now_s: float) -> None:
        axes = np.asarray(axes, dtype=np.float64).reshape(-1)
        self.axes = np.where(np.isfinite(axes), axes, 0.0)   # a glitching device reads as centred
        self.last_input_s = now_s

    def on_buttons(self, buttons: Sequence[int], now_s: float) -> None:
        buttons = tuple(int(b) for b in buttons)
        # Presses are latched here, not sampled at the tick: a click shorter than a control
        # period still counts.
        self._clicks.extend(i for i, b in enumerate(buttons) if b and not _pressed(self.buttons, i))
        self.buttons = buttons
        self.last_input_s = now_s

    def _axis(self, index: int, sign: float) -> float:
        if index < 0 or index >= len(self.axes):
            return 0.0
        v = float(np.clip(self.axes[index] / self.mapping.full_scale, -1.0, 1.0))
        return sign * v if abs(v) >= self.cfg.deadzone else 0.0

    def velocities(self) -> Tuple[np.ndarray, np.ndarray]:
        """(linear m/s, angular rad/s) in the base frame from the current device reading."""
        m = self.mapping
        lin = np.array([self._axis(i, s) for i, s in zip(m.linear_axes, m.linear_signs)])
        ang = np.array([self._axis(i, s) for i, s in zip(m.angular_axes, m.angular_signs)])
        return self._frame @ lin * self.cfg.max_linear_speed, self._frame @ ang * self.cfg.max_angular_speed

    def tick(self, now_s: float) -> TakeoverStep:
        """One control period: start / continue / end the takeover; returns what to publish."""
        fresh = self.last_input_s is not None and now_s - self.last_input_s <= self.cfg.input_timeout_s
        held = fresh and _pressed(self.buttons, self.mapping.deadman_button)
        if held and not self.active:
            if self._ee is None:
                return TakeoverStep(False, np.zeros(0, np.float32), False, f"{self.name}: no robot state yet")
            self.active, self.target = True, self._ee.astype(np.float64).copy()
            self._clicks.clear()   # clicks before the takeover are not gripper commands
            return TakeoverStep(True, self.target.astype(np.float32), True, f"{self.name} takeover ON")
        if not held and self.active:
            self.active, self.target = False, None
            why = "" if fresh else " (device silent)"
            return TakeoverStep(False, np.zeros(0, np.float32), True, f"{self.name} takeover OFF{why}")
        if not self.active:
            self._clicks.clear()
            return TakeoverStep(False, np.zeros(0, np.float32), False)
        lin, ang = self.velocities()
        t = self.target
        t[TRANSLATION] += lin * self.dt
        if self._ee is not None:   # never run away from an arm that cannot follow
            lead = t[TRANSLATION] - self._ee[TRANSLATION]
            dist = float(np.linalg.norm(lead))
            if dist > self.cfg.max_lead_m:
                t[TRANSLATION] = self._ee[TRANSLATION] + lead * (self.cfg.max_lead_m / dist)
        if np.any(ang):
            t[ROTATION] = (Rotation.from_rotvec(ang * self.dt) * Rotation.from_rotvec(t[ROTATION])).as_rotvec()
        self._gripper_buttons(t)
        return TakeoverStep(True, t.astype(np.float32), False)

    def _gripper_buttons(self, t: np.ndarray) -> None:
        m = self.mapping
        for button in self._clicks:
            if button == m.gripper_close_button:
                t[GRIPPER] = 1.0
            elif button == m.gripper_open_button:
                t[GRIPPER] = 0.0
            elif button == m.gripper_toggle_button:
                t[GRIPPER] = 0.0 if t[GRIPPER][0] > 0.5 else 1.0
        self._clicks.clear()


def mapping_from_params(base: DeviceMapping, params: dict) -> DeviceMapping:
    """A device mapping with the (ROS parameter) overrides in ``params`` applied."""
    values = dict(base.__dict__)
    for key, value in params.items():
        if key not in values:
            raise ValueError(f"unknown device mapping field '{key}' (known: {sorted(values)})")
        values[key] = tuple(value) if isinstance(value, (list, tuple)) else value
    return DeviceMapping(**values)
