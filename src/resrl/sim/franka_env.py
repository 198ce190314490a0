"""A small MuJoCo Franka-Panda-like table-top environment (ROS-free).

Tasks
-----
``pick_lift``   grasp the cube and lift it ``lift_height`` (5 cm) above the table while grasped.
``pick_place``  grasp the cube and put it in the target zone: its centre within ``zone_radius``
                of the zone centre (xy), resting on the table, released by the gripper.

Frames and conventions
----------------------
The robot base frame has its origin on the table top (z = 0 is the table surface), x pointing
away from the robot, z up. The end-effector (TCP) frame sits between the finger pads; its
orientation is expressed as a rotation vector such that ``[0, 0, 0]`` = gripper pointing
straight down with the fingers closing along base y, and ``[0, 0, yaw]`` rotates the top-down
gripper about the vertical. (The real Panda flange frame differs from this TCP frame by a fixed
rotation of pi about x; the drivers own that offset.)

Action (``resrl.actions``): absolute TCP target ``[x, y, z, rx, ry, rz, gripper]``, gripper in
[0, 1] with 1 = closed. Each step it is clamped to the workspace box (translation and
rotation-vector boxes), limited to ``max_step_translation`` / ``max_step_rotation`` away from the
current TCP pose, converted to joint targets by damped-least-squares IK (with a posture
null-space term) and tracked by stiff joint position actuators over ``physics_substeps``.

State (``resrl.actions.STATE_DIM``): ``[tcp_xyz, tcp_rotvec, gripper_opening]`` with
gripper_opening = finger distance / 0.08 in [0, 1] (1 = fully open).
"""
from __future__ import annotations

import atexit
import dataclasses
import math
import weakref
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def _check_gl_backend() -> None:
    """``MUJOCO_GL=osmesa`` without libOSMesa makes ``import mujoco`` itself fail (mujoco imports
    its renderer eagerly). Fall back to EGL when only that is installed (before mujoco loads)."""
    import ctypes.util
    import os
    import sys
    import warnings

    if "mujoco" in sys.modules or os.environ.get("MUJOCO_GL", "").lower() != "osmesa":
        return
    if ctypes.util.find_library("OSMesa") is None and ctypes.util.find_library("EGL") is not None:
        warnings.warn("MUJOCO_GL=osmesa but libOSMesa is missing (apt-get install libosmesa6); using EGL")
        os.environ["MUJOCO_GL"] = "egl"
        os.environ["PYOPENGL_PLATFORM"] = "egl"


def _preload_triton() -> None:
    """torch's CUDA wheels ship triton; ``import triton`` after ``import mujoco`` (4.x) segfaults
    in libtriton (measured 2026-12-01: ``python -c "import mujoco, triton"`` -> SIGSEGV, the reverse
    order works), and torch imports triton lazily (torchvision.ops -> torch._dynamo). Load it first."""
    import importlib.util
    import sys

    if "mujoco" not in sys.modules and importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:   # a broken triton is torch's problem, not the simulator's
            pass


_check_gl_backend()
_preload_triton()

import mujoco  # noqa: E402

from resrl.actions import ACTION_DIM, as_action
from resrl.geometry import (mat_to_rotvec, quat_wxyz_to_xyzw, quat_xyzw_to_wxyz, rotvec_to_mat,  # noqa: F401
                            yaw_of_quat_xyzw)  # yaw_of_quat_xyzw: for resrl.sim.scripted

TASKS = ("pick_lift", "pick_place")
ASSET_XML = Path(__file__).resolve().parent / "assets" / "franka_table.xml"
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
JOINT_NAMES = ARM_JOINTS + FINGER_JOINTS
MAX_GRIPPER_WIDTH = 0.08  # m, distance between the finger pads when fully open
DEFAULT_EPISODE_STEPS = {"pick_lift": 60, "pick_place": 100}

# Close GL contexts before interpreter teardown (osmesa/egl complain if freed during shutdown).
_LIVE_ENVS: "weakref.WeakSet[FrankaTableEnv]" = weakref.WeakSet()


