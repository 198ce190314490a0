"""The sim_vgm session in one process (ROS-free): the same modules the nodes run, wired by calls.

    result = run_session(InProcessConfig(mode="vgm", seed=0))

Per step, exactly what the node graph does in lockstep: the scripted VLA re-plans (a_VLA = A[0]),
the simulated tracker adds pose noise / dropout, the residual (with exploration noise in train
episodes) and the critic's Q/V feed the VGM gates, the safety filter clamps the composed action,
the sim steps, and the transition goes to the replay; the learner makes ``updates_per_step``
updates per stored step, and new weights reach the acting copies at episode ends (as the learner
node publishes them). Demo episodes are the scripted expert taking over (intervention transitions).

It exists for sweeps the 2-core machine cannot afford through eight processes (Table I over seeds
and gate ablations, recipe tuning); ``benchmarks/table1.py`` runs both this and the node graph.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np
import torch

from resrl.algos.learner import Learner, load_configs
from resrl.arbiter.safety import SafetyConfig, SafetyFilter
from resrl.arbiter.schedules import build_schedule
from resrl.arbiter.vgm import VGMArbiter, VGMConfig, compose, target_jump_m
from resrl.models import build_critic, build_residual
from resrl.models.config import ModelConfig
from resrl.perception.pose_tracking import SimulatedTrackers, TrackerNoiseConfig
from resrl.policy_runtime import explore as explore_residual
from resrl.policy_runtime import gate_inputs, to_batch
from resrl.replay import ReplayBuffer, sample_mixed
from resrl.session import EpisodeRecord, SessionConfig, SessionPlan
from resrl.sim.franka_env import FrankaTableEnv, tracked_objects
from resrl.sim.scripted import ScriptedExpert, ScriptedVLA, load_task_config

REPO = Path(__file__).resolve().parents[3]


@dataclass
class InProcessConfig:
    task: str = "pick_place"
    mode: str = "vgm"                        # vgm | static | base_only | residual_only
    seed: int = 0
    learner_yaml: str = str(REPO / "config" / "learner.yaml")
    learner: Dict[str, object] = field(default_factory=dict)      # overrides of the `learner:` section
    algo: Dict[str, object] = field(default_factory=dict)         # overrides of the online algorithm's section
    vgm: Dict[str, object] = field(default_factory=dict)          # VGMConfig overrides (ablations, lambda_static)
    session: Dict[str, object] = field(default_factory=dict)      # SessionConfig overrides
    model: Dict[str, object] = field(default_factory=dict)        # ModelConfig overrides
    tracker: Dict[str, object] = field(default_factory=dict)      # TrackerNoiseConfig overrides
    # Fraction of xi, train episodes; None: the residual node's value in config/sim_vgm.yaml.
    exploration_noise: Optional[float] = None
    exploration_noise_clip: Optional[float] = None
    updates_per_step: int = 1
    replay_gamma: float = 0.97
    replay_n_step: int = 3
    conf_threshold: float = 0.5
    torch_threads: int = 1
    # --- [issue-15 suite hooks, vgm branch; the lead ports them onto the shared control step] ---
    # Peer-arm lambda schedule (resrl.arbiter.schedules), run in static mode; {}: none.
    schedule: Dict[str, object] = field(default_factory=dict)
    # Frozen-policy evaluation: no learner updates during evaluation episodes and evaluation
    # episodes never enter the replay (a block measures one snapshot).
    frozen_eval: bool = True


def _defaults_from_sim_yaml() -> dict:
    """The node graph's parameters (config/sim_vgm.yaml) are this runner's defaults too."""
    import yaml
    data = yaml.safe_load((REPO / "config" / "sim_vgm.yaml").read_text())
    return {name: data.get(name, {}).get("ros__parameters", {}) for name in data}


class InProcessSession:
    def __init__(self, cfg: InProcessConfig, log: Callable[[str], None] = print):
        self.cfg, self.log = cfg, log
        torch.set_num_threads(max(1, cfg.torch_threads))
        params = _defaults_from_sim_yaml()
        common, learner_p = params["/**"], params["replay_learner"]
        model_kw = {**common["model"], **cfg.model, "obs_mode": "object"}
        model_kw["xi"] = tuple(model_kw["xi"])
        self.model_cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in model_kw.items()})
        task_cfg = load_task_config(cfg.task, overrides={"sim": {"seed": cfg.seed, "render": False}})
        self.env = FrankaTableEnv(task_cfg.sim)
        self.vla = ScriptedVLA(task_cfg)
        self.expert = ScriptedExpert(task_cfg, seed=cfg.seed)
        tracker_kw = {k.split(".", 2)[-1]: v for k, v in params["pose_tracker"].items() if k.startswith("tracker.noise.")}
        self.tracker = SimulatedTrackers(TrackerNoiseConfig(**{**tracker_kw, **cfg.tracker}), cfg.seed + 11)
        vgm_kw = {k.split(".", 1)[1]: v for k, v in params["vgm_arbiter"].items() if k.startswith("vgm.")}
        self.vgm = VGMArbiter(VGMConfig(**{**vgm_kw, **cfg.vgm, "mode": cfg.mode}))
        self.safety = SafetyFilter(SafetyConfig())

        sess_kw = {k.split(".", 1)[1]: v for k, v in learner_p.items() if k.startswith("session_plan.")}
        self.plan = SessionPlan(SessionConfig(**{**sess_kw, **cfg.session}), cfg.seed)
        lrn_kw = {k.split(".", 1)[1]: v for k, v in learner_p.items() if k.startswith("learner.")}
        learner_cfg, algo_cfgs = load_configs(cfg.learner_yaml)
        learner_cfg = dataclasses.replace(learner_cfg, **{**lrn_kw, **cfg.learner, "seed": cfg.seed})
        name = learner_cfg.algo
        algo_cfgs[name] = dataclasses.replace(algo_cfgs[name], **cfg.algo)
        rng = np.random.default_rng(cfg.seed)
        self.learner = Learner(build_residual(self.model_cfg), build_critic(self.model_cfg), learner_cfg,
                               algo_cfgs, sampler=functools.partial(sample_mixed, rng=rng))
        k = self.model_cfg.num_objects
        spec = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
                "object_poses": ((7 * k,), "float32"), "object_conf": ((k,), "float32")}
        capacity = int(learner_p.get("replay.capacity", 100_000))
        self.online = ReplayBuffer(spec, capacity, None, cfg.replay_gamma, cfg.replay_n_step, "online")
        self.offline = ReplayBuffer(spec, capacity, None, cfg.replay_gamma, cfg.replay_n_step, "demos")
        self.noise_rng = np.random.default_rng(cfg.seed + 7)
        self.xi = np.asarray(self.model_cfg.xi, dtype=np.float32)
        self.train_enabled = cfg.mode != "base_only"
        residual_p = params["residual_policy"]
        self.noise = (residual_p["exploration_noise"] if cfg.exploration_noise is None else cfg.exploration_noise,
                      residual_p["exploration_noise_clip"] if cfg.exploration_noise_clip is None
                      else cfg.exploration_noise_clip)
        self.last_outcome = ""
        self.schedule = build_schedule(cfg.schedule, cfg.seed + 13)   # [issue-15 hook]
        if self.schedule is not None and cfg.mode != "static":
            raise ValueError("a lambda schedule runs the arbiter in static mode (--mode static)")
        self.gate_trace: list = []   # [issue-15 hook] per-step (lambda, g_greedy, g_harm, g_regress, g_escape, V) of the last episode
        self._acting()

    def _acting(self) -> None:
        """Snapshot the learner's networks as the nodes' copies (weights are published per episode)."""
        self.actor = copy.deepcopy(self.learner.deployed_actor).eval()
        self.critic = copy.deepcopy(self.learner.critic).eval()

    def _observe(self, raw: dict, a_vla: np.ndarray) -> dict:
        """The learner's observation, as resrl.ros.observation assembles it from the nodes' topics."""
        k = self.model_cfg.num_objects
        poses, confs = np.zeros((k, 7), np.float32), np.zeros(k, np.float32)
        for i, (object_id, gt) in enumerate(tracked_objects(self.env.cfg.task, raw)[:k]):
            pose, conf, valid = self.tracker.track(object_id, gt.astype(np.float64))
            confs[i] = conf if valid else 0.0
            if valid and conf >= self.cfg.conf_threshold:   # else zeros: the paper's dropout fallback
                poses[i] = pose
        return {"state": raw["state"].astype(np.float32), "base_action": a_vla.astype(np.float32),
                "object_poses": poses.reshape(-1), "object_conf": confs}

    @torch.inference_mode()
    def _residual(self, obs: dict, explore: bool) -> np.ndarray:
        a_res = self.actor(to_batch(obs, "object"))[0].numpy()
        if explore:
            return explore_residual(a_res, self.xi, *self.noise, self.noise_rng)
        return a_res.astype(np.float32)


    def run_episode(self, kind: str, seed: int) -> EpisodeRecord:
        raw = self.env.reset(seed=seed)
        info = self.env.privileged_info()
        for part in (self.tracker, self.vgm, self.safety, self.vla):
            part.reset()
        self.expert.reset(seed)
        buffers = [self.offline] if kind == "demo" else [self.online]
        if kind == "eval" and self.cfg.frozen_eval:   # [issue-15 hook] evaluation stays out of the replay
            buffers = []
        self.gate_trace = []
        max_dlambda = max_jump = 0.0
        a_vla = self.vla.infer(raw, info)[0].astype(np.float32)
        obs = self._observe(raw, a_vla)
        for buf in buffers:
            buf.start_episode(obs, {"kind": kind, "seed": seed})
        lambdas, gates, success, steps = [], [], False, 0
        for t in range(self.env.max_episode_steps):
            human = None
            if kind == "demo":
                human = self.expert.act(raw, info).expert_action.astype(np.float32)
                candidate, a_res, lam = human, human - a_vla, 0.0
            else:
                a_res = self._residual(obs, explore=kind == "train") if self.cfg.mode != "base_only" \
                    else np.zeros(7, np.float32)
                q_c = q_b = v = None
                if self.cfg.mode == "vgm":
                    q_c, q_b, v = gate_inputs(self.critic, obs, a_vla, a_res, "object")
                if self.schedule is not None:   # [issue-15 hook] peer schedule sets lambda
                    self.vgm.lambda_static = self.schedule.lambda_for(self.plan.train_steps + t, kind == "train")
                report = self.vgm.step(q_c, q_b, v)
                max_dlambda = max(max_dlambda, report.lambda_delta)
                max_jump = max(max_jump, target_jump_m(np.full(3, report.lambda_delta), a_res))
                self.gate_trace.append((report.lambda_value, report.g_greedy, report.g_harm, report.g_regress,
                                        report.g_escape, report.value))
                candidate = compose(a_vla, a_res, report)
                lam = float(np.mean(report.lambda_per_dim))
                lambdas.append(lam)
                gates.append((report.g_greedy, report.g_regress, report.g_escape))
            decision = self.safety.filter(candidate, obs["state"], 0.0)
            action = decision.action.astype(np.float32)
            raw, reward, term, trunc, info = self.env.step(action)
            steps += 1
            done = bool(term or trunc or t == self.env.max_episode_steps - 1)
            success = bool(info["success"])
            a_vla = a_vla if done else self.vla.infer(raw, info)[0].astype(np.float32)
            next_obs = self._observe(raw, a_vla)
            # Takeovers teach a_human - a_VLA (pre-clamp), like resrl.recorder.
            residual = a_res if human is None else (human - obs["base_action"])
            for buf in buffers:
                buf.add_step(action, residual, lam, float(success), next_obs, done=bool(term),
                             truncated=bool(done and not term), intervention=human is not None)
            obs = next_obs
            frozen = kind == "eval" and self.cfg.frozen_eval   # [issue-15 hook]
            if kind != "demo" and self.train_enabled and self.plan.warmup_done and not frozen:
                for _ in range(self.cfg.updates_per_step):
                    self.learner.train_step(self.online, self.offline)
            if done:
                break
        for buf in buffers:
            buf.end_episode(success)
        if not success:   # why it failed, for the log: where the object ended up
            gap = np.linalg.norm(info["object_pose"][:2] - info["target_pose"][:2])
            self.last_outcome = (f" failed: grasped={int(info['grasped'])} object-target {gap * 100:.1f} cm"
                                 f" object z {info['object_pose'][2] * 100:.1f} cm {info['failure'] or ''}")
        else:
            self.last_outcome = ""
        g = np.asarray(gates, np.float32).reshape(-1, 3)
        activity = {n: float(g[:, i].mean()) if len(g) else 0.0 for i, n in enumerate(("greedy", "regress", "escape"))}
        activity["max_dlambda"], activity["max_jump_mm"] = max_dlambda, 1000.0 * max_jump   # [issue-15 hook]
        activity["harm"] = float(np.mean([r[2] for r in self.gate_trace])) if self.gate_trace else 0.0
        return EpisodeRecord(index=len(self.plan.records), kind=kind, seed=seed, steps=steps, success=success,
                             env_steps_total=0, mean_lambda=float(np.mean(lambdas)) if lambdas else 0.0,
                             gate_activity=activity)

    def run(self) -> dict:
        t0 = time.monotonic()
        warmup_s = 0.0
        while True:
            if self.plan.needs_warmup():
                tw = time.monotonic()
                if self.train_enabled:
                    self.learner.warmup(self.offline)
                warmup_s = time.monotonic() - tw
                self.plan.warmup_done = True
                self._acting()
            nxt = self.plan.next_episode()
            if nxt is None:
                break
            kind, seed = nxt
            rec = self.run_episode(kind, seed)
            rec.wall_s = time.monotonic() - t0
            self.plan.record(rec)
            if kind != "demo":
                self._acting()
            self.log(f"episode {rec.index:4d} {kind:5s} steps={rec.steps:3d} success={int(rec.success)} "
                     f"train_sr20={self.plan.train_success_rate():.2f} env_steps={self.plan.env_steps} "
                     f"lambda={rec.mean_lambda:.2f} gates(g/r/e)={rec.gate_activity.get('greedy', 0):.2f}/"
                     f"{rec.gate_activity.get('regress', 0):.2f}/{rec.gate_activity.get('escape', 0):.2f}{self.last_outcome}")
        return {"episodes": [r.__dict__ for r in self.plan.records], "eval_blocks": self.plan.eval_results,
                "eval_train_steps": self.plan.eval_train_steps, "train_steps": self.plan.train_steps,
                "env_steps": self.plan.env_steps, "finished_reason": self.plan.finished_reason,
                "arbiter_mode": self.cfg.mode, "warmup_s": warmup_s, "wall_s": time.monotonic() - t0,
                "updates": self.learner.num_updates, "config": dataclasses.asdict(self.cfg)}


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
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="override; SECTION: learner | algo (the online algorithm's) | calql | vgm | session | model | tracker"
                         " | schedule (resrl.arbiter.schedules, with --mode static)")
    args = ap.parse_args(argv)
    over: Dict[str, Dict[str, object]] = {k: {} for k in ("learner", "algo", "vgm", "session", "model", "tracker",
                                                           "schedule")}
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
                          **over)
    m = run_session(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({k: m[k] for k in ("eval_blocks", "eval_train_steps", "train_steps", "env_steps",
                                        "finished_reason", "wall_s")}))
    return 0


__all__ = ["InProcessConfig", "InProcessSession", "run_session"]

if __name__ == "__main__":
    raise SystemExit(main())
