"""Scripted stand-ins for the frozen VLA and for the demonstrator (ROS-free).

``ScriptedVLA`` knows the task intent (it reads the object / target poses a VLA would infer from
the image) and emits H-step chunks of absolute TCP targets, re-planned from the current
observation at every call. It fails the last mile with consistent, observation-dependent biases:

* **hover**: its grasp height is too high by ``hover_height + hover_per_m_x * (object_x - 0.5)``
  (the gripper closes on air above the cube),
* **misaligned grasp**: its grasp point is offset by ``grasp_offset_along_yaw`` along the
  cube's face axis (the gripper x axis at the grasp yaw) and it under-rotates the yaw by
  ``yaw_under_rotation`` (fraction of the cube yaw),
* **stops short**: it places the cube ``place_short + place_short_per_m * (|target_xy| - 0.5)``
  short of the zone, radially toward the robot base.

The VLA plans toward biased waypoints (true grasp / place point + ``bias(obs)``), where ``bias``
depends only on the current observation (object pose, target pose, grasp state -> phase). Its
"have I arrived?" decisions use tolerances wider than any bias (one-sided where the correction
moves the TCP) and lateral moves up to ``approach_speed`` are single steps, so adding
``oracle_correction(obs) = -bias(obs)`` to every executed action (chunks re-planned every step or
executed open-loop) makes it hit the true waypoints: that is the residual a perfect learner
would output. Every component is bounded by ``correction_bound`` (translation, per axis) and
``rotation_bound`` (yaw); the gripper component is 0. ``ScriptedExpert`` executes the VLA's
chunks plus that correction (plus optional noise) and reports both actions.

Phases (``TaskPlanner.phase``): ``grasp`` (approach / descend / close / retry; grasp bias),
``lift`` (grasped, rising straight up; no bias), ``place`` (pick_place: carry / lower / release /
back off; place bias), ``done`` (pick_place: released near the believed place and backed off;
waits above, no bias).
"""
from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from resrl.actions import ACTION_DIM
from resrl.configs import from_dict, load_yaml
from resrl.sim.franka_env import MAX_GRIPPER_WIDTH, FrankaTableEnv, SimConfig, rotvec_to_mat, wrap_angle, \
    yaw_of_quat_xyzw

PHASE_GRASP = "grasp"  # approach / descend / close / recover: biased by the grasp offset
PHASE_LIFT = "lift"  # grasped, lifting straight up: unbiased
PHASE_PLACE = "place"  # pick_place: carrying / lowering / releasing / backing off: biased by the place offset
PHASE_DONE = "done"  # pick_place: released near the (believed) place and backed off: wait above, unbiased


@dataclasses.dataclass
class ScriptedVLAConfig:
    """Scripted-VLA chunking, motion profile and last-mile biases (m, rad)."""

    chunk_size: int = 16
    # --- biases (the VLA's consistent last-mile errors) ---
    hover_height: float = 0.0
    hover_per_m_x: float = 0.0
    grasp_offset_along_yaw: float = 0.0
    yaw_under_rotation: float = 0.0
    place_short: float = 0.0
    place_short_per_m: float = 0.0
    # Bounds every bias must respect (the residual's reach): |correction| per translation axis, yaw.
    correction_bound: float = 0.03
    rotation_bound: float = 0.3
    # Stagnation trap (0: off): at its (short) place point the VLA lowers the cube and then holds
    # it there, gripper closed, until the cube is within this radius (m) of the zone centre it
    # sees -- only then does it release. The base alone hovers until the episode ends; a residual
    # that corrects only part of the shortfall freezes there too (V stops rising: the escape
    # gate's regime, VGM paper Sec. III).
    stall_release_radius: float = 0.0
    # --- motion profile (shared by the VLA and the expert) ---
    grasp_height_offset: float = 0.006  # TCP z = cube centre + this at the grasp (pads on the upper cube half)
    pregrasp_height: float = 0.08  # above the grasp point
    approach_speed: float = 0.045  # m per step
    descend_speed: float = 0.03
    lift_speed: float = 0.035
    yaw_speed: float = 0.25  # rad per step
    lift_z: float = 0.15  # pick_lift: TCP height to lift to
    carry_z: float = 0.12  # pick_place: TCP height while carrying
    release_clearance: float = 0.004  # cube bottom above the table when the gripper opens
    settle_steps: int = 1
    close_steps: int = 3
    open_steps: int = 2

    def __post_init__(self):
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        for name in ("hover_height", "grasp_offset_along_yaw", "place_short"):
            v = abs(getattr(self, name))
            if v > self.correction_bound:
                raise ValueError(f"{name}={v} exceeds correction_bound={self.correction_bound}")


