"""Simulated Franka (MuJoCo) speaking the real drivers' topics.

Publishes what franka_ros2 + realsense2_camera publish (joint states, EE pose, gripper joint
states, colour, aligned 16UC1 depth, camera infos) plus privileged sim topics (object ground
truth, task info) and /clock; accepts the command resrl sends a real arm: an absolute EE target
PoseStamped + a gripper command. The success oracle publishes the sparse reward on the episode
event topic (source ORACLE).

Lockstep (default): observation t is published, the sim waits for the command stamped t, steps
the physics one control period and publishes t+1 -- faster than real time and deterministic for
a seed. ``lockstep:=false`` steps on a wall-clock timer with the latest command (held if none).
During "demo" episodes a scripted expert plays the teleoperator (Intervention messages).
"""
from __future__ import annotations

import json
import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from resrl import topics
from resrl.control import SCRIPTED_DEMONSTRATOR
from resrl.geometry import quat_to_rotvec
from resrl.msg import EpisodeEvent, Intervention, TrackedObjectPose, TrackedObjects
from resrl.node_config import SimRobotNodeConfig
from resrl.ros import qos
from resrl.ros.convert import ns_to_stamp, numpy_to_pose, pose_to_numpy, stamp_to_ns
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.params import declare_dataclass
from resrl.ros.sim_state import SimStatePublishers
from resrl.sim.franka_env import FrankaTableEnv, tracked_objects
from resrl.sim.scripted import ScriptedExpert, load_task_config
from resrl.srv import ResetEpisode

FINGER_WIDTH_PER_JOINT = 0.5   # each finger joint moves half of the gripper width


