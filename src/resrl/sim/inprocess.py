"""The sim_vgm session in one process (ROS-free): the same modules the nodes run, wired by calls.

    result = run_session(InProcessConfig(mode="vgm", seed=0))

Per step, exactly what the node graph does in lockstep: the VLA chunk provider's backend (the
scripted VLA, or ``vla.backend: lerobot`` -- a LeRobot checkpoint) is asked for a new chunk when the
one in charge has ``vla.prefetch_steps`` rows left (the sim YAML: every step, a_VLA = A[0]) and the
arbiter's chunk scheduler picks the row,
the simulated tracker adds pose noise / dropout, the residual (with exploration noise in train
episodes) and the critic's Q/V feed the VGM gates, the safety filter clamps the composed action,
the sim steps, and the transition goes to the replay; the learner makes ``updates_per_step``
updates per stored step, and new weights reach the acting copies at episode ends (as the learner
node publishes them). Demo episodes are the scripted expert taking over (intervention transitions);
with ``takeover`` it also takes over train episodes that stall (a scripted human in the loop).

It exists for sweeps the 2-core machine cannot afford through eight processes (Table I over seeds
and gate ablations, recipe tuning); ``benchmarks/table1.py`` runs both this and the node graph.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from resrl.algos.learner import Learner, load_configs
from resrl.arbiter.pld import build_hybrid
from resrl.arbiter.chunks import ChunkScheduler
from resrl.arbiter.safety import SafetyFilter
from resrl.arbiter.vgm import VGMArbiter
from resrl.configs import ConfigError, from_dict
from resrl.arbiter.schedules import build_schedule
from resrl.arbiter.vgm import target_jump_m
from resrl.control import ControlStep, session_seeds
from resrl.models import build_critic, build_residual
from resrl.node_config import REPO, episode_buffers, learner_overrides, load_graph, make_buffers, obs_spec
from resrl.perception.pose_tracking import SimulatedTrackers
from resrl.actions import explore as explore_residual, explores
from resrl.policy_runtime import gate_inputs, to_batch
from resrl.recorder import EpisodeRecorder, Terminal, command
from resrl.session import EpisodeRecord, SessionPlan, SessionStore
from resrl.sim.franka_env import FrankaTableEnv, tracked_objects
from resrl.sim.scripted import PHASE_PLACE, ScriptedExpert, ScriptedVLA, load_task_config
from resrl.trainer import Trainer
from resrl.vla.base import make_backend


@dataclass
class TakeoverConfig:
    """A scripted operator for train episodes (benchmark arms; on the graph the operator is a person
    at the keyboard, SpaceMouse or gamepad): once the arm has stayed within a ``within_mm`` box for
    ``after_steps`` steps while placing -- hovering without getting anywhere -- the scripted expert
    takes over to the end of the episode, as a HIL-SERL operator corrects a stuck policy. Its steps
    are interventions: the residual's label is a_human - a_VLA, and the episode also enters the demo
    buffer. 0 = never."""
    after_steps: int = 0
    within_mm: float = 10.0

    def __post_init__(self):
        if self.after_steps < 0 or self.within_mm <= 0:
            raise ConfigError(f"takeover: after_steps must be >= 0 and within_mm > 0, got {self.after_steps} "
                              f"and {self.within_mm}")


class StallWatch:
    """The EE positions of the last ``after_steps`` place-phase steps; ``active`` once they all fit in
    a ``within_mm`` box (and from then on, to the episode's end). A stalled base jitters by a few
    mm per step, so the box, not the step, tells hovering from moving."""

    def __init__(self, cfg: TakeoverConfig):
        self.cfg, self.active = cfg, False
        self.window: deque = deque(maxlen=max(1, cfg.after_steps))

    @property
    def watching(self) -> bool:
        return self.cfg.after_steps > 0 and not self.active

    def observe(self, ee_xyz: np.ndarray, phase: str) -> None:
        if phase != PHASE_PLACE:
            self.window.clear()
            return
        self.window.append(np.asarray(ee_xyz, np.float64))
        self.active = len(self.window) == self.window.maxlen and \
            float(np.ptp(np.array(self.window), axis=0).max()) < self.cfg.within_mm / 1000.0


@dataclass
class InProcessConfig:
    task: str = "pick_place"
    mode: str = "vgm"                        # vgm | static | base_only | residual_only (the graph's vgm.mode)
    seed: int = 0
    # The node graph's parameter YAML (None: config/sim_vgm.yaml): every default below comes from it.
    graph_yaml: Optional[str] = None
    learner_yaml: str = str(REPO / "config" / "learner.yaml")
    learner: Dict[str, object] = field(default_factory=dict)      # overrides of the `learner:` section
    algo: Dict[str, object] = field(default_factory=dict)         # overrides of the online algorithm's section
    vgm: Dict[str, object] = field(default_factory=dict)          # VGMConfig overrides (ablations, lambda_static)
    session: Dict[str, object] = field(default_factory=dict)      # SessionConfig overrides
    model: Dict[str, object] = field(default_factory=dict)        # ModelConfig overrides
    tracker: Dict[str, object] = field(default_factory=dict)      # TrackerNoiseConfig overrides
    # Fraction of xi, train episodes; None: the residual node's value in the graph YAML.
    exploration_noise: Optional[float] = None
    exploration_noise_clip: Optional[float] = None
    noise_free_every: Optional[int] = None   # None: the residual node's value in the graph YAML
    run_dir: Optional[str] = None            # replay + session state on disk; the same run_dir resumes
    # Peer-arm lambda schedule (resrl.arbiter.schedules: Policy Decorator's progressive schedule,
    # ResFiT's constant scale), run in static mode; {}: none. Benchmark arms only (benchmarks/suite.py).
    schedule: Dict[str, object] = field(default_factory=dict)
    # The chunk provider's ``vla.*`` overrides (resrl.node_config.VLASourceConfig), e.g. a learned
    # base: {"backend": "lerobot", "checkpoint_dir": ..., "prefetch_steps": 8}.
    vla: Dict[str, object] = field(default_factory=dict)
    torch_threads: int = 1
    takeover: Dict[str, object] = field(default_factory=dict)    # TakeoverConfig (train episodes)
    # PLD hybrid rollouts (resrl.arbiter.pld): every train episode the base acts alone for T_base ~
    # U{0..floor(alpha*T)} steps (lambda 0), then the arbiter's mode takes over; None: the graph
    # YAML's vgm_arbiter.pld.alpha (0: off).
    pld_alpha: Optional[float] = None


def _replace(obj, overrides: dict, where: str):
    """A dataclass with ``overrides`` (nested dataclass fields from mappings); unknown keys are an error."""
    merged = {**dataclasses.asdict(obj), **overrides}
    return from_dict(type(obj), merged, where)


class InProcessSession:
    def __init__(self, cfg: InProcessConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        torch.set_num_threads(max(1, cfg.torch_threads))
        graph = load_graph(cfg.graph_yaml)
        self.graph = graph
        seeds = session_seeds(cfg.seed)
        self.model_cfg = _replace(graph.shared.model, {**cfg.model, "obs_mode": "object"}, "model")
        self.period_ns = int(round(1e9 / graph.shared.control_rate_hz))
        task_cfg = load_task_config(cfg.task, overrides={"sim": {"seed": cfg.seed, "render": False}})
        self.env = FrankaTableEnv(task_cfg.sim)
        self.vla_cfg = _replace(graph.vla, cfg.vla, "vla")
        self.chunks = ChunkScheduler(graph.arbiter.chunks)   # the arbiter's
        self.chunk_id = 0
        if self.vla_cfg.backend == "sim_scripted":
            scripted = ScriptedVLA(task_cfg)
            self._vla_reset, self._vla_infer = scripted.reset, lambda raw, info, obs: scripted.infer(raw, info)
        else:   # a real backend sees what the node feeds it: EE state and the tracked poses
            backend = make_backend(self.vla_cfg.backend, **self.vla_cfg.backend_params(cfg.task))
            self._vla_reset, self._vla_infer = (lambda: backend.reset(cfg.seed)), (lambda raw, info, obs: backend.infer(obs))
        self.expert = ScriptedExpert(task_cfg, seed=cfg.seed)
        self.takeover = from_dict(TakeoverConfig, cfg.takeover, "takeover")
        self.tracker = SimulatedTrackers(_replace(graph.tracker, cfg.tracker, "tracker.noise"), seeds["tracker"])
        vgm_cfg = _replace(graph.arbiter.vgm, {**cfg.vgm, "mode": cfg.mode}, "vgm")
        pld_cfg = graph.arbiter.pld if cfg.pld_alpha is None else _replace(graph.arbiter.pld, {"alpha": cfg.pld_alpha},
                                                                             "vgm_arbiter.pld")
        if pld_cfg.alpha > 0 and cfg.mode == "base_only":
            raise ValueError("PLD hybrid rollouts hand over to a residual: not with --mode base_only")
        # The arbiter's own control step, safety config and critic call (resrl.control).
        self.control = ControlStep(VGMArbiter(vgm_cfg), SafetyFilter(graph.shared.safety),
                                   critic=lambda obs, a_vla, a_res: gate_inputs(self.critic, obs, a_vla, a_res,
                                                                                  "object"),
                                   xi=self.model_cfg.xi, seed=seeds["escape"],
                                   hybrid=build_hybrid(pld_cfg, seeds["pld"]))
        self.plan = SessionPlan(_replace(graph.learner.session_plan, cfg.session, "session_plan"), cfg.seed)
        learner_cfg, algo_cfgs = load_configs(cfg.learner_yaml)
        learner_cfg = dataclasses.replace(learner_cfg, **{**learner_overrides(graph.learner), **cfg.learner,
                                                           "seed": cfg.seed})
        name = learner_cfg.algo
        algo_cfgs[name] = dataclasses.replace(algo_cfgs[name], **cfg.algo)
        torch.manual_seed(cfg.seed)   # network init (the learner node seeds the same way)
        learner = Learner(build_residual(self.model_cfg), build_critic(self.model_cfg), learner_cfg, algo_cfgs)
        self.learner = learner
        self.online, self.offline = make_buffers(obs_spec("object", self.model_cfg), graph.learner.replay,
                                                 cfg.run_dir)
        self.trainer = Trainer(learner, self.online, self.offline, log=log)
        self.updates_per_step = graph.learner.updates_per_step
        self.step_grid = graph.learner.step_grid
        self.noise_rng = np.random.default_rng(seeds["exploration"])
        self.xi = np.asarray(self.model_cfg.xi, dtype=np.float32)
        self.train_enabled = cfg.mode != "base_only"
        self.set_exploration(cfg)
        self.store = SessionStore(cfg.run_dir) if cfg.run_dir else None
        self.resume_path = Path(cfg.run_dir) / "checkpoints" / "resume.pt" if cfg.run_dir else None
        self.resumed = False
        self.acknowledged = 0   # transitions the recorder handed to the replay (stored and fsynced)
        if self.store is not None and self.store.exists():
            data = self.store.restore(self.plan)
            if self.resume_path.is_file():
                self.trainer.load_state(self.resume_path)
            self.plan.warmup_done = bool(data.get("warmup_done")) and self.trainer.warmup_done
            self.resumed = True
        self.schedule = build_schedule(cfg.schedule, cfg.seed + 13)
        if self.schedule is not None and cfg.mode != "static":
            raise ValueError("a lambda schedule runs the arbiter in static mode (--mode static)")
        self.gate_trace: list = []   # per step of the last episode: (lambda, g_greedy, g_harm, g_regress, g_escape, V)
        self.last_outcome = ""
        self._acting()

    def _acting(self) -> None:
        """Snapshot the learner's networks as the nodes' copies (what the learner node publishes)."""
        with self.trainer.lock:
            self.actor = copy.deepcopy(self.learner.deployed_actor).eval()
            self.critic = copy.deepcopy(self.learner.critic).eval()

    def _plan(self, t: int, raw: dict, info: dict, obs: dict) -> np.ndarray:
        """a_VLA_t: a new chunk from this observation when the provider would ask for one, then
        the arbiter's row of the chunk in charge."""
        if self.chunks.needs_prefetch(t, self.vla_cfg.prefetch_steps):
            self.chunk_id += 1
            self.chunks.push(self.chunk_id, t, self._vla_infer(raw, info, obs), t)
        action, _ = self.chunks.action_at(t)
        if action is None:   # lockstep: a chunk is always in hand unless the provider's config is inconsistent
            raise RuntimeError(f"no base action at step {t}: vla.prefetch_steps {self.vla_cfg.prefetch_steps} "
                               f"vs chunk rows -- the chunk ran out before the next one was asked for")
        return action.astype(np.float32)

    def _observe(self, raw: dict, a_vla: Optional[np.ndarray] = None) -> dict:
        """The learner's observation, as resrl.ros.observation assembles it from the nodes' topics
        (``base_action`` filled in by the caller when a_VLA comes from this observation)."""
        k = self.model_cfg.num_objects
        poses, confs = np.zeros((k, 7), np.float32), np.zeros(k, np.float32)
        for i, (object_id, gt) in enumerate(tracked_objects(self.env.cfg.task, raw)[:k]):
            pose, conf, valid = self.tracker.track(object_id, gt.astype(np.float64))
            confs[i] = conf if valid else 0.0
            if valid and conf >= self.model_cfg.conf_threshold:   # else zeros: the paper's dropout fallback
                poses[i] = pose
        obs = {"state": raw["state"].astype(np.float32), "object_poses": poses.reshape(-1), "object_conf": confs}
        if a_vla is not None:
            obs["base_action"] = a_vla.astype(np.float32)
        return obs

    def _observe_and_plan(self, t: int, raw: dict, info: dict) -> dict:
        obs = self._observe(raw)
        obs["base_action"] = self._plan(t, raw, info, obs)
        return obs

    def set_exploration(self, cfg: InProcessConfig) -> None:
        """The train episodes' exploration: ``cfg``'s settings, the residual node's in the graph
        YAML where ``cfg`` leaves them None (benchmarks/suite.py re-applies it to a forked session)."""
        res = self.graph.residual
        self.noise = (res.exploration_noise if cfg.exploration_noise is None else cfg.exploration_noise,
                      res.exploration_noise_clip if cfg.exploration_noise_clip is None else cfg.exploration_noise_clip)
        self.noise_free_every = res.noise_free_every if cfg.noise_free_every is None else cfg.noise_free_every

    @torch.inference_mode()
    def _residual(self, obs: dict, explore: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(a_res to compose, the policy's action before exploration noise or None without it)."""
        a_res = self.actor(to_batch(obs, "object"))[0].numpy().astype(np.float32)
        if explore:
            return explore_residual(a_res, self.xi, *self.noise, self.noise_rng), a_res
        return a_res, None

    def _store(self, rec: EpisodeRecorder, kind: str, force: bool = False) -> bool:
        """The learner node's _pump: store what is complete, then owe updates for new train steps."""
        before = rec.steps
        done = rec.pump(self.offline, force=force)
        self.acknowledged += (rec.steps - before) * len(rec.buffers)
        if kind == "train" and self.train_enabled and self.plan.warmup_done:
            self.trainer.add_credits((rec.steps - before) * self.updates_per_step)
            self.trainer.drain()
        return done

    def run_episode(self, kind: str, seed: int) -> EpisodeRecord:
        raw = self.env.reset(seed=seed)
        info = self.env.privileged_info()
        for part in (self.tracker, self.chunks):
            part.reset()
        t_base = self.control.start_episode(kind)   # PLD: this train episode's base-only steps
        self._vla_reset()
        self.expert.reset(seed)
        observations: Dict[int, dict] = {}
        rec = EpisodeRecorder(kind, episode_buffers(kind, self.online, self.offline),
                              lambda stamp, base: {**observations[stamp], "base_action": base},
                              {"episode_id": len(self.plan.records), "seed": seed},
                              period_ns=self.period_ns if self.step_grid else None)
        obs = observations[0] = self._observe_and_plan(0, raw, info)
        a_vla = obs["base_action"]
        lambdas, gates, success, steps = [], [], False, 0
        self.gate_trace = []
        max_dlambda = max_jump = 0.0
        stall = StallWatch(self.takeover if kind == "train" else TakeoverConfig())
        noisy = explores(kind, len(self.plan.records), self.noise_free_every)
        takeover_steps = 0
        for t in range(self.env.max_episode_steps):
            human = None
            if kind == "demo" or stall.active:   # the teleoperator: every demo step, a takeover's steps
                human = self.expert.act(raw, info).expert_action.astype(np.float32)
                takeover_steps += int(kind != "demo")
            a_res = a_res_policy = None
            if self.control.needs_residual(a_vla, human):
                a_res, a_res_policy = self._residual(obs, explore=noisy)
            if self.schedule is not None:   # the peer schedule sets the static lambda of this step
                self.control.vgm.lambda_static = self.schedule.lambda_for(self.plan.train_steps + t, kind == "train")
            d = self.control.decide(obs["state"], obs, a_vla, a_res, human, a_res_policy=a_res_policy)
            if human is None:
                r = d.report
                max_dlambda = max(max_dlambda, r.lambda_delta)
                max_jump = max(max_jump, target_jump_m(np.full(3, r.lambda_delta), a_res))
                self.gate_trace.append((r.lambda_value, r.g_greedy, r.g_harm, r.g_regress, r.g_escape, r.value))
                lambdas.append(d.report.lambda_value)
                gates.append((d.report.g_greedy, d.report.g_regress, d.report.g_escape))
            rec.add_command(command(t, t * self.period_ns, d.action, d.base, d.residual, d.lambda_per_dim,
                                    d.intervention, d.composed))
            self._store(rec, kind)
            raw, reward, term, trunc, info = self.env.step(d.action)
            if stall.watching:
                stall.observe(raw["state"][:3], self.expert.vla.phase(raw))
            steps += 1
            success = bool(info["success"])
            done = bool(term or trunc)
            stamp = (t + 1) * self.period_ns
            if done:   # the terminal observation (its base action: the last one, as the recorder asks)
                observations[stamp] = self._observe(raw, a_vla)
                rec.set_terminal(Terminal(stamp, success, float(reward), truncated=not term))
                if not self._store(rec, kind):
                    self._store(rec, kind, force=True)
                break
            obs = observations[stamp] = self._observe_and_plan(t + 1, raw, info)
            a_vla = obs["base_action"]
        self.control.end_episode(success)
        if not success:   # why it failed, for the log: where the object ended up
            gap = np.linalg.norm(info["object_pose"][:2] - info["target_pose"][:2])
            self.last_outcome = (f" failed: grasped={int(info['grasped'])} object-target {gap * 100:.1f} cm"
                                 f" object z {info['object_pose'][2] * 100:.1f} cm {info['failure'] or ''}")
        else:
            self.last_outcome = ""
        g = np.asarray(gates, np.float32).reshape(-1, 3)
        activity = {n: float(g[:, i].mean()) if len(g) else 0.0 for i, n in enumerate(("greedy", "regress", "escape"))}
        activity["max_dlambda"], activity["max_jump_mm"] = max_dlambda, 1000.0 * max_jump
        activity["harm"] = float(np.mean([r[2] for r in self.gate_trace])) if self.gate_trace else 0.0
        activity["takeover_steps"] = float(takeover_steps)
        activity["t_base"] = float(t_base)
        return EpisodeRecord(index=len(self.plan.records), kind=kind, seed=seed, steps=steps, success=success,
                             env_steps_total=0, mean_lambda=float(np.mean(lambdas)) if lambdas else 0.0,
                             gate_activity=activity)

    def _save(self, trainer_state: bool) -> None:
        if self.store is None:
            return
        if trainer_state:
            self.trainer.save_state(self.resume_path)
        self.store.save(self.plan)

    def run(self) -> dict:
        t0 = time.monotonic()
        while True:
            if self.plan.needs_warmup():
                if self.train_enabled:
                    self.trainer.warmup_now()
                self.trainer.warmup_done = self.plan.warmup_done = True
                self._acting()
                self._save(trainer_state=True)
            nxt = self.plan.next_episode()
            if nxt is None:
                break
            kind, seed = nxt
            rec = self.run_episode(kind, seed)
            rec.wall_s = time.monotonic() - t0
            self.plan.record(rec)
            self._save(trainer_state=kind == "train")
            if kind != "demo" and not self.plan.in_eval_block:   # frozen-policy evaluation blocks
                self._acting()
            self.log(f"episode {rec.index:4d} {kind:5s} steps={rec.steps:3d} success={int(rec.success)} "
                     f"train_sr20={self.plan.train_success_rate():.2f} env_steps={self.plan.env_steps} "
                     f"lambda={rec.mean_lambda:.2f} gates(g/r/e)={rec.gate_activity.get('greedy', 0):.2f}/"
                     f"{rec.gate_activity.get('regress', 0):.2f}/{rec.gate_activity.get('escape', 0):.2f}{self.last_outcome}")
        return {"episodes": [r.__dict__ for r in self.plan.records], "eval_blocks": self.plan.eval_results,
                "eval_train_steps": self.plan.eval_train_steps, "train_steps": self.plan.train_steps,
                "env_steps": self.plan.env_steps, "finished_reason": self.plan.finished_reason,
                "arbiter_mode": self.cfg.mode, "warmup_s": self.trainer.warmup_s, "wall_s": time.monotonic() - t0,
                "updates": self.learner.num_updates, "resumed": self.resumed, "config": dataclasses.asdict(self.cfg)}


def run_session(cfg: InProcessConfig, log: Callable[[str], None] = print) -> dict:
    return InProcessSession(cfg, log).run()


def main(argv=None) -> int:
    """``python -m resrl.sim.inprocess --seed 0 --set learner.policy_ema=0 --set calql.gated_target=false``:
    one session, its progress lines on stderr, a JSON summary on stdout (recipe experiments)."""
    import argparse
    import json
    import sys

    import yaml
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--mode", default="vgm")
    ap.add_argument("--task", default="pick_place")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-env-steps", type=int, default=3000)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--exploration-noise", type=float, default=None)
    ap.add_argument("--run-dir", default=None, help="replay + session state on disk; the same run dir resumes")
    ap.add_argument("--pld-alpha", type=float, default=None,
                    help="PLD hybrid rollouts: each train episode starts with U{0..alpha*T} base-only steps")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override; SECTION: learner | algo (the online algorithm's) | calql | vgm | session | model | tracker"
                         " | schedule (resrl.arbiter.schedules, with --mode static) | vla (the chunk provider's vla.*, e.g."
                         " --set vla.backend=lerobot --set vla.checkpoint_dir=DIR --set vla.prefetch_steps=8) | takeover"
                         " (TakeoverConfig: a scripted operator takes over stalled train episodes, e.g."
                         " --set takeover.after_steps=10)")
    args = ap.parse_args(argv)
    over: Dict[str, Dict[str, object]] = {k: {} for k in ("learner", "algo", "vgm", "session", "model", "tracker",
                                                           "schedule", "vla", "takeover")}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        section = "algo" if section in ("calql", "rlpd", "td3") else section
        if section not in over or not name or not _:
            ap.error(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION in {sorted(over)} or calql/rlpd/td3")
        over[section][name] = yaml.safe_load(value)
    over["session"] = {"max_env_steps": args.max_env_steps, "eval_every": args.eval_every,
                       "stop_eval_on_failure": True, "eval_trigger_streak": 10_000, **over["session"]}
    cfg = InProcessConfig(task=args.task, mode=args.mode, seed=args.seed, exploration_noise=args.exploration_noise,
                          run_dir=args.run_dir, pld_alpha=args.pld_alpha, **over)
    m = run_session(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({k: m[k] for k in ("eval_blocks", "eval_train_steps", "train_steps", "env_steps",
                                        "finished_reason", "wall_s")}))
    return 0


__all__ = ["InProcessConfig", "InProcessSession", "TakeoverConfig", "run_session"]

if __name__ == "__main__":
    raise SystemExit(main())