@atexit.register
def _close_all_renderers():
    for env in list(_LIVE_ENVS):
        try:
            env.close()
        except Exception:
            pass


@dataclasses.dataclass
class SimConfig:
    """Environment parameters (all lengths in m, angles in rad, base frame)."""

    task: str = "pick_place"
    control_hz: float = 10.0
    physics_dt: float = 0.002
    max_episode_steps: Optional[int] = None  # None: 60 (pick_lift) / 100 (pick_place)
    seed: int = 0  # RNG seed used by reset(seed=None) when no episode has been seeded yet
    # Rendering (fixed scene camera); render=False is the fast path.
    render: bool = False
    render_depth: bool = True  # with render: also "depth_m" (a second render pass)
    image_width: int = 96
    image_height: int = 96
    camera: str = "front"  # front | shoulder | side
    fovy_deg: float = 55.0
    # Action processing.
    workspace_low: Tuple[float, float, float] = (0.30, -0.30, 0.012)
    workspace_high: Tuple[float, float, float] = (0.68, 0.30, 0.35)
    rotvec_low: Tuple[float, float, float] = (-0.5, -0.5, -1.6)
    rotvec_high: Tuple[float, float, float] = (0.5, 0.5, 1.6)
    max_step_translation: float = 0.05  # m per control step, relative to the current TCP
    max_step_rotation: float = 0.3  # rad per control step, relative to the current TCP
    home_tcp_pos: Tuple[float, float, float] = (0.35, 0.0, 0.25)
    home_tcp_yaw: float = 0.0
    # Object and target randomisation (uniform per episode).
    cube_half_size: float = 0.02
    cube_mass: float = 0.05
    object_x_range: Tuple[float, float] = (0.42, 0.60)
    object_y_range: Tuple[float, float] = (-0.15, 0.15)
    object_yaw_range: Tuple[float, float] = (-0.785, 0.785)
    target_x_range: Tuple[float, float] = (0.40, 0.62)
    target_y_range: Tuple[float, float] = (-0.22, 0.22)
    min_object_target_distance: float = 0.15
    # Per-episode physical randomisation (task variants; None: the fixed cube_mass / object_friction).
    cube_mass_range: Optional[Tuple[float, float]] = None       # kg, uniform per episode
    object_friction_range: Optional[Tuple[float, float]] = None  # sliding friction, uniform per episode
    # Pocket around the target zone (intent-misalignment variant; None: no pocket): four low walls
    # whose inner faces leave this clearance (m) around a cube of any yaw (inner half-width =
    # cube_half_size * sqrt(2) + clearance). A cube lowered further off the zone centre lands on
    # a wall: not resting on the table, not a success.
    pocket_clearance: Optional[float] = None
    pocket_wall_height: float = 0.012  # below the finger pads of a released cube (only the cube hits it)
    # Success.
    zone_radius: float = 0.02  # pick_place: cube centre within this xy distance of the zone centre
    lift_height: float = 0.05  # pick_lift: cube bottom this far above the table while grasped
    rest_speed: float = 0.03  # m/s: the cube counts as resting below this speed
    # Contact / actuator tuning.
    object_friction: float = 1.0
    pad_friction: float = 1.5
    pad_half_height: float = 0.007
    gripper_force: float = 40.0  # N on the finger tendon (about half of it per finger)
    impratio: float = 5.0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"SimConfig.task must be one of {TASKS}, got {self.task!r}")
        if self.control_hz <= 0 or self.physics_dt <= 0:
            raise ValueError("control_hz and physics_dt must be > 0")
        if self.image_width < 8 or self.image_height < 8:
            raise ValueError("image size must be >= 8 px")
        if self.camera not in ("front", "shoulder", "side"):
            raise ValueError(f"unknown camera {self.camera!r}")
        for name in ("cube_mass_range", "object_friction_range"):
            rng = getattr(self, name)
            if rng is not None and not (len(rng) == 2 and 0.0 < rng[0] <= rng[1]):
                raise ValueError(f"SimConfig.{name} must be [low, high] with 0 < low <= high, got {rng}")
        if self.pocket_clearance is not None and not self.pocket_clearance > 0.0:
            raise ValueError("SimConfig.pocket_clearance must be > 0 (m) or None")
        if not 0.0 < self.pocket_wall_height < 2.0 * self.cube_half_size:
            raise ValueError("SimConfig.pocket_wall_height must be in (0, cube height)")

    @property
    def episode_steps(self) -> int:
        return int(self.max_episode_steps or DEFAULT_EPISODE_STEPS[self.task])

    @property
    def physics_substeps(self) -> int:
        return max(1, int(round(1.0 / (self.control_hz * self.physics_dt))))