@dataclasses.dataclass
class ExpertConfig:
    """Scripted demonstrator: VLA chunk + oracle correction (+ noise)."""

    replan_every: int = 1  # steps between VLA chunk re-plans (1 = re-plan every step)
    noise_std: float = 0.0  # m, Gaussian noise on the translation target (clipped at 2 sigma)
    yaw_noise_std: float = 0.0  # rad
    seed: int = 0


@dataclasses.dataclass
class TaskConfig:
    """One task file (config/tasks/<task>.yaml): ``sim``, ``vla`` and ``expert`` sections."""

    sim: SimConfig = dataclasses.field(default_factory=SimConfig)
    vla: ScriptedVLAConfig = dataclasses.field(default_factory=ScriptedVLAConfig)
    expert: ExpertConfig = dataclasses.field(default_factory=ExpertConfig)

    @property
    def task(self) -> str:
        return self.sim.task


def _task_dirs() -> List[Path]:
    dirs = [Path(__file__).resolve().parents[3] / "config" / "tasks"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share" / "resrl" / "config" / "tasks")
    return dirs


def load_task_config(name_or_path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None) -> TaskConfig:
    """Load ``config/tasks/<name>.yaml`` (or a path). ``overrides``: {"sim": {...}, "vla": {...}}."""
    p = Path(name_or_path)
    if not p.suffix:
        for d in _task_dirs():
            if (d / f"{name_or_path}.yaml").is_file():
                p = d / f"{name_or_path}.yaml"
                break
        else:
            raise FileNotFoundError(f"task config {name_or_path!r} not found in {[str(d) for d in _task_dirs()]}")
    data = load_yaml(p)
    for section, values in (overrides or {}).items():
        data.setdefault(section, {})
        data[section] = {**(data[section] or {}), **dict(values)}
    return from_dict(TaskConfig, data, where=str(p))


# ----------------------------------------------------------------------------- helpers
def _yaw_from_rotvec(rv) -> float:
    r = rotvec_to_mat(rv)
    return math.atan2(r[1, 0], r[0, 0])


def _grasp_yaw(cube_yaw: float, ee_yaw: float) -> float:
    """Cube yaw modulo pi/2, choosing the candidate nearest the current gripper yaw (within +-pi/2)."""
    base = wrap_angle(cube_yaw)
    cands = [base + k * math.pi / 2 for k in range(-4, 5)]
    cands = [c for c in cands if abs(c) <= math.pi / 2 + 1e-6]
    return min(cands, key=lambda c: abs(c - ee_yaw))


@dataclasses.dataclass
class _Obs:
    ee: np.ndarray
    ee_yaw: float
    width: float
    obj: np.ndarray
    obj_yaw: float
    target: np.ndarray


def _parse(obs: Mapping[str, np.ndarray]) -> _Obs:
    st = np.asarray(obs["state"], dtype=np.float64)
    width = float(np.asarray(obs["gripper_width"]).reshape(-1)[0]) if "gripper_width" in obs \
        else float(st[6]) * MAX_GRIPPER_WIDTH
    obj = np.asarray(obs["object_poses"], dtype=np.float64).reshape(-1)[:7]
    return _Obs(ee=st[:3].copy(), ee_yaw=_yaw_from_rotvec(st[3:6]), width=width, obj=obj,
                obj_yaw=yaw_of_quat_xyzw(obj[3:7]),
                target=np.asarray(obs.get("target_pose", np.zeros(7)), dtype=np.float64).reshape(-1)[:7])


class _Traj:
    """Builds an H-step chunk by moving a virtual TCP through waypoints at bounded speed."""

    def __init__(self, p0, yaw0, grip0, horizon, yaw_speed):
        self.p = np.array(p0, dtype=np.float64)
        self.yaw = float(yaw0)
        self.grip = float(grip0)
        self.h = horizon
        self.yaw_speed = yaw_speed
        self.rows: List[np.ndarray] = []

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.h

    def _emit(self):
        self.rows.append(np.array([*self.p, 0.0, 0.0, self.yaw, self.grip]))

    def goto(self, pos, yaw, grip, speed, z_speed=None):
        """Move toward ``pos`` at most ``speed`` per step in xy and ``z_speed`` (default speed) in z.

        Limiting xy and z separately keeps a small lateral offset (<= speed) a one-step move even
        while descending, so "VLA row + constant correction" lands on the corrected waypoint.
        """
        pos = np.asarray(pos, dtype=np.float64)
        z_speed = speed if z_speed is None else z_speed
        self.grip = float(grip)
        while not self.full:
            d = pos - self.p
            nxy = float(np.linalg.norm(d[:2]))
            dy = wrap_angle(yaw - self.yaw)
            if nxy < 1e-6 and abs(d[2]) < 1e-6 and abs(dy) < 1e-6:
                break
            step = d.copy()
            if nxy > speed:
                step[:2] *= speed / nxy
            step[2] = float(np.clip(d[2], -z_speed, z_speed))
            self.p = self.p + step
            self.yaw += float(np.clip(dy, -self.yaw_speed, self.yaw_speed))
            self._emit()
        return self

    def snap(self, pos, yaw):
        """Move the virtual TCP to ``pos``/``yaw`` without emitting steps (the VLA deems it there)."""
        self.p = np.array(pos, dtype=np.float64)
        self.yaw = float(yaw)
        return self

    def hold(self, steps, grip=None):
        if grip is not None:
            self.grip = float(grip)
        for _ in range(int(steps)):
            if self.full:
                break
            self._emit()
        return self

    def chunk(self) -> np.ndarray:
        if not self.rows:
            self._emit()
        while len(self.rows) < self.h:
            self.rows.append(self.rows[-1].copy())
        return np.stack(self.rows[: self.h]).astype(np.float32)


# ----------------------------------------------------------------------------- planner
class TaskPlanner:
    """Observation -> phase, bias and H-step plan. ``biased=False`` gives the ideal planner."""

    def __init__(self, sim: SimConfig, vla: ScriptedVLAConfig):
        self.sim = sim
        self.cfg = vla
        self.h = sim.cube_half_size
        self.cube_w = 2.0 * sim.cube_half_size
        # TCP height above a released cube beyond which the VLA considers the place done.
        self.done_clearance = 0.05

    # -------------------------------------------------------------- bias model
    def grasp_bias(self, o: _Obs) -> Tuple[np.ndarray, float]:
        """(translation offset of the VLA's grasp point, yaw offset) for the current cube pose."""
        c = self.cfg
        b = c.correction_bound - 1e-4
        gyaw = _grasp_yaw(o.obj_yaw, o.ee_yaw)
        hover = np.clip(c.hover_height + c.hover_per_m_x * (o.obj[0] - 0.5), -b, b)
        along = c.grasp_offset_along_yaw
        off = np.array([along * math.cos(gyaw), along * math.sin(gyaw), hover])
        off = np.clip(off, -b, b)
        dyaw = float(np.clip(-c.yaw_under_rotation * gyaw, -c.rotation_bound, c.rotation_bound))
        return off, dyaw

    def place_bias(self, o: _Obs) -> np.ndarray:
        c = self.cfg
        b = c.correction_bound - 1e-4
        t = o.target[:2]
        r = float(np.linalg.norm(t))
        if r < 1e-6:
            return np.zeros(3)
        s = c.place_short + c.place_short_per_m * (r - 0.5)
        off = -s * t / r
        return np.array([*np.clip(off, -b, b), 0.0])

    def believed_place_xy(self, o: _Obs) -> np.ndarray:
        return o.target[:2] + self.place_bias(o)[:2]

    # -------------------------------------------------------------- phase
    def grasped(self, o: _Obs) -> bool:
        """Geometric grasp check from the observation: cube between the pads, gripper closed on it."""
        if not (self.cube_w - 0.012 <= o.width <= self.cube_w + 0.004):
            return False
        rel = o.obj[:3] - o.ee
        c, s = math.cos(o.ee_yaw), math.sin(o.ee_yaw)
        along = c * rel[0] + s * rel[1]  # gripper x (pad face direction)
        closing = -s * rel[0] + c * rel[1]  # gripper y (closing direction)
        return abs(closing) < 0.015 and abs(along) < self.h + 0.012 and abs(rel[2]) < self.h + 0.015

    def lifted(self, o: _Obs) -> bool:
        return o.obj[2] > self.h + 0.01

    def near_place(self, o: _Obs) -> bool:
        """The cube is at (or being lowered onto) the VLA's believed place location."""
        return float(np.linalg.norm(o.obj[:2] - self.believed_place_xy(o))) < 0.05

    def phase(self, o: _Obs) -> str:
        task = self.sim.task
        grasped = self.grasped(o)
        if task == "pick_lift":
            return PHASE_LIFT if grasped else PHASE_GRASP
        if grasped:
            return PHASE_PLACE if (self.lifted(o) or self.near_place(o)) else PHASE_LIFT
        if self.near_place(o) and not self.lifted(o):
            return PHASE_DONE if o.ee[2] > o.obj[2] + self.done_clearance else PHASE_PLACE
        return PHASE_GRASP

    def bias(self, o: _Obs, phase: Optional[str] = None) -> np.ndarray:
        """The 7-vector the VLA adds to the ideal action in the current phase."""
        phase = phase or self.phase(o)
        out = np.zeros(ACTION_DIM)
        if phase == PHASE_GRASP:
            off, dyaw = self.grasp_bias(o)
            out[:3] = off
            out[5] = dyaw
        elif phase == PHASE_PLACE:
            out[:3] = self.place_bias(o)
        return out

    # -------------------------------------------------------------- plan
    def plan(self, o: _Obs, biased: bool) -> np.ndarray:
        c = self.cfg
        phase = self.phase(o)
        grip_now = 0.0 if o.width >= 0.92 * MAX_GRIPPER_WIDTH else 1.0
        tr = _Traj(o.ee, o.ee_yaw, grip_now, c.chunk_size, c.yaw_speed)
        if phase == PHASE_GRASP:
            off, dyaw = self.grasp_bias(o) if biased else (np.zeros(3), 0.0)
            gyaw = _grasp_yaw(o.obj_yaw, o.ee_yaw) + dyaw
            gp = o.obj[:3] + np.array([0.0, 0.0, c.grasp_height_offset]) + off
            self._plan_grasp(tr, o, gp, gyaw)
        elif phase == PHASE_DONE:
            tr.goto([o.ee[0], o.ee[1], max(c.carry_z, o.ee[2])], o.ee_yaw, 0.0, c.lift_speed)
        elif phase == PHASE_LIFT:
            z_goal = c.lift_z if self.sim.task == "pick_lift" else c.carry_z
            tr.goto([o.ee[0], o.ee[1], min(o.ee[2] + 0.01, z_goal)], o.ee_yaw, 1.0, c.lift_speed)
            tr.goto([o.ee[0], o.ee[1], z_goal], o.ee_yaw, 1.0, c.lift_speed)
        else:
            place_xy = self.believed_place_xy(o) if biased else o.target[:2]
            self._plan_place(tr, o, place_xy)
        return tr.chunk()

    # Waits in the plan ("at the grasp point -> close") are decided with tolerances larger than
    # any bias (one-sided where the correction moves the TCP), and the virtual TCP then *snaps*
    # to the VLA's own waypoint: a TCP that a residual moved to the true waypoint still lets the
    # VLA's plan progress, and the VLA's later targets stay "waypoint + bias".
    def _plan_grasp(self, tr: _Traj, o: _Obs, gp: np.ndarray, gyaw: float):
        c = self.cfg
        pre = gp + np.array([0.0, 0.0, c.pregrasp_height])
        z_after = c.lift_z if self.sim.task == "pick_lift" else c.carry_z
        lift = np.array([gp[0], gp[1], max(z_after, gp[2] + 0.05)])
        xy_err = float(np.linalg.norm(o.ee[:2] - gp[:2]))
        gripper_open = o.width >= 0.92 * MAX_GRIPPER_WIDTH
        in_corridor = xy_err < 0.03

        if not gripper_open:
            if in_corridor and o.ee[2] < gp[2] + 0.015 and o.width > self.cube_w - 0.006:
                # Closing on the cube: keep closing, then lift.
                remaining = max(1, int(math.ceil((o.width - self.cube_w) / 0.02)) + 1)
                tr.snap(gp, gyaw).hold(remaining, 1.0)
                tr.goto(lift, gyaw, 1.0, c.lift_speed)
                return
            # Missed (closed on air) or re-opening: go up closed, open there, then retry.
            if in_corridor and o.ee[2] >= pre[2] - 0.045:
                tr.snap([gp[0], gp[1], max(pre[2], o.ee[2])], gyaw)
            else:
                tr.goto([gp[0], gp[1], max(pre[2], o.ee[2])], gyaw, 1.0, c.approach_speed)
            tr.hold(c.open_steps, 0.0)
        elif in_corridor and o.ee[2] < gp[2] + 0.008:
            # Arrived at the grasp point: close now.
            tr.snap(gp, gyaw).hold(c.close_steps, 1.0)
            tr.goto(lift, gyaw, 1.0, c.lift_speed)
            return
        elif not in_corridor or o.ee[2] > pre[2] + 0.02:
            if o.ee[2] < pre[2] - 0.045 and not in_corridor:
                # Low and beside the cube: rise before moving over it (threshold below the
                # pregrasp height by more than any bias, so a corrected TCP does not trigger it).
                tr.goto([o.ee[0], o.ee[1], pre[2]], gyaw, 0.0, c.approach_speed)
            tr.goto(pre, gyaw, 0.0, c.approach_speed)
        tr.goto(gp, gyaw, 0.0, c.approach_speed, c.descend_speed)
        tr.hold(c.settle_steps, 0.0)
        tr.hold(c.close_steps, 1.0)
        tr.goto(lift, gyaw, 1.0, c.lift_speed)

    def _plan_place(self, tr: _Traj, o: _Obs, place_xy: np.ndarray):
        c = self.cfg
        h = self.h
        hand_off = o.ee[:2] - o.obj[:2]  # keep the cube's in-hand offset
        goal_xy = place_xy + hand_off
        z_rel = o.ee[2] - (o.obj[2] - (h + c.release_clearance))  # TCP z that puts the cube at the release height
        yaw = o.ee_yaw
        z_backoff = o.obj[2] + self.done_clearance + 0.01  # then PHASE_DONE takes over (unbiased)
        if self.grasped(o):
            dist = float(np.linalg.norm(o.ee[:2] - goal_xy))
            if dist < 0.04 and o.ee[2] < z_rel + 0.008:
                tr.snap([goal_xy[0], goal_xy[1], z_rel], yaw)  # at the place point: release now
                stall = c.stall_release_radius
                if stall > 0.0 and float(np.linalg.norm(o.obj[:2] - o.target[:2])) > stall:
                    tr.hold(c.chunk_size, 1.0)  # stagnation trap: wait, holding, until it sees the cube over the zone
                    return
            else:
                if dist > 0.05:  # far: carry at height first (lenient, so a corrected TCP is not "far")
                    tr.goto([goal_xy[0], goal_xy[1], max(c.carry_z, o.ee[2])], yaw, 1.0, c.approach_speed,
                            c.lift_speed)
                tr.goto([goal_xy[0], goal_xy[1], z_rel], yaw, 1.0, c.approach_speed, c.descend_speed)
                tr.hold(c.settle_steps, 1.0)
            tr.hold(c.open_steps, 0.0)
        elif o.width < 0.92 * MAX_GRIPPER_WIDTH:
            # Released but still opening: stay put with the gripper opening.
            tr.snap([goal_xy[0], goal_xy[1], o.ee[2]], yaw).hold(c.open_steps, 0.0)
        tr.goto([goal_xy[0], goal_xy[1], max(z_backoff, o.ee[2])], yaw, 0.0, c.lift_speed)
        tr.goto([goal_xy[0], goal_xy[1], max(c.carry_z, z_backoff)], yaw, 0.0, c.lift_speed)


# ----------------------------------------------------------------------------- policies
def _as_task_config(cfg) -> TaskConfig:
    if isinstance(cfg, TaskConfig):
        return cfg
    if isinstance(cfg, SimConfig):
        return load_task_config(cfg.task, overrides={"sim": dataclasses.asdict(cfg)})
    if isinstance(cfg, str):
        return load_task_config(cfg)
    raise TypeError(f"expected TaskConfig, SimConfig or task name, got {type(cfg).__name__}")


class ScriptedVLA:
    """Frozen-VLA stand-in: ``infer(obs, info=None) -> (H, 7)`` absolute TCP targets."""

    def __init__(self, cfg: Union[TaskConfig, SimConfig, str]):
        self.task_cfg = _as_task_config(cfg)
        self.cfg = self.task_cfg.vla
        self.planner = TaskPlanner(self.task_cfg.sim, self.task_cfg.vla)

    @property
    def chunk_size(self) -> int:
        return self.cfg.chunk_size

    def reset(self):
        """Stateless (re-plans from each observation); kept for a policy-like interface."""

    def infer(self, obs: Mapping[str, np.ndarray], info: Optional[Mapping[str, Any]] = None) -> np.ndarray:
        return self.planner.plan(_parse(obs), biased=True)

    def ideal_chunk(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """What the VLA would emit without its biases (the expert's intent)."""
        return self.planner.plan(_parse(obs), biased=False)

    def oracle_correction(self, obs: Mapping[str, np.ndarray], info: Optional[Mapping[str, Any]] = None) -> np.ndarray:
        """The residual a perfect learner would add to this step's VLA action (7,), float32."""
        return oracle_correction(self.planner, obs)

    def phase(self, obs: Mapping[str, np.ndarray]) -> str:
        return self.planner.phase(_parse(obs))


def oracle_correction(planner_or_cfg, obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """``-bias(obs)``: bounded by ``correction_bound`` per translation axis and ``rotation_bound`` in yaw.

    ``planner_or_cfg``: a TaskPlanner, ScriptedVLA or TaskConfig.
    """
    if isinstance(planner_or_cfg, ScriptedVLA):
        planner = planner_or_cfg.planner
    elif isinstance(planner_or_cfg, TaskPlanner):
        planner = planner_or_cfg
    else:
        tc = _as_task_config(planner_or_cfg)
        planner = TaskPlanner(tc.sim, tc.vla)
    return (-planner.bias(_parse(obs))).astype(np.float32)


@dataclasses.dataclass
class ExpertStep:
    expert_action: np.ndarray  # (7,) what the expert executes = vla_action + correction (+ noise)
    vla_action: np.ndarray  # (7,) the VLA chunk's action for this step
    correction: np.ndarray  # (7,) oracle residual (before noise)
    phase: str


class ScriptedExpert:
    """Demonstrator: executes the scripted VLA's chunks plus the oracle correction.

    ``act(obs, info=None) -> ExpertStep``. The VLA chunk is re-planned every
    ``expert.replan_every`` steps (or when the last chunk is used up).
    """

    def __init__(self, cfg: Union[TaskConfig, SimConfig, str], noise_std: Optional[float] = None,
                 seed: Optional[int] = None, replan_every: Optional[int] = None):
        self.task_cfg = _as_task_config(cfg)
        e = self.task_cfg.expert
        self.noise_std = e.noise_std if noise_std is None else float(noise_std)
        self.yaw_noise_std = e.yaw_noise_std
        self.replan_every = max(1, int(e.replan_every if replan_every is None else replan_every))
        self.vla = ScriptedVLA(self.task_cfg)
        self._seed = e.seed if seed is None else int(seed)
        self.reset(self._seed)

    def reset(self, seed: Optional[int] = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._chunk: Optional[np.ndarray] = None
        self._k = 0

    def act(self, obs: Mapping[str, np.ndarray], info: Optional[Mapping[str, Any]] = None) -> ExpertStep:
        if self._chunk is None or self._k >= min(self.replan_every, len(self._chunk)):
            self._chunk = self.vla.infer(obs, info)
            self._k = 0
        vla_action = self._chunk[self._k].astype(np.float32)
        self._k += 1
        corr = self.vla.oracle_correction(obs, info)
        act = vla_action.astype(np.float64) + corr
        if self.noise_std > 0:
            act[:3] += np.clip(self._rng.normal(0.0, self.noise_std, 3), -2 * self.noise_std, 2 * self.noise_std)
        if self.yaw_noise_std > 0:
            act[5] += float(np.clip(self._rng.normal(0.0, self.yaw_noise_std), -2 * self.yaw_noise_std,
                                    2 * self.yaw_noise_std))
        return ExpertStep(act.astype(np.float32), vla_action, corr, self.vla.phase(obs))


class ChunkRunner:
    """Executes a chunked policy (e.g. ScriptedVLA) open-loop for ``replan_every`` steps per chunk,
    optionally adding a per-step residual ``residual_fn(obs, info, base_action) -> (7,)``."""

    def __init__(self, policy: ScriptedVLA, replan_every: Optional[int] = None, residual_fn=None):
        self.policy = policy
        self.replan_every = max(1, int(replan_every or policy.chunk_size))
        self.residual_fn = residual_fn
        self.reset()

    def reset(self):
        self._chunk = None
        self._k = 0

    def act(self, obs, info=None) -> Tuple[np.ndarray, np.ndarray]:
        """Returns (executed action, base action)."""
        if self._chunk is None or self._k >= min(self.replan_every, len(self._chunk)):
            self._chunk = self.policy.infer(obs, info)
            self._k = 0
        base = self._chunk[self._k].astype(np.float64)
        self._k += 1
        act = base if self.residual_fn is None else base + np.asarray(self.residual_fn(obs, info, base), np.float64)
        return act.astype(np.float32), base.astype(np.float32)


# ----------------------------------------------------------------------------- evaluation
def run_episode(env: FrankaTableEnv, mode: str, seed: int, replan_every: int = 1,
                noise_std: float = 0.0, record: bool = False, vla: Optional[ScriptedVLA] = None
                ) -> Dict[str, Any]:
    """Roll out one episode. mode: "vla" | "vla+oracle" | "expert".

    Returns {"success", "steps", "seed", "failure"} and, with record=True, per-step lists
    "obs", "expert_action", "vla_action", "action", "reward", "done".
    """
    tc = TaskConfig(sim=env.cfg, vla=vla.cfg if vla else _as_task_config(env.cfg).vla)
    obs = env.reset(seed=seed)
    info = env.privileged_info()
    if mode == "expert":
        pol = ScriptedExpert(tc, noise_std=noise_std, seed=seed, replan_every=replan_every)
    elif mode in ("vla", "vla+oracle"):
        v = vla or ScriptedVLA(tc)
        res = (lambda o, i, b: v.oracle_correction(o, i)) if mode == "vla+oracle" else None
        pol = ChunkRunner(v, replan_every=replan_every, residual_fn=res)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    rec: Dict[str, list] = {k: [] for k in ("obs", "expert_action", "vla_action", "action", "reward", "done")}
    success, failure, steps = False, None, 0
    for t in range(env.max_episode_steps):
        if mode == "expert":
            st = pol.act(obs, info)
            action, base = st.expert_action, st.vla_action
        else:
            action, base = pol.act(obs, info)
        if record:
            rec["obs"].append(obs)
            rec["vla_action"].append(base)
            rec["expert_action"].append(action)
            rec["action"].append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        steps = t + 1
        if record:
            rec["reward"].append(reward)
            rec["done"].append(terminated or truncated)
        if terminated or truncated:
            success = bool(info["success"])
            failure = info["failure"]
            break
    out: Dict[str, Any] = {"success": success, "steps": steps, "seed": seed, "failure": failure}
    if record:
        out.update(rec)
    return out


def success_rate(task: Union[str, TaskConfig], mode: str, seeds, replan_every: int = 1,
                 noise_std: float = 0.0) -> float:
    tc = _as_task_config(task)
    env = FrankaTableEnv(tc.sim)
    vla = ScriptedVLA(tc)
    wins = [run_episode(env, mode, s, replan_every=replan_every, noise_std=noise_std, vla=vla)["success"]
            for s in seeds]
    env.close()
    return float(np.mean(wins))


def main(argv=None):
    import argparse
    import time

    ap = argparse.ArgumentParser(description="Success rates of the scripted VLA / VLA+oracle / expert.")
    ap.add_argument("--task", default="pick_place")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--modes", default="vla,vla+oracle,expert")
    ap.add_argument("--replan-every", type=int, nargs="+", default=[1, 16])
    args = ap.parse_args(argv)
    seeds = range(args.seed0, args.seed0 + args.episodes)
    for mode in args.modes.split(","):
        for k in args.replan_every:
            t0 = time.time()
            sr = success_rate(args.task, mode, seeds, replan_every=k)
            print(f"{args.task:10s} {mode:11s} replan_every={k:2d}: success {sr:.2f} "
                  f"({args.episodes} seeds, {time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
