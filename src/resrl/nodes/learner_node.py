"""Replay / learner node: stores transitions crash-safely, warms up with Cal-QL on the demos,
trains online, and pushes new residual and critic weights over topics (no shared filesystem).

``session:=auto`` (simulation) also runs the session plan: it resets the robot for each demo /
train / eval episode through the reset service and finishes the run after an all-success
evaluation block or the step budget, writing metrics, plots and the final checkpoint to run_dir.
``session:=manual``: episodes start and end by keyboard events; the node only records and learns.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from rclpy.node import Node
from std_msgs.msg import String

from resrl import topics
from resrl.algos.learner import Learner, load_configs
from resrl.configs import ConfigError
from resrl.models import build_critic, build_residual
from resrl.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from resrl.msg import CommandedAction, EpisodeEvent, GateState, PolicyWeights
from resrl.recorder import EpisodeRecorder, Terminal, command
from resrl.ros import qos
from resrl.ros.convert import stamp_to_ns
from resrl.ros.node_main import request_stop, run_node, wall_timer
from resrl.ros.observation import ObservationSubscriber
from resrl.ros.params import declare_dataclass
from resrl.node_config import LearnerNodeConfig, SharedConfig, episode_buffers, make_buffers, obs_spec
from resrl.session import EpisodeRecord, SessionPlan, SessionStore
from resrl.trainer import Trainer, parse_cpus
from resrl.srv import LoadCheckpoint, ResetEpisode, SaveCheckpoint

TERMINAL = {EpisodeEvent.SUCCESS: (True, False), EpisodeEvent.FAILURE: (False, False),
            EpisodeEvent.TIMEOUT: (False, True), EpisodeEvent.ABORT: (False, True)}


# What a waited-for node must be subscribed to before episode 1: the episode boundaries, the
# takeovers and the commands (every transition's action).
SESSION_BOUNDARY_TOPICS = (topics.EPISODE_EVENTS, topics.INTERVENTION, topics.COMMAND)


class LearnerNode(Node):
    def __init__(self):
        super().__init__("replay_learner")
        p = self.declare_parameter
        self.shared = declare_dataclass(self, SharedConfig)
        self.cfg = cfg = declare_dataclass(self, LearnerNodeConfig)
        self.obs_mode = self.shared.obs_mode
        self.session_mode = cfg.session
        self.run_dir = Path(cfg.run_dir).resolve()
        self.period_ns = int(round(1e9 / self.shared.control_rate_hz))
        self.arbiter_mode = cfg.vgm.mode
        seed = self.shared.seed
        self.updates_per_step = cfg.updates_per_step
        # Stamps on the control-period grid, one command per step (lockstep sim, robot bridge):
        # an episode's last transition then waits for a last command that the terminal event overtook.
        self.step_grid = cfg.step_grid
        self.wait_for_nodes = [n for n in cfg.wait_for_nodes.split(",") if n]   # before episode 1
        self.startup_wait_s = cfg.startup_wait_s
        self.terminal_wait_s = cfg.terminal_wait_s
        self.label_skew_ns = int(cfg.label_skew_ms * 1e6)
        self.terminal_wall = 0.0
        self.model_cfg = self.shared.model
        self.model_cfg.obs_mode = self.obs_mode
        self.session_cfg = cfg.session_plan
        self.train_enabled = self.arbiter_mode != "base_only" and p("learner.enabled", True).value

        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Resume: the replay reloads its episode files, the plan its records, the trainer its state.
        self.store = SessionStore(self.run_dir)
        self.resume_path = self.run_dir / "checkpoints" / "resume.pt"
        self.online, self.offline = make_buffers(obs_spec(self.obs_mode, self.model_cfg), cfg.replay, self.run_dir)
        # Bag mode: rosbag2 sessions / teleop demos (comma-separated folders) join the replay first.
        self._ingest_bags([b.strip() for b in cfg.offline_bags.split(",") if b.strip()], cfg.bag_tolerance_ms)
        try:
            learner_cfg, algo_cfgs = load_configs(cfg.learner_config or self._share("config/learner.yaml"))
        except (ConfigError, FileNotFoundError) as exc:
            raise SystemExit(f"learner config: {exc}")
        # Every `learner:` field is a ROS parameter whose default is the YAML value.
        learner_cfg = dataclasses.replace(
            learner_cfg, seed=seed, **{f.name: p(f"learner.{f.name}", getattr(learner_cfg, f.name)).value
                                       for f in dataclasses.fields(learner_cfg) if f.name != "seed"})
        algo = learner_cfg.algo
        torch.set_num_threads(max(1, self.shared.torch_threads))   # 2 cores shared with 7 nodes
        torch.manual_seed(seed)   # network init (the in-process runner seeds the same way)
        learner = Learner(build_residual(self.model_cfg), build_critic(self.model_cfg), learner_cfg, algo_cfgs)
        try:
            train_cpus = parse_cpus(cfg.train_cpus)
            self.trainer = Trainer(learner, self.online, self.offline, log=self.get_logger().info,
                                   nice=cfg.train_nice, cpus=train_cpus)
        except ValueError as exc:
            raise SystemExit(f"learner: {exc}")
        self.learner = learner
        self.plan = SessionPlan(self.session_cfg, seed)
        self.resumed = False
        if self.session_mode == "auto" and self.store.exists():
            self._resume()
        self.lock = threading.RLock()
        self.recorder: Optional[EpisodeRecorder] = None
        self.early_commands: deque = deque(maxlen=200)   # commands that overtook their episode's START
        self.episode = {"id": 0, "kind": "train", "seed": 0, "gates": []}
        self.published_version = 0
        self.gate_traces = {}
        self.state = "idle" if self.session_mode == "auto" else "manual"

        self.obs = ObservationSubscriber(self, self.obs_mode, self.model_cfg.num_objects,
                                         self.model_cfg.conf_threshold, int(self.shared.max_skew_ms * 1e6),
                                         on_part=lambda stamp: self._pump(),
                                         # The learner may trail the loop while it trains: keep a
                                         # whole episode of observation parts, not the last few.
                                         history=cfg.obs_history)
        self.create_subscription(CommandedAction, topics.COMMAND, self._on_command, qos.RECORDED)
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)
        self.create_subscription(GateState, topics.GATE_STATE, self._on_gate, qos.RECORDED)
        self.weights_pubs = {m: self.create_publisher(PolicyWeights, t, qos.LATCHED)
                             for m, t in (("residual", topics.RESIDUAL_WEIGHTS), ("critic", topics.CRITIC_WEIGHTS))}
        self.reset_client = self.create_client(ResetEpisode, topics.RESET_EPISODE)
        self.create_service(SaveCheckpoint, topics.SAVE_CHECKPOINT, self._on_save)
        self.create_service(LoadCheckpoint, topics.LOAD_CHECKPOINT, self._on_load)
        wall_timer(self, 0.02, self._tick)
        # What the operator console shows (keyboard_node): one small JSON status a second.
        self.status_pub = self.create_publisher(String, topics.LEARNER_STATUS, qos.CONTROL)
        self.bag_matched: Optional[dict] = None   # the session bag recorder's matched writers per topic
        self.bag_was_ready = False
        self.create_subscription(String, topics.BAG_STATUS, self._on_bag_status, qos.LATCHED)
        wall_timer(self, 1.0, self._publish_status)
        self.trainer.start()
        self._reset_future = None
        self._reset_sent = 0.0
        self.t_start = time.monotonic()
        self.get_logger().info(f"learner up: algo={algo} session={self.session_mode} run_dir={self.run_dir} "
                               f"replay online={len(self.online)} demos={len(self.offline)}"
                               + (f"; resumed at episode {len(self.plan.records)}" if self.resumed else ""))

    def _resume(self):
        """The same launch after a crash: continue the plan from <run_dir>/session.json."""
        try:
            data = self.store.restore(self.plan)
        except (ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"cannot resume {self.store.path}: {exc}")
        if self.resume_path.is_file():
            self.trainer.load_state(self.resume_path)
        # Without a finished warm-up in the trainer state, the warm-up runs again on the reloaded demos.
        self.plan.warmup_done = bool(data.get("warmup_done")) and self.trainer.warmup_done
        self.trainer.warmup_done = self.plan.warmup_done
        self.resumed = True

    def _ingest_bags(self, bags, tolerance_ms: float) -> None:
        from resrl.bags import BagError, RebuildConfig, read_bag, rebuild
        cfg = RebuildConfig(obs_mode=self.obs_mode, num_objects=self.model_cfg.num_objects,
                            conf_threshold=self.model_cfg.conf_threshold, image_size=self.model_cfg.image_size,
                            tolerance_ms=tolerance_ms, control_rate_hz=1e9 / self.period_ns)
        for bag in bags:
            try:
                data = read_bag(bag)
                report = rebuild(data, self.online, self.offline, cfg)
            except BagError as exc:
                self.get_logger().error(f"offline bag skipped: {exc}")
                continue
            for issue in data.issues:
                self.get_logger().warning(f"bag issue: {issue}")
            self.get_logger().info(f"bag {bag}: {report.episodes} episodes, {report.steps} steps, "
                                   f"{report.successes} successes ({report.source})")

    @staticmethod
    def _share(rel: str) -> str:
        from resrl.launch_runner import package_share
        return str(package_share() / rel)

    # --- data in ----------------------------------------------------------------------------
    def _on_event(self, msg: EpisodeEvent):
        with self.lock:
            if msg.event == EpisodeEvent.START:
                if self.recorder is not None and not self.recorder.finished:
                    if self.state == "manual":   # the operator labelled it and went on at once
                        self._stop_waiting(self.recorder, "the next episode started")
                    else:                        # auto: this node starts episodes only once one is stored
                        self.recorder.abort()
                kind = msg.note or "train"
                buffers = episode_buffers(kind, self.online, self.offline)
                self.recorder = EpisodeRecorder(kind, buffers, self._get_obs,
                                                {"episode_id": int(msg.episode_id), "seed": self.episode["seed"]},
                                                period_ns=self.period_ns if self.step_grid else None)
                self.episode.update(id=msg.episode_id, kind=kind, gates=[], label_source=None)
                early = [c for c in self.early_commands if c.episode_id == msg.episode_id]
                self.early_commands = deque(c for c in self.early_commands if c.episode_id > msg.episode_id)
                for cmd in sorted(early, key=lambda c: c.step):
                    self._record_command(cmd)
            elif msg.event in TERMINAL and (self.recorder is None or msg.episode_id != self.episode["id"]):
                self.get_logger().warning(f"terminal event for unrecorded episode {msg.episode_id} (missed START)")
                if self.state == "running":
                    self.state = "finishing"
            elif msg.event in TERMINAL and self.recorder is not None:
                success, truncated = TERMINAL[msg.event]
                if self.recorder.terminal is None:
                    self.episode["label_source"] = msg.source
                self.recorder.set_terminal(Terminal(stamp_to_ns(msg.header.stamp), success,
                                                    float(msg.reward), truncated))
                self.terminal_wall = time.monotonic()
            elif msg.event == EpisodeEvent.RESET and self.recorder is not None and self.recorder.terminal is None:
                self.recorder.abort()
        self._pump()

    def _on_command(self, msg: CommandedAction):
        with self.lock:
            if msg.episode_id > self.episode["id"]:
                # Commands and episode events travel on different topics: the first commands of an
                # episode can overtake its START. Keep them until the START arrives.
                self.early_commands.append(msg)
                return
            if self.recorder is None or msg.episode_id != self.episode["id"]:
                return
            self._record_command(msg)
        self._pump()

    def _record_command(self, msg: CommandedAction):
        self.recorder.add_command(command(msg.step, stamp_to_ns(msg.header.stamp), msg.action, msg.base_action,
                                          msg.residual_action, msg.lambda_per_dim, msg.intervention,
                                          msg.composed_action))

    def _on_gate(self, msg: GateState):
        with self.lock:
            if msg.episode_id == self.episode["id"]:
                self.episode["gates"].append((msg.lambda_value, msg.g_greedy, msg.g_regress, msg.g_escape, msg.value))

    def _get_obs(self, stamp_ns: int, base_action):
        return self.obs.get(stamp_ns, base_action)

    def _pump(self):
        with self.lock:
            rec = self.recorder
            if rec is None or rec.finished:
                return
            before = rec.steps
            try:
                done = rec.pump(self.offline)
            except Exception as exc:   # bad data must not kill the learner: drop this episode
                self.get_logger().error(f"episode {self.episode['id']}: cannot store ({exc}); aborted")
                rec.abort()
                return
            if rec.kind == "train" and self.train_enabled:   # base_only / learner off: nothing to train
                self.trainer.add_credits((rec.steps - before) * self.updates_per_step)
            if done:
                self._episode_done(rec)

    # --- learning (the trainer thread learns; this thread publishes) ------------------------------
    def _publish_weights(self):
        """Send the networks as they are between two updates; never inside an evaluation block."""
        if self.plan.in_eval_block or self.learner.policy_version <= self.published_version:
            return
        snap = self.trainer.snapshot()
        for model, (payload, sha) in snap.weights.items():
            msg = PolicyWeights(model=model, version=snap.version, format="torch_state_dict",
                                config_json=self.model_cfg.to_json(), payload=payload, sha256=sha)
            msg.header.stamp = self.get_clock().now().to_msg()
            self.weights_pubs[model].publish(msg)
        self.published_version = snap.version

    def _check_warmup(self) -> bool:
        """True while the warm-up is owed or running (no episode starts meanwhile)."""
        if self.plan.warmup_done or not self.plan.needs_warmup():
            return False
        if not self.train_enabled:
            self.plan.warmup_done = True   # base_only / learner off: the demos are only recorded
            return False
        if self.trainer.warmup_done:
            self.plan.warmup_done = True
            self._publish_weights()
            self._save_resume_state()
            return False
        self.trainer.request_warmup()
        return True

    def _save_resume_state(self):
        try:
            if self.session_mode == "auto":
                self.trainer.save_state(self.resume_path)
                self.store.save(self.plan)
        except OSError as exc:
            self.get_logger().error(f"resume state not saved: {exc}")

    # --- episodes -----------------------------------------------------------------------------
    def _episode_done(self, rec: EpisodeRecorder):
        gates = np.asarray(self.episode["gates"], dtype=np.float32).reshape(-1, 5)
        activity = {g: float(gates[:, i].mean()) if len(gates) else 0.0
                    for i, g in ((1, "greedy"), (2, "regress"), (3, "escape"))}
        record = EpisodeRecord(index=len(self.plan.records), kind=rec.kind, seed=self.episode["seed"],
                               steps=rec.steps, success=bool(rec.terminal.success), env_steps_total=0,
                               mean_lambda=float(gates[:, 0].mean()) if len(gates) else 0.0,
                               gate_activity=activity, wall_s=time.monotonic() - self.t_start)
        self.plan.record(record)
        if len(self.gate_traces) < 6 and rec.kind != "demo":
            self.gate_traces[f"{rec.kind}-{record.index}"] = gates.tolist()
        self.get_logger().info(
            f"episode {record.index:4d} {rec.kind:5s} steps={rec.steps:3d} success={int(record.success)} "
            f"train_sr20={self.plan.train_success_rate():.2f} env_steps={self.plan.env_steps} "
            f"lambda={record.mean_lambda:.2f} gates(g/r/e)={activity['greedy']:.2f}/"
            f"{activity['regress']:.2f}/{activity['escape']:.2f} policy_v={self.learner.policy_version}")
        self._write_metrics()
        if self.session_mode == "auto":
            self.store.save(self.plan)    # the replay has this episode on disk already (fsynced)
        if self.state == "running":
            self.state = "finishing"

    def _stop_waiting(self, rec: EpisodeRecorder, why: str) -> bool:
        """The recorded episode's last command or terminal observation is still missing (``why`` we
        stop waiting): store it with the commands that came, or drop it when its terminal
        observation never completed (a transition with a wrong next observation is worse than
        none). True when stored."""
        episode, terminal = self.episode["id"], rec.terminal
        skew = self.label_skew_ns if self.episode.get("label_source") == EpisodeEvent.SOURCE_KEYBOARD else None
        missing = self.obs.assembler.missing(terminal.stamp_ns, skew) if terminal is not None else []
        unstored = len(rec.queue)
        if rec.finish_now(self.offline, lambda stamp, base: self.obs.get(stamp, base, max_skew_ns=skew)):
            self.get_logger().warning(f"episode {episode}: stored without its last command ({why})")
            self._episode_done(rec)
            return True
        if terminal is None:
            self.get_logger().warning(f"episode {episode}: never labelled; dropped ({why})")
        else:
            self.get_logger().error(
                f"episode {episode}: terminal observation (stamp {terminal.stamp_ns}) incomplete ({why}), "
                f"missing {missing}; {unstored} commands unstored; episode aborted")
        return False

    def _tick(self):
        with self.lock:
            rec = self.recorder
            if (self.state in ("running", "manual") and rec is not None and rec.terminal is not None
                    and not rec.finished and time.monotonic() - self.terminal_wall > self.terminal_wait_s):
                if not self._stop_waiting(rec, f"no more after {self.terminal_wait_s}s") and self.state == "running":
                    self.state = "finishing"
            if self.state == "manual":
                self._check_warmup()
                self._publish_weights_if_idle()
                return
            if self.state == "finishing" and self.trainer.idle():
                self._publish_weights()
                if self.plan.records and self.plan.records[-1].kind == "train":
                    self._save_resume_state()
                self.state = "idle"
            if self.state == "idle":
                if self._check_warmup():
                    return   # the trainer thread is warming up on the demos
                nxt = self.plan.next_episode()
                if nxt is None:
                    self.state = "done"
                    threading.Thread(target=self._finish, daemon=True).start()
                    return
                waiting = self._graph_waits_for()
                if waiting:
                    if time.monotonic() - self.t_start > 10.0:   # say why the episode has not started
                        self.get_logger().warning(f"the next episode waits for {waiting}", throttle_duration_sec=10.0)
                    return
                kind, seed = nxt
                self.episode["seed"] = seed
                self._reset_future = self.reset_client.call_async(ResetEpisode.Request(seed=seed, episode_type=kind))
                self._reset_sent = time.monotonic()
                self.state = "resetting"
            elif self.state == "resetting" and not self._reset_future.done() \
                    and time.monotonic() - self._reset_sent > self.cfg.reset_timeout_s:
                self.get_logger().warning(f"no reset response in {self.cfg.reset_timeout_s} s; asking again")
                self.reset_client.remove_pending_request(self._reset_future)
                self.state = "idle"
            elif self.state == "resetting" and self._reset_future.done():
                res = self._reset_future.result()
                if res is None or not res.success:
                    self.get_logger().error(f"reset failed: {getattr(res, 'message', 'no response')}; retrying")
                    self.state = "idle"
                else:
                    self.state = "running"

    def _publish_status(self):
        with self.lock:
            status = {"state": self.state, "updates": self.learner.num_updates,
                      "warmup_updates": self.learner.num_warmup_updates, "warmup_done": self.plan.warmup_done,
                      "policy_version": self.learner.policy_version, "replay_online": len(self.online),
                      "replay_demos": len(self.offline), "episodes": len(self.plan.records),
                      "train_sr20": self.plan.train_success_rate()}
        self.status_pub.publish(String(data=json.dumps(status)))

    def _on_bag_status(self, msg: String):
        self.bag_matched = json.loads(msg.data).get("matched_writers")

    def _graph_waits_for(self) -> str:
        """What the next episode still waits for ("" when the graph is ready). Discovery takes a
        moment: an episode started before every node listens loses its START."""
        if time.monotonic() - self.t_start < self.startup_wait_s:
            return "the startup wait"
        if not self.reset_client.service_is_ready():
            return f"the reset service {self.reset_client.srv_name}"
        silent = [t for t in (topics.COMMAND, topics.VLA_CHUNK, topics.RESIDUAL, topics.EPISODE_EVENTS)
                  if self.count_publishers(t) == 0]
        if silent:
            return f"publishers on {silent}"
        missing = [name for name in self.wait_for_nodes if name not in self.get_node_names()]
        if missing:
            return f"nodes {missing}"
        # The session bag must hold the whole session: its recorder being listed is not enough. Each
        # writer of the session's events, takeovers and commands that this node sees must already be
        # matched with the recorder's subscription (its latched status), or what that writer sends
        # first is lost to the bag (seen once in ~12 full test runs, 2026-12-07: under load the
        # sim's writers matched the recorder 3 s after it subscribed, and the bag had no episode 1).
        # Checked until it first holds: later, a respawned writer's first messages may miss the bag,
        # but the session never waits on the recorder again.
        if "bag_recorder" in self.wait_for_nodes and not self.bag_was_ready:
            matched = self.bag_matched
            if matched is None:
                return "the bag recorder's status"
            writers = {t: self.count_publishers(t) for t in SESSION_BOUNDARY_TOPICS}
            short = {t: n for t, n in writers.items() if matched.get(t, 0) < n}
            self.bag_was_ready = not short
            if short:
                return (f"the bag recorder to match every writer (writers {short}, matched "
                        f"{ {t: matched.get(t, 0) for t in short} })")
        return ""

    def _publish_weights_if_idle(self):
        if self.recorder is None or self.recorder.finished:
            self._publish_weights()

    # --- outputs ------------------------------------------------------------------------------
    def _write_metrics(self):
        data = {"episodes": [r.__dict__ for r in self.plan.records], "eval_blocks": self.plan.eval_results,
                "eval_train_steps": self.plan.eval_train_steps, "train_steps": self.plan.train_steps,
                "env_steps": self.plan.env_steps, "finished_reason": self.plan.finished_reason,
                "arbiter_mode": self.arbiter_mode, "obs_mode": self.obs_mode, "algo": self.learner.config.algo,
                "policy_version": self.learner.policy_version, "updates": self.learner.num_updates,
                "warmup_updates": self.learner.num_warmup_updates, "warmup_s": self.trainer.warmup_s,
                "last_train_metrics": self.trainer.last_metrics, "resumed": self.resumed,
                "wall_s": time.monotonic() - self.t_start,
                "gate_traces": self.gate_traces}
        tmp = self.run_dir / "metrics.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.run_dir / "metrics.json")

    def _checkpoint(self, path: Optional[Path] = None) -> Path:
        path = path or self.run_dir / "checkpoints" / "final.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.trainer.lock:   # between two updates
            save_checkpoint(path, {"residual": self.learner.deployed_actor, "critic": self.learner.critic},
                            self.model_cfg, self.learner.policy_version, {"updates": self.learner.num_updates})
        return path

    def _finish(self):
        self.trainer.wait_idle()
        with self.lock:
            self._write_metrics()
            ckpt = self._checkpoint()
        try:
            from resrl.plots import plot_run
            plot_run(self.run_dir / "metrics.json", self.run_dir)
        except Exception as exc:
            self.get_logger().error(f"plots failed: {exc}")
        self.get_logger().info(f"session finished ({self.plan.finished_reason}); checkpoint {ckpt}")
        self.trainer.stop()
        request_stop()

    def _on_save(self, request, response):
        try:
            with self.lock:
                path = self._checkpoint(Path(request.path) if request.path else
                                        self.run_dir / "checkpoints" / f"v{self.learner.policy_version}.pt")
            response.success, response.path, response.version = True, str(path), self.learner.policy_version
        except (OSError, CheckpointError) as exc:
            response.success, response.message = False, str(exc)
        return response

    def _on_load(self, request, response):
        try:
            states, _, version, _ = load_checkpoint(request.path)
            with self.lock:
                response.version = self.trainer.load_weights(states, version)
                self.plan.warmup_done = True
                self._publish_weights()
            response.success = True
        except (CheckpointError, KeyError, RuntimeError) as exc:
            response.success, response.message = False, f"{request.path}: {exc}"
        return response

    def on_shutdown(self):
        # Before the ROS context goes away: the update in flight finishes, then the thread ends.
        self.trainer.stop()


def main(args=None):
    return run_node(LearnerNode, args)


if __name__ == "__main__":
    main()