# ----------------------------------------------------------------------------- rotations
# quaternion layout, rotation vectors and yaw: resrl.geometry (scipy); MuJoCo quaternions are wxyz.


def wrap_angle(a: float) -> float:
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def _pocket_geometry(cfg: SimConfig) -> Dict[str, str]:
    """Template values of the pocket walls (franka_table.xml); disabled: collision-free."""
    wall_half = 0.005
    inner = cfg.cube_half_size * math.sqrt(2.0) + (cfg.pocket_clearance or 0.0)
    return {"pocket_wall_half": repr(wall_half), "pocket_half_outer": repr(inner + 2.0 * wall_half),
            "pocket_wall_h": repr(cfg.pocket_wall_height / 2.0), "pocket_wall_c": repr(inner + wall_half),
            "pocket_conaffinity": "1" if cfg.pocket_clearance is not None else "0"}


# ----------------------------------------------------------------------------- success
def check_success(cfg: SimConfig, object_pose, target_pose, grasped: bool, gripper_width: float,
                  object_speed: float) -> bool:
    """Episode success from privileged state (usable by an oracle node).

    object_pose / target_pose: [x, y, z, qx, qy, qz, qw] in the base frame; grasped: the cube is
    held between both fingers; gripper_width: finger distance (m); object_speed: |v| (m/s).
    """
    obj = np.asarray(object_pose, dtype=np.float64)
    h = cfg.cube_half_size
    if cfg.task == "pick_lift":
        return bool(grasped and obj[2] - h >= cfg.lift_height)
    tgt = np.asarray(target_pose, dtype=np.float64)
    in_zone = float(np.linalg.norm(obj[:2] - tgt[:2])) <= cfg.zone_radius
    on_table = obj[2] <= h + 0.006
    resting = object_speed <= cfg.rest_speed
    released = (not grasped) or gripper_width >= 2.0 * h + 0.006
    return bool(in_zone and on_table and resting and released)


def tracked_objects(task: str, obs: Dict[str, Any]) -> List[Tuple[str, np.ndarray]]:
    """Ground-truth poses a pose tracker follows in this task, in slot order: the cube and, in
    pick_place, the target zone (on a real cell: the bowl or marker FoundationPose tracks). The
    residual needs the zone: the base policy stops short of it by a target-dependent amount."""
    out = [("cube", np.asarray(obs["object_poses"], np.float32))]
    if task == "pick_place":
        out.append(("target_zone", np.asarray(obs["target_pose"], np.float32)))
    return out