class SimRobotNode(Node):
    def __init__(self):
        super().__init__("sim_robot")
        cfg = declare_dataclass(self, SimRobotNodeConfig)   # render defaults to obs_mode == "image"
        self.lockstep = cfg.lockstep
        self.timeout_s = cfg.lockstep_timeout_s
        self.base_frame = cfg.frame_id
        self.camera_frame = cfg.camera_frame
        self.seed = cfg.seed
        size = cfg.camera_size
        task_cfg = load_task_config(cfg.task, overrides={"sim": dict(
            seed=self.seed, render=cfg.render, control_hz=cfg.control_rate_hz,
            image_width=size, image_height=size)})
        self.env = FrankaTableEnv(task_cfg.sim)
        self.dt_ns = int(round(1e9 / task_cfg.sim.control_hz))
        # Plays the teleoperator in demo episodes (privileged: knows the object and target).
        self.expert = ScriptedExpert(task_cfg, seed=self.seed) if cfg.scripted_expert else None

        self.lock = threading.RLock()
        self.t = 1                      # global control step (stamp = t * dt)
        self.episode_id = 0
        self.episode_type = "train"
        self.active = False             # an episode is running (not yet terminal)
        self.obs = None
        self.info = {}
        self.target = None              # latest command (stamp_ns, pose vector)
        self.gripper_cmd = {}           # stamp_ns -> command
        self.published_at = 0.0
        self.publish_due = None

        sensor = qos.sensor(self)
        self.state_pubs = SimStatePublishers(self, sensor, self.base_frame, self.camera_frame)
        self.gt_pub = self.create_publisher(TrackedObjects, topics.OBJECT_POSES_GT, sensor)
        self.task_pub = self.create_publisher(String, topics.TASK_INFO, qos.CONTROL)
        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, 10)
        self.event_pub = self.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        self.intervention_pub = self.create_publisher(Intervention, topics.INTERVENTION, qos.EVENTS)
        self.create_subscription(PoseStamped, topics.TARGET_POSE, self._on_target, qos.CONTROL)
        self.create_subscription(JointState, topics.GRIPPER_COMMAND, self._on_gripper, qos.CONTROL)
        self.create_service(ResetEpisode, topics.RESET_EPISODE, self._on_reset)
        wall_timer(self, 0.01 if self.lockstep else 1.0 / task_cfg.sim.control_hz, self._tick)
        with self.lock:
            self.obs = self.env.reset(seed=self.seed)
            self.info = {"object_pose": self.obs["object_poses"], "target_pose": self.obs["target_pose"]}
            self.publish_due = time.monotonic()

    @property
    def stamp_ns(self) -> int:
        return self.t * self.dt_ns

    # --- commands -----------------------------------------------------------------------------
    def _on_target(self, msg: PoseStamped):
        v = pose_to_numpy(msg.pose)
        if not np.all(np.isfinite(v)):
            self.get_logger().error("non-finite target pose ignored (holding)", throttle_duration_sec=2.0)
            return
        with self.lock:
            self.target = (stamp_to_ns(msg.header.stamp), v)
        self._try_step()

    def _on_gripper(self, msg: JointState):
        if not msg.position or not np.isfinite(msg.position[0]):
            self.get_logger().error("empty / non-finite gripper command ignored", throttle_duration_sec=2.0)
            return
        with self.lock:
            ns = stamp_to_ns(msg.header.stamp)
            self.gripper_cmd[ns] = float(np.clip(msg.position[0], 0.0, 1.0))
            for old in [k for k in self.gripper_cmd if k < ns - 50 * self.dt_ns]:
                del self.gripper_cmd[old]
        self._try_step()

    def _action_from_command(self, pose_vec, gripper) -> np.ndarray:
        return np.concatenate([pose_vec[:3], quat_to_rotvec(pose_vec[3:7]), [gripper]]).astype(np.float32)

    def _try_step(self):
        with self.lock:
            if not self.lockstep or not self.active or self.target is None or self.publish_due is not None:
                return
            stamp, pose_vec = self.target
            if stamp != self.stamp_ns or stamp not in self.gripper_cmd:
                return
            self._step(self._action_from_command(pose_vec, self.gripper_cmd[stamp]))

    def _step(self, action):
        try:
            self.obs, _, terminated, truncated, self.info = self.env.step(action)
        except Exception as exc:   # a physics/IK failure ends the episode instead of stalling the loop
            self.get_logger().error(f"sim step failed: {exc!r}; aborting episode {self.episode_id}")
            self.active = False
            self._event(EpisodeEvent.ABORT, 0.0, note=f"sim step failed: {exc}")
            return
        self.t += 1
        if terminated or truncated:
            success = bool(self.info["success"])
            code = EpisodeEvent.SUCCESS if success else (EpisodeEvent.FAILURE if terminated else EpisodeEvent.TIMEOUT)
            self.active = False
            self._publish_obs()
            self._event(code, 1.0 if success else 0.0, note=str(self.info.get("failure") or ""))
        else:
            self._publish_obs()

    def _tick(self):
        step_now = False
        with self.lock:
            now = time.monotonic()
            if self.publish_due is not None and now >= self.publish_due:
                self.publish_due = None
                self._publish_obs()
                step_now = True   # a command for this stamp may already be here
            elif not self.lockstep and self.active:
                grip = self.gripper_cmd[max(self.gripper_cmd)] if self.gripper_cmd else 0.0
                if self.target is not None:
                    self._step(self._action_from_command(self.target[1], grip))
                else:
                    # No command yet: a real arm holds its pose and keeps streaming its state, so
                    # the loop can start from any of its observations (stepping only on a command
                    # deadlocked a run whose one observation after the reset was missed).
                    state = np.asarray(self.obs["state"], dtype=np.float32)
                    self._step(np.concatenate([state[:6], [grip]]).astype(np.float32))
            elif (self.lockstep and self.active and self.publish_due is None
                  and now - self.published_at > self.timeout_s):
                # (Not while a reset's first observation waits for its head start: re-sending it
                # early got it answered while stepping was still blocked, and the answered stamp
                # was not answered again -- a 0.5 s stall at most episode starts.)
                target = self.target[0] if self.target else None
                self.get_logger().warning(
                    f"no command for step {self.t} (stamp {self.stamp_ns}) in {self.timeout_s}s: last target "
                    f"stamp {target}, gripper stamps {sorted(self.gripper_cmd)[-3:]}; re-sending observation")
                self._publish_obs()   # a lost message must not stall the loop: re-send observation t
        if step_now:
            self._try_step()

    # --- episodes -----------------------------------------------------------------------------
    def _on_reset(self, request, response):
        with self.lock:
            if self.active:
                self._event(EpisodeEvent.RESET, 0.0, note="reset before episode end")
            seed = None if request.seed < 0 else int(request.seed)
            try:
                self.obs = self.env.reset(seed=seed)
            except Exception as exc:
                response.success, response.message = False, f"sim reset failed: {exc}"
                return response
            self.info = {"object_pose": self.obs["object_poses"], "target_pose": self.obs["target_pose"]}
            self.t += 1
            self.episode_id += 1
            self.episode_type = request.episode_type or "train"
            if self.expert is not None:
                self.expert.reset(seed if seed is not None else self.episode_id)
            self.active = True
            self._event(EpisodeEvent.START, 0.0, note=self.episode_type)
            # Events and observations travel on different topics: give START a head start.
            self.publish_due = time.monotonic() + 0.05
            response.success, response.episode_id = True, self.episode_id
            response.message = f"episode {self.episode_id} ({self.episode_type}) seed={seed}"
        return response

    def _event(self, code: int, reward: float, note: str = ""):
        msg = EpisodeEvent(event=code, source=EpisodeEvent.SOURCE_ORACLE if code != EpisodeEvent.START
                           else EpisodeEvent.SOURCE_SYSTEM, episode_id=self.episode_id, reward=reward, note=note)
        msg.header.stamp = ns_to_stamp(self.stamp_ns)
        self.event_pub.publish(msg)

    # --- observation out ----------------------------------------------------------------------
    def _publish_obs(self):
        stamp = ns_to_stamp(self.stamp_ns)
        obs = self.obs
        if self.expert is not None and self.active and self.episode_type == "demo":
            self._publish_expert(stamp)
        self.clock_pub.publish(Clock(clock=stamp))
        info = {"stamp_ns": self.stamp_ns, "step": self.t, "episode_id": self.episode_id,
                **{k: np.asarray(obs[k]).tolist() for k in ("object_poses", "target_pose", "gripper_width", "state")}}
        self.task_pub.publish(String(data=json.dumps(info)))
        gt = TrackedObjects()
        gt.header.stamp, gt.header.frame_id = stamp, self.base_frame
        for object_id, pose in tracked_objects(self.env.cfg.task, obs):
            gt.objects.append(TrackedObjectPose(header=gt.header, object_id=object_id,
                                                pose=numpy_to_pose(pose), confidence=1.0, valid=True))
        self.gt_pub.publish(gt)
        width = float(obs["gripper_width"][0])
        self.state_pubs.publish(self.env, obs, stamp, np.concatenate([obs["ee_pos"], obs["ee_quat"]]),
                                [width * FINGER_WIDTH_PER_JOINT] * 2)
        self.published_at = time.monotonic()

    def _publish_expert(self, stamp):
        try:
            action = np.asarray(self.expert.act(self.obs, self.info).expert_action, dtype=np.float32)
        except Exception as exc:
            self.get_logger().error(f"scripted expert failed: {exc}", throttle_duration_sec=2.0)
            return
        msg = Intervention(active=True, action=action.tolist(), source=SCRIPTED_DEMONSTRATOR)
        msg.header.stamp = stamp
        self.intervention_pub.publish(msg)


def main(args=None):
    return run_node(SimRobotNode, args)


if __name__ == "__main__":
    main()
