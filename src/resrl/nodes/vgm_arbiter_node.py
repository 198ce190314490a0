"""VGM arbiter node: a_t = a_VLA_t + lambda_t * a_res_t, with gates from the critic, mode switch,
safety clamp, human override and gate telemetry.

One decision per control step, taken when the observation for that step is complete and a base
action exists, or when an input missed its deadline (resrl.control.StepDeadline: ``chunk_wait_s``
for the chunk, ``residual_wait_s`` for the residual, then ``on_late_residual``). Without a base
action, with a stale or invalid input, the robot holds its pose.
"""
from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Tuple

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray
from geometry_msgs.msg import PoseStamped

from resrl import topics
from resrl.actions import GRIPPER, InvalidActionError, as_action
from resrl.arbiter.pld import build_hybrid
from resrl.arbiter.safety import SafetyFilter
from resrl.arbiter.vgm import VGMArbiter
from resrl.control import SCRIPTED_DEMONSTRATOR, ControlStep, Decision, StepDeadline, session_seeds
from resrl.node_config import ArbiterNodeConfig, SharedConfig
from resrl.msg import CommandedAction, EpisodeEvent, GateState, Intervention, PolicyWeights, ResidualAction
from resrl.policy_runtime import PolicyRuntime, WeightsError
from resrl.ros import qos
from resrl.ros.chunks import ChunkSubscriber
from resrl.ros.convert import action_to_pose_stamped, ns_to_stamp, stamp_to_ns
from resrl.ros.markers import action_markers
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.observation import ObservationSubscriber
from resrl.ros.params import declare_dataclass
from resrl.srv import SetArbiterMode

TERMINAL_EVENTS = (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.ABORT, EpisodeEvent.TIMEOUT)