# ----------------------------------------------------------------------------- env
class FrankaTableEnv:
    """Gym-like env: ``reset(seed) -> obs``, ``step(action) -> (obs, reward, terminated, truncated, info)``."""

    joint_names = JOINT_NAMES

    def __init__(self, cfg: Optional[SimConfig] = None):
        self.cfg = cfg = cfg or SimConfig()
        self.model = self._build_model(cfg)
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)
        m = self.model
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in ARM_JOINTS])
        self._arm_dadr = np.array([m.jnt_dofadr[m.joint(n).id] for n in ARM_JOINTS])
        self._all_qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in JOINT_NAMES])
        self._all_dadr = np.array([m.jnt_dofadr[m.joint(n).id] for n in JOINT_NAMES])
        self._jnt_low = m.jnt_range[[m.joint(n).id for n in ARM_JOINTS], 0].copy()
        self._jnt_high = m.jnt_range[[m.joint(n).id for n in ARM_JOINTS], 1].copy()
        self._tcp = m.site("tcp").id
        self._cube_body = m.body("cube").id
        self._cube_qadr = m.jnt_qposadr[m.joint("cube_free").id]
        self._cube_dadr = m.jnt_dofadr[m.joint("cube_free").id]
        self._cube_geom = m.geom("cube").id
        self._finger_geoms = (
            {m.geom("left_pad").id, m.geom("left_finger").id},
            {m.geom("right_pad").id, m.geom("right_finger").id},
        )
        self._table_geom = m.geom("table").id
        self._target_mocap = m.body_mocapid[m.body("target").id]
        self._pocket_mocap = m.body_mocapid[m.body("pocket").id]
        self._cube_mass0 = float(m.body_mass[self._cube_body])
        self._cube_inertia0 = m.body_inertia[self._cube_body].copy()
        self._grip_act = m.actuator("act_gripper").id
        self._cam = m.camera(cfg.camera).id
        self._ws_low = np.asarray(cfg.workspace_low, dtype=np.float64)
        self._ws_high = np.asarray(cfg.workspace_high, dtype=np.float64)
        self._rv_low = np.asarray(cfg.rotvec_low, dtype=np.float64)
        self._rv_high = np.asarray(cfg.rotvec_high, dtype=np.float64)
        self._substeps = cfg.physics_substeps
        self._renderer = None
        self._rng = np.random.default_rng(cfg.seed)
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._ik_damp = 1e-3 * np.eye(6)
        self._q_home = self._solve_home()
        self._q_target = self._q_home.copy()
        self._target_pose = np.zeros(7)
        self._steps = 0
        self._episode_seed: Optional[int] = None
        self._last_action = np.zeros(ACTION_DIM)
        self.reset(seed=cfg.seed)

    # ------------------------------------------------------------------ model
    @staticmethod
    def _build_model(cfg: SimConfig) -> mujoco.MjModel:
        text = Template(ASSET_XML.read_text()).substitute(
            timestep=repr(cfg.physics_dt),
            impratio=repr(cfg.impratio),
            offwidth=max(640, cfg.image_width),
            offheight=max(480, cfg.image_height),
            fovy=repr(cfg.fovy_deg),
            arm_kp="3000",
            arm_damping="100",
            finger_damping="60",
            gripper_kp="4000",
            gripper_force=repr(cfg.gripper_force),
            pad_friction=repr(cfg.pad_friction),
            object_friction=repr(cfg.object_friction),
            pad_half=repr(cfg.pad_half_height),
            cube_half=repr(cfg.cube_half_size),
            cube_mass=repr(cfg.cube_mass),
            zone_vis_radius=repr(cfg.zone_radius + cfg.cube_half_size),
            zone_rim_radius=repr(cfg.zone_radius + cfg.cube_half_size + 0.006),
            **_pocket_geometry(cfg),
        )
        return mujoco.MjModel.from_xml_string(text)

    def _solve_home(self) -> np.ndarray:
        seed = np.array([0.0, -0.3, 0.0, -2.3, 0.0, 2.0, 0.785 + self.cfg.home_tcp_yaw])
        rot = rotvec_to_mat([0.0, 0.0, self.cfg.home_tcp_yaw])
        q = seed
        for _ in range(5):
            q = self._ik(np.asarray(self.cfg.home_tcp_pos), rot, q, iters=60, posture=seed)
        return q

    # ------------------------------------------------------------------ IK
    def _ik(self, pos, rot, q0, iters: int = 8, posture=None, tol: float = 5e-4) -> np.ndarray:
        """Damped-least-squares IK for the TCP site, warm-started at ``q0``, with a null-space
        pull toward ``posture`` (default: home). Runs on a scratch MjData (the sim is untouched)."""
        m, d = self.model, self._ik_data
        q = np.array(q0, dtype=np.float64)
        posture = self._q_home if posture is None else posture
        jacp, jacr = self._jacp, self._jacr
        err = np.empty(6)
        qt = np.empty(4)
        qc = np.empty(4)
        qe = np.empty(4)
        mujoco.mju_mat2Quat(qt, np.ascontiguousarray(rot, dtype=np.float64).reshape(9))
        for _ in range(iters):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            err[:3] = pos - d.site_xpos[self._tcp]
            mujoco.mju_mat2Quat(qc, d.site_xmat[self._tcp])
            mujoco.mju_negQuat(qe, qc)
            mujoco.mju_mulQuat(qe, qt, qe)  # q_target * q_current^-1 (world-frame error)
            if qe[0] < 0:
                qe *= -1.0
            mujoco.mju_quat2Vel(err[3:], qe, 1.0)
            if err[0] ** 2 + err[1] ** 2 + err[2] ** 2 < tol * tol and \
                    err[3] ** 2 + err[4] ** 2 + err[5] ** 2 < 16 * tol * tol:
                break
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, jacp, jacr, self._tcp)
            jac = np.concatenate([jacp[:, self._arm_dadr], jacr[:, self._arm_dadr]])
            sol = np.linalg.solve(jac @ jac.T + self._ik_damp, np.column_stack([err, jac]))
            dq = jac.T @ sol[:, 0]
            # Null-space pull toward the posture (keeps the redundant joint well behaved).
            dp = 0.2 * (posture - q)
            dq += dp - jac.T @ (sol[:, 1:] @ dp)
            n = float(np.linalg.norm(dq))
            if n > 0.5:
                dq *= 0.5 / n
            q = np.clip(q + dq, self._jnt_low + 1e-3, self._jnt_high - 1e-3)
        return q

    # ------------------------------------------------------------------ API
    @property
    def max_episode_steps(self) -> int:
        return self.cfg.episode_steps

    @property
    def dt(self) -> float:
        return 1.0 / self.cfg.control_hz

    @property
    def episode_seed(self) -> Optional[int]:
        return self._episode_seed

    def reset(self, seed: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Start an episode; the object/target draw is reproducible for a given ``seed``."""
        cfg, m, d = self.cfg, self.model, self.data
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._episode_seed = int(seed)
        else:
            self._episode_seed = None
        rng = self._rng
        ox = rng.uniform(*cfg.object_x_range)
        oy = rng.uniform(*cfg.object_y_range)
        oyaw = rng.uniform(*cfg.object_yaw_range)
        for _ in range(1000):
            tx = rng.uniform(*cfg.target_x_range)
            ty = rng.uniform(*cfg.target_y_range)
            if math.hypot(tx - ox, ty - oy) >= cfg.min_object_target_distance:
                break
        h = cfg.cube_half_size
        if cfg.task == "pick_lift":
            tx, ty, tz = ox, oy, h + cfg.lift_height
        else:
            tz = 0.0
        self._target_pose = np.array([tx, ty, tz, 0.0, 0.0, 0.0, 1.0])
        # Drawn after the poses, so tasks without randomisation keep their start states per seed.
        if cfg.cube_mass_range is not None:
            mass = rng.uniform(*cfg.cube_mass_range)
            m.body_mass[self._cube_body] = mass
            m.body_inertia[self._cube_body] = self._cube_inertia0 * (mass / self._cube_mass0)
        if cfg.object_friction_range is not None:
            m.geom_friction[self._cube_geom, 0] = rng.uniform(*cfg.object_friction_range)

        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = self._q_home
        d.qpos[self._all_qadr[7:]] = 0.04
        d.qpos[self._cube_qadr:self._cube_qadr + 3] = (ox, oy, h)
        d.qpos[self._cube_qadr + 3:self._cube_qadr + 7] = (math.cos(oyaw / 2), 0.0, 0.0, math.sin(oyaw / 2))
        d.mocap_pos[self._target_mocap] = (tx, ty, 0.0)
        d.mocap_pos[self._pocket_mocap] = (tx, ty, 0.0) if cfg.pocket_clearance is not None else (tx, ty, -1.0)
        d.ctrl[:7] = self._q_home
        d.ctrl[self._grip_act] = 0.04
        mujoco.mj_forward(m, d)
        self._q_target = self._q_home.copy()
        self._steps = 0
        self._last_action = self.home_action()
        return self._obs()

    def home_action(self) -> np.ndarray:
        """The action that holds the home pose with the gripper open."""
        a = np.zeros(ACTION_DIM)
        a[:3] = self.cfg.home_tcp_pos
        a[5] = self.cfg.home_tcp_yaw
        return a

    def clamp_action(self, action) -> Tuple[np.ndarray, bool]:
        """Workspace box + per-step motion limit relative to the current TCP. Returns (action, clamped)."""
        a = np.asarray(as_action(action), dtype=np.float64)
        out = a.copy()
        out[:3] = np.clip(a[:3], self._ws_low, self._ws_high)
        out[3:6] = np.clip(a[3:6], self._rv_low, self._rv_high)
        out[6] = float(np.clip(a[6], 0.0, 1.0))
        cur_p = self.data.site_xpos[self._tcp].copy()
        delta = out[:3] - cur_p
        n = float(np.linalg.norm(delta))
        if n > self.cfg.max_step_translation:
            # The TCP can sit slightly outside the box (contacts, tracking): re-apply the box.
            out[:3] = np.clip(cur_p + delta * (self.cfg.max_step_translation / n), self._ws_low, self._ws_high)
        cur_r = self.data.site_xmat[self._tcp].reshape(3, 3)
        ang = float(np.linalg.norm(mat_to_rotvec(rotvec_to_mat(out[3:6]) @ cur_r.T)))
        if ang > self.cfg.max_step_rotation:
            # Interpolate in rotation-vector space (stays inside the convex box; the geodesic step
            # is max_step_rotation to first order), then re-apply the box.
            cur_rv = mat_to_rotvec(cur_r)
            out[3:6] = np.clip(cur_rv + (out[3:6] - cur_rv) * (self.cfg.max_step_rotation / ang),
                               self._rv_low, self._rv_high)
        clamped = not np.allclose(out, a, atol=1e-7)
        return out, clamped

    def step(self, action):
        """Apply one absolute TCP target (7,) for one control period.

        Returns ``(obs, reward, terminated, truncated, info)``: reward 1.0 on success (sparse),
        terminated on success or failure (``info["failure"]``: "object_off_table" /
        "simulation_unstable"), truncated at ``max_episode_steps``. Raises
        ``resrl.actions.InvalidActionError`` for a wrong shape or non-finite values.
        """
        m, d = self.model, self.data
        a, clamped = self.clamp_action(action)
        self._last_action = a
        q_prev = self._q_target
        q_new = self._ik(a[:3], rotvec_to_mat(a[3:6]), q_prev)
        self._q_target = q_new
        d.ctrl[self._grip_act] = 0.04 * (1.0 - a[6])
        # Interpolate the joint targets over the first half of the control period, then hold.
        n = self._substeps
        n_interp = max(1, n // 2)
        chunk = max(1, n_interp // 5)
        k = 0
        while k < n_interp:
            kk = min(chunk, n_interp - k)
            alpha = (k + kk) / n_interp
            d.ctrl[:7] = q_prev + alpha * (q_new - q_prev)
            mujoco.mj_step(m, d, nstep=kk)
            k += kk
        if n > n_interp:
            d.ctrl[:7] = q_new
            mujoco.mj_step(m, d, nstep=n - n_interp)
        self._steps += 1

        obs = self._obs()
        info = self._info(a, clamped)
        success = info["success"]
        failure = info["failure"]
        reward = 1.0 if success else 0.0
        terminated = bool(success or failure is not None)
        truncated = bool(not terminated and self._steps >= self.max_episode_steps)
        info["steps"] = self._steps
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ state
    def _finger_contacts(self) -> Tuple[bool, bool]:
        d = self.data
        left = right = False
        cube = self._cube_geom
        for i in range(d.ncon):
            c = d.contact[i]
            g1, g2 = c.geom1, c.geom2
            if g1 == cube:
                other = g2
            elif g2 == cube:
                other = g1
            else:
                continue
            if other in self._finger_geoms[0]:
                left = True
            elif other in self._finger_geoms[1]:
                right = True
        return left, right

    def is_grasped(self) -> bool:
        """Both fingers touch the cube and the gripper is (nearly) closed on it."""
        left, right = self._finger_contacts()
        return bool(left and right and self.gripper_width() <= 2 * self.cfg.cube_half_size + 0.004)

    def gripper_width(self) -> float:
        return float(self.data.qpos[self._all_qadr[7]] + self.data.qpos[self._all_qadr[8]])

    def object_pose(self) -> np.ndarray:
        d = self.data
        p = d.qpos[self._cube_qadr:self._cube_qadr + 3]
        q = d.qpos[self._cube_qadr + 3:self._cube_qadr + 7]
        return np.concatenate([p, quat_wxyz_to_xyzw(q)])

    def object_velocity(self) -> np.ndarray:
        return self.data.qvel[self._cube_dadr:self._cube_dadr + 6].copy()

    def tcp_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """TCP position and rotation matrix (base frame)."""
        return self.data.site_xpos[self._tcp].copy(), self.data.site_xmat[self._tcp].reshape(3, 3).copy()

    @property
    def target_pose(self) -> np.ndarray:
        return self._target_pose.copy()

    def set_state(self, object_pose=None, target_pos=None):
        """Test/debug hook: move the cube ([x,y,z,qx,qy,qz,qw]) and/or the target zone centre."""
        d = self.data
        if object_pose is not None:
            op = np.asarray(object_pose, dtype=np.float64)
            d.qpos[self._cube_qadr:self._cube_qadr + 3] = op[:3]
            d.qpos[self._cube_qadr + 3:self._cube_qadr + 7] = quat_xyzw_to_wxyz(op[3:7])
            d.qvel[self._cube_dadr:self._cube_dadr + 6] = 0.0
        if target_pos is not None:
            tp = np.asarray(target_pos, dtype=np.float64)
            self._target_pose[:3] = tp[:3]
            d.mocap_pos[self._target_mocap] = (tp[0], tp[1], 0.0)
            if self.cfg.pocket_clearance is not None:
                d.mocap_pos[self._pocket_mocap] = (tp[0], tp[1], 0.0)
        mujoco.mj_forward(self.model, d)
        return self._obs()

    def _obs(self) -> Dict[str, np.ndarray]:
        d = self.data
        p, r = self.tcp_pose()
        width = self.gripper_width()
        rv = mat_to_rotvec(r)
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, r.reshape(9))
        state = np.concatenate([p, rv, [np.clip(width / MAX_GRIPPER_WIDTH, 0.0, 1.0)]])
        obs = {
            "state": state.astype(np.float32),
            "object_poses": self.object_pose().astype(np.float32),
            "target_pose": self._target_pose.astype(np.float32),
            "joint_pos": d.qpos[self._all_qadr].astype(np.float32),
            "joint_vel": d.qvel[self._all_dadr].astype(np.float32),
            "ee_pos": p.astype(np.float32),
            "ee_quat": quat_wxyz_to_xyzw(q).astype(np.float32),
            "gripper_width": np.array([width], dtype=np.float32),
        }
        if self.cfg.render:
            img, depth = self.render(depth=self.cfg.render_depth)
            obs["image"] = img
            if depth is not None:
                obs["depth_m"] = depth
        return obs

    def _info(self, applied, clamped) -> Dict[str, Any]:
        cfg = self.cfg
        obj = self.object_pose()
        vel = self.object_velocity()
        speed = float(np.linalg.norm(vel[:3]))
        grasped = self.is_grasped()
        width = self.gripper_width()
        success = check_success(cfg, obj, self._target_pose, grasped, width, speed)
        failure = None
        if not success:
            tb = self.model.geom_size[self._table_geom]
            tc = self.model.geom_pos[self._table_geom]
            off_xy = abs(obj[0] - tc[0]) > tb[0] or abs(obj[1] - tc[1]) > tb[1]
            if obj[2] < -0.05 or off_xy:
                failure = "object_off_table"
            elif not np.all(np.isfinite(self.data.qpos)):
                failure = "simulation_unstable"
        return {
            "success": success,
            "is_success": success,
            "failure": failure,
            "grasped": grasped,
            "object_pose": obj.astype(np.float32),
            "object_speed": speed,
            "target_pose": self._target_pose.astype(np.float32),
            "gripper_width": width,
            "applied_action": applied.astype(np.float32),
            "clamped": bool(clamped),
            "task": cfg.task,
        }

    def privileged_info(self) -> Dict[str, Any]:
        """The ``info`` dict for the current state (e.g. right after reset)."""
        info = self._info(self._last_action, False)
        info["steps"] = self._steps
        return info

    # ------------------------------------------------------------------ rendering
    def _ensure_renderer(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.cfg.image_height, self.cfg.image_width)
            _LIVE_ENVS.add(self)
        return self._renderer

    def render(self, depth: bool = True) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """RGB uint8 (H, W, 3) and metric depth float32 (H, W) from the scene camera.

        Depth is z-depth along the optical axis in m (what an aligned RGB-D camera reports);
        background pixels (no geometry) read the far plane (~100 m): treat > 20 m as invalid.
        """
        r = self._ensure_renderer()
        r.update_scene(self.data, camera=self._cam)
        img = r.render().copy()
        if not depth:
            return img, None
        r.enable_depth_rendering()
        r.update_scene(self.data, camera=self._cam)
        dm = r.render().astype(np.float32)
        r.disable_depth_rendering()
        return img, dm

    def camera_intrinsics(self) -> Dict[str, float]:
        """Pinhole intrinsics of the scene camera (ROS convention: pixel centres at integers)."""
        w, h = self.cfg.image_width, self.cfg.image_height
        fovy = math.radians(float(self.model.cam_fovy[self._cam]))
        fy = 0.5 * h / math.tan(0.5 * fovy)
        return {"width": w, "height": h, "fx": fy, "fy": fy, "cx": (w - 1) / 2.0, "cy": (h - 1) / 2.0}

    def camera_extrinsics(self) -> Dict[str, np.ndarray]:
        """Camera pose in the base frame in the optical convention (x right, y down, z forward).

        Returns {"position": (3,), "quat_xyzw": (4,), "rotation": (3, 3)}.
        """
        d = self.data
        pos = d.cam_xpos[self._cam].copy()
        # MuJoCo cameras look along -z with y up; the optical frame is x right, y down, z forward.
        rot = d.cam_xmat[self._cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        q = np.zeros(4)
        mujoco.mju_mat2Quat(q, rot.reshape(9))
        return {"position": pos, "quat_xyzw": quat_wxyz_to_xyzw(q), "rotation": rot}

    def project(self, points) -> np.ndarray:
        """Project base-frame points (N, 3) to pixel coordinates (N, 2) [u, v] of the scene camera."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        ex = self.camera_extrinsics()
        k = self.camera_intrinsics()
        pc = (pts - ex["position"]) @ ex["rotation"]
        u = k["fx"] * pc[:, 0] / pc[:, 2] + k["cx"]
        v = k["fy"] * pc[:, 1] / pc[:, 2] + k["cy"]
        return np.stack([u, v], axis=1)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