class VGMArbiterNode(Node):
    def __init__(self):
        super().__init__("vgm_arbiter")
        self.shared = declare_dataclass(self, SharedConfig)
        self.cfg = declare_dataclass(self, ArbiterNodeConfig)
        self.obs_mode = self.shared.obs_mode
        self.period_ns = int(round(1e9 / self.shared.control_rate_hz))
        self.frame_id = self.shared.frame_id
        self.deadline = StepDeadline(self.cfg.chunk_wait_s, self.cfg.residual_wait_s, self.cfg.on_late_residual)
        self.intervention_timeout_s = self.cfg.intervention_timeout_s
        self.model_cfg = self.shared.model
        self.model_cfg.obs_mode = self.obs_mode
        self.safety = SafetyFilter(self.shared.safety)
        self.vgm = VGMArbiter(self.cfg.vgm)
        self.critic = PolicyRuntime("critic", self.model_cfg, threads=self.shared.torch_threads)
        seeds = session_seeds(self.shared.seed)
        self.control = ControlStep(self.vgm, self.safety, self.critic.critic, xi=self.model_cfg.xi,
                                   seed=seeds["escape"], hybrid=build_hybrid(self.cfg.pld, seeds["pld"]))

        self.lock = threading.RLock()
        self.episode_id = 0
        self.episode_kind = "train"    # START event note: train | eval | demo
        self.residuals: Dict[int, Tuple[np.ndarray, ResidualAction]] = {}
        self.intervention: Optional[Intervention] = None
        self.last_step = -1
        self.pending: Optional[Tuple[int, float]] = None   # (stamp_ns, StepDeadline.open() time)
        self.last_command = None                             # (sent wall time, target msg, gripper msg)
        self.terminal_ns = -1                                # stamp of the last terminal observation

        self.obs = ObservationSubscriber(self, self.obs_mode, self.model_cfg.num_objects,
                                         self.model_cfg.conf_threshold,
                                         int(self.shared.max_skew_ms * 1e6), on_part=self._on_part)
        self.chunks = ChunkSubscriber(self, self.cfg.chunks,
                                      lambda: self.last_step, on_chunk=self._try_decide)
        self.create_subscription(ResidualAction, topics.RESIDUAL, self._on_residual, qos.CONTROL)
        self.create_subscription(Intervention, topics.INTERVENTION, self._on_intervention, qos.EVENTS)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        self.create_subscription(PolicyWeights, topics.CRITIC_WEIGHTS, self._on_weights, qos.LATCHED)
        self.target_pub = self.create_publisher(PoseStamped, topics.TARGET_POSE, qos.CONTROL)
        self.gripper_pub = self.create_publisher(JointState, topics.GRIPPER_COMMAND, qos.CONTROL)
        self.command_pub = self.create_publisher(CommandedAction, topics.COMMAND, qos.RECORDED)
        self.gate_pub = self.create_publisher(GateState, topics.GATE_STATE, qos.RECORDED)
        self.marker_pub = self.create_publisher(MarkerArray, topics.MARKERS, 10)
        self.create_service(SetArbiterMode, topics.SET_ARBITER_MODE, self._on_set_mode)
        wall_timer(self, 0.02, self._on_timer)   # wall-time waits (chunk / residual timeouts)
        self.get_logger().info(f"arbiter up: mode={self.vgm.mode} obs_mode={self.obs_mode}")

    # --- inputs ---------------------------------------------------------------------------
    def _on_residual(self, msg: ResidualAction):
        try:
            action = as_action(msg.action, name=f"residual step {msg.step}")
        except InvalidActionError as exc:
            self.get_logger().error(f"{exc}; ignored (treated as missing)", throttle_duration_sec=2.0)
            return
        policy = None   # the action before exploration noise (empty: none was added)
        if len(msg.policy_action):
            try:
                policy = as_action(msg.policy_action, name=f"residual step {msg.step} policy_action")
            except InvalidActionError as exc:   # the gates then judge the residual as executed
                self.get_logger().error(f"{exc}; the gates judge the executed residual", throttle_duration_sec=2.0)
        with self.lock:
            self.residuals[msg.step] = (action, msg, policy)
            for old in [s for s in self.residuals if s < msg.step - 50]:
                del self.residuals[old]
        self._try_decide()

    def _on_intervention(self, msg: Intervention):
        with self.lock:
            self.intervention = msg

    def _on_event(self, msg: EpisodeEvent):
        with self.lock:
            if msg.event == EpisodeEvent.START and msg.episode_id != self.episode_id:
                self.episode_id = msg.episode_id
                self.episode_kind = msg.note or "train"
                self.intervention = None   # a takeover never carries over into a new episode
                t_base = self.control.start_episode(self.episode_kind)
                if t_base:
                    self.get_logger().info(f"episode {msg.episode_id}: PLD hybrid rollout, base alone for {t_base} steps")
                self.chunks.start_episode(msg.episode_id)
            elif msg.event in TERMINAL_EVENTS or msg.event == EpisodeEvent.RESET:
                self.control.end_episode(msg.event == EpisodeEvent.SUCCESS)
                self.vgm.reset()
                # The terminal observation needs no command: stop waiting for its inputs.
                self.terminal_ns = max(self.terminal_ns, stamp_to_ns(msg.header.stamp))
                if self.pending is not None and self.pending[0] <= self.terminal_ns:
                    self.pending = None

    def _on_weights(self, msg: PolicyWeights):
        if msg.model != "critic":
            return
        try:
            self.critic.load(bytes(msg.payload), msg.sha256, msg.version, msg.config_json)
            self.get_logger().info(f"critic weights v{msg.version} loaded")
        except WeightsError as exc:
            self.get_logger().error(f"{exc}; keeping v{self.critic.version}")

    def _on_set_mode(self, request, response):
        try:
            lam = request.lambda_static if request.lambda_static >= 0 else None
            with self.lock:
                response.previous_mode = self.vgm.set_mode(request.mode, lam)
            response.success, response.message = True, f"mode {request.mode}"
        except ValueError as exc:
            response.success, response.message = False, str(exc)
        return response

    def _on_part(self, stamp_ns: int):
        with self.lock:
            step = stamp_ns // self.period_ns
            if stamp_ns <= self.terminal_ns:
                return   # the terminal observation of an episode needs no command
            if step > self.last_step and (self.pending is None or stamp_ns > self.pending[0]):
                self.pending = (stamp_ns, self.deadline.open())
            elif step == self.last_step and self.last_command is not None:
                # The robot re-sent observation t: our command for t was lost. Send it again.
                if time.monotonic() - self.last_command[0] > 0.5:
                    self.last_command = (time.monotonic(), *self.last_command[1:])
                    for pub, msg in zip((self.target_pub, self.gripper_pub), self.last_command[1:]):
                        pub.publish(msg)
        self._try_decide()

    def _on_timer(self):
        self._try_decide()
        with self.lock:
            if self.pending is not None and self.deadline.clock() - self.pending[1] > 1.0:
                stamp_ns = self.pending[0]
                step = stamp_ns // self.period_ns
                self.get_logger().warning(
                    f"step {step}: waiting >1s (episode {self.episode_id} {self.episode_kind}; missing obs parts "
                    f"{self.obs.assembler.missing(stamp_ns)}; latest chunk {self.chunks.scheduler.latest_chunk_id}; "
                    f"residual {'yes' if step in self.residuals else 'no'})", throttle_duration_sec=1.0)

    # --- one control step -------------------------------------------------------------------
    def _try_decide(self):
        with self.lock:
            if self.pending is None:
                return
            stamp_ns, opened = self.pending
            step = stamp_ns // self.period_ns
            state = self.obs.state(stamp_ns)
            if state is None:
                return
            human = self._active_intervention(stamp_ns)
            a_vla, info = self.chunks.action_at(step)
            residual = self.residuals.get(step)
            obs = self.obs.get(stamp_ns, a_vla if a_vla is not None else state)
            late = self.deadline.check(opened, human=human is not None, demo=self.episode_kind == "demo",
                                       has_base=a_vla is not None, has_residual=residual is not None,
                                       needs_residual=self.control.needs_residual(a_vla, human),
                                       has_obs=obs is not None)
            if late is None:
                return
            self.pending = None
            self.last_step = step
            no_base = self.deadline.hold_reason(late)
            if no_base:
                a_vla = None
            if late:
                self.get_logger().warning(f"step {step}: late {late} ({self.deadline.summary()})",
                                          throttle_duration_sec=5.0)
            self._decide(stamp_ns, step, state, obs, a_vla, info, residual, human, no_base)

    def _active_intervention(self, stamp_ns: int) -> Optional[np.ndarray]:
        if self.intervention is None:
            return None
        msg = self.intervention
        if not msg.active:
            return None
        # Staleness on the message clock (sim time in lockstep, where wall time says nothing).
        age_ns = stamp_ns - stamp_to_ns(msg.header.stamp)
        if msg.source == SCRIPTED_DEMONSTRATOR:
            if age_ns != 0:
                return None   # the sim's scripted demonstrator answers each observation exactly
        elif age_ns > self.intervention_timeout_s * 1e9:
            return None   # a human's device (keys, SpaceMouse, gamepad) streams on its own clock
        try:
            return as_action(msg.action, name="intervention action")
        except InvalidActionError as exc:
            self.get_logger().error(f"{exc}; holding", throttle_duration_sec=2.0)
            return None

    def _decide(self, stamp_ns, step, state, obs, a_vla, info, residual, human, no_base: str = ""):
        a_res, msg, policy = residual if residual is not None else (None, None, None)
        version = msg.policy_version if msg is not None else 0
        d = self.control.decide(state, obs, a_vla, a_res, human,
                                no_base_reason=no_base or f"no base action ({info.status})", a_res_policy=policy)
        if d.critic_error:
            self.get_logger().error(d.critic_error, throttle_duration_sec=2.0)
        self._publish(ns_to_stamp(stamp_ns), step, state, d, info.chunk_id, version)

    def _publish(self, stamp, step, state, d: Decision, chunk_id, version):
        action, report, human, held, reason = d.action, d.report, d.intervention, d.held, d.hold_reason
        target = action_to_pose_stamped(action, stamp, self.frame_id)
        grip = JointState(name=["gripper"], position=[float(action[GRIPPER][0])])
        grip.header.stamp = stamp
        self.target_pub.publish(target)
        self.gripper_pub.publish(grip)
        self.last_command = (time.monotonic(), target, grip)
        cmd = CommandedAction(step=int(step), episode_id=self.episode_id, action=action.tolist(),
                              composed_action=(d.composed if d.composed is not None else action).tolist(),
                              limits_hit=list(d.limits_hit), base_action=d.base.tolist(),
                              residual_action=d.residual.tolist(),
                              lambda_per_dim=report.lambda_per_dim.tolist(), intervention=human, held=held,
                              chunk_id=int(chunk_id or 0), policy_version=int(version))
        cmd.header.stamp, cmd.header.frame_id = stamp, self.frame_id
        self.command_pub.publish(cmd)
        gate = GateState(step=int(step), episode_id=self.episode_id, mode=report.mode,
                         advantage_mean=report.advantage_mean, advantage_std=report.advantage_std,
                         advantage_lcb=report.advantage_lcb, value=report.value,
                         value_window_max=report.value_window_max, value_drop=report.value_drop,
                         value_progress=report.value_progress, g_greedy=report.g_greedy,
                         g_regress=report.g_regress, g_escape=report.g_escape,
                         escape_latched=report.escape_latched, lambda_value=report.lambda_value,
                         lambda_max=report.lambda_max, lambda_per_dim=report.lambda_per_dim.tolist(),
                         human_override=human, held=held, hold_reason=reason)
        gate.header.stamp = stamp
        self.gate_pub.publish(gate)
        if self.marker_pub.get_subscription_count() > 0:
            self.marker_pub.publish(action_markers(state, d.base, d.residual, action, report.lambda_value,
                                                   stamp, self.frame_id))

    def on_shutdown(self):
        self.get_logger().info(f"stopping: {self.deadline.summary()}")


def main(args=None):
    return run_node(VGMArbiterNode, args)


if __name__ == "__main__":
    main()
