"""Bag -> replay transitions, through the same ``EpisodeRecorder`` the live learner uses.

Session bags (resrl's own topics): episodes follow the learner node's rules, applied by header stamp
and episode id rather than by receive order (which depends on a node's executor): START opens an
episode of kind ``note``; its commands are those with its episode id stamped before its terminal
event (SUCCESS/FAILURE/TIMEOUT/ABORT), each step once; RESET before a terminal drops the episode.
The observation for a command stamp is assembled from the recorded parts exactly as the learner's
``ObservationSubscriber`` does, and the steps go through the same ``EpisodeRecorder``, so the result
is bit-identical to what the live learner stores when it received the whole stream.

Teleoperation bags (no resrl topics: camera, robot state, commanded pose, gripper command) are
resampled onto the control clock ``t_k = t_0 + k / control_rate_hz`` from the first commanded pose:
the action at ``t_k`` is the latest commanded pose + gripper command stamped at or before ``t_k``
(sample and hold); the base action is "hold still" (the current pose and gripper), so the residual
target is the operator's correction, ``a_human - a_hold``; every step carries the intervention flag.

Alignment tolerance: an observation part is used for stamp ``t`` when its header stamp is within
``+- tolerance_ms`` of ``t`` (the nearest one wins; the live learner's ``max_skew_ms`` rule).
A command whose observation is incomplete within the tolerance is a time gap: the episode is cut
there (the steps before it are kept, the last one bootstraps as truncated) and a ``BagIssue`` names
the bag, the missing topic(s) and the time.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np

from resrl import topics
from resrl.bags.reader import BagData, BagError
from resrl.bags.schema import COMPRESSED_SUFFIX, TeleopTopics, required_session_topics
from resrl.geometry import quat_to_rotvec
from resrl.obs_assembly import ObservationAssembler
from resrl.recorder import Command, EpisodeRecorder, Terminal, episode_buffers

# EpisodeEvent constants (resrl/msg/EpisodeEvent.msg).
START, SUCCESS, FAILURE, RESET, ABORT, TIMEOUT = 0, 1, 2, 3, 4, 7
TERMINAL = {SUCCESS: (True, False), FAILURE: (False, False), TIMEOUT: (False, True), ABORT: (False, True)}


@dataclass
class RebuildConfig:
    obs_mode: str = "object"           # "object" | "image" (must match the model the data trains)
    num_objects: int = 1
    conf_threshold: float = 0.5
    image_size: int = 96
    tolerance_ms: float = 50.0         # observation alignment, see the module docstring
    control_rate_hz: float = 10.0      # teleop resampling clock
    depth_scale: float = 0.001         # teleop 16UC1 depth: units -> m (32FC1 is taken as metres)
    demo_success: bool = True          # teleop bag without EpisodeEvents: one successful demo
    teleop: TeleopTopics = field(default_factory=TeleopTopics)


@dataclass
class _EpisodePlan:
    kind: str
    episode_id: int
    commands: List[Command]
    terminal: Optional[Terminal]


@dataclass
class RebuildReport:
    bag: str
    source: str = ""                   # "session" | "teleop"
    episodes: int = 0
    steps: int = 0
    successes: int = 0
    dropped: List[str] = field(default_factory=list)


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class _Observations:
    """Observation parts from a bag, assembled per stamp like ``resrl.ros.observation``."""

    PART_TOPICS = {"pose": topics.EE_POSE, "gripper": topics.GRIPPER_STATE, "objects": topics.OBJECT_POSES,
                   "rgb": topics.OBS_RGB, "depth": topics.OBS_DEPTH}

    def __init__(self, cfg: RebuildConfig, part_topics: Dict[str, str], sizes: int):
        self.cfg = cfg
        self.part_topics = part_topics
        parts = ["pose", "gripper"] + (["rgb", "depth"] if cfg.obs_mode == "image" else ["objects"])
        self.assembler = ObservationAssembler(parts, int(cfg.tolerance_ms * 1e6), history=sizes + 1)
        self._seen = set()

    def _first(self, part: str, stamp_ns: int) -> bool:
        """A part re-published for the same stamp (a lockstep re-send) keeps its first value: the
        policy nodes act on the observation as soon as it is complete, and so does the learner."""
        key = (part, stamp_ns)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def add_pose(self, msg) -> None:
        from resrl.ros.convert import pose_to_numpy
        stamp = _stamp_ns(msg.header)
        if np.all(np.isfinite(pose_to_numpy(msg.pose))) and self._first("pose", stamp):   # non-finite: dropped, as live
            self.assembler.add("pose", stamp, msg)

    def add_gripper(self, msg) -> None:
        from resrl.ros.observation import gripper_opening
        if self._first("gripper", _stamp_ns(msg.header)):
            self.assembler.add("gripper", _stamp_ns(msg.header),
                               gripper_opening(SimpleNamespace(position=list(msg.position))))

    def add_objects(self, msg) -> None:
        from resrl.ros.observation import objects_to_arrays
        if self._first("objects", _stamp_ns(msg.header)):
            self.assembler.add("objects", _stamp_ns(msg.header),
                               objects_to_arrays(msg, self.cfg.num_objects, self.cfg.conf_threshold))

    def add(self, part: str, stamp_ns: int, value) -> None:
        if self._first(part, stamp_ns):
            self.assembler.add(part, stamp_ns, value)

    def get(self, stamp_ns: int, base_action) -> Optional[dict]:
        from resrl.ros.convert import pose_stamped_to_state
        parts = self.assembler.get(stamp_ns)
        if parts is None:
            return None
        obs = {"state": pose_stamped_to_state(parts["pose"], parts["gripper"]),
               "base_action": np.asarray(base_action, dtype=np.float32)}
        if self.cfg.obs_mode == "image":
            obs["image"], obs["depth"] = parts["rgb"], parts["depth"]
        else:
            obs["object_poses"], obs["object_conf"] = parts["objects"]
        return obs

    def missing_topics(self, stamp_ns: int) -> List[str]:
        return [self.part_topics[p] for p in self.assembler.missing(stamp_ns)]


def rebuild(data: BagData, online, offline, cfg: RebuildConfig = RebuildConfig()) -> RebuildReport:
    """Write every episode of the bag into ``online`` / ``offline`` (ReplayBuffers; routing as the
    learner, resrl.recorder.episode_buffers: demos -> offline, train -> online, eval -> nowhere)."""
    if topics.COMMAND in data.messages:
        plans, observations, source = _session_plans(data, cfg)
    else:
        plans, observations, source = _teleop_plans(data, cfg)
    report = RebuildReport(str(data.path), source)
    for plan in plans:
        _store(plan, observations, online, offline, data, report)
    return report


# --- resrl session bags ---------------------------------------------------------------------------
def _session_plans(data: BagData, cfg: RebuildConfig):
    data.require(required_session_topics(cfg.obs_mode))
    from resrl.ros.convert import MessageError, image_to_numpy
    part_topics = {p: t for p, t in _Observations.PART_TOPICS.items()}
    obs = _Observations(cfg, part_topics, max(len(v) for v in data.messages.values()))
    for m in data.messages[topics.EE_POSE]:
        obs.add_pose(m.msg)
    for m in data.messages[topics.GRIPPER_STATE]:
        obs.add_gripper(m.msg)
    if cfg.obs_mode == "image":
        for part in ("rgb", "depth"):
            for m in data.messages[part_topics[part]]:
                try:
                    obs.add(part, _stamp_ns(m.msg.header), image_to_numpy(m.msg))
                except MessageError as exc:
                    data.issue(part_topics[part], m.log_ns, f"image dropped: {exc}")
    else:
        for m in data.messages[topics.OBJECT_POSES]:
            obs.add_objects(m.msg)

    # Episodes are assembled by header stamps and episode ids, not by receive order: across topics
    # the order in which a node (or a recorder) sees messages depends on its executor.
    events = sorted(data.messages[topics.EPISODE_EVENTS], key=lambda m: (_stamp_ns(m.msg.header), m.seq))
    commands = sorted(data.messages[topics.COMMAND], key=lambda m: (_stamp_ns(m.msg.header), m.seq))
    command_stamps = [_stamp_ns(m.msg.header) for m in commands]
    starts = [i for i, m in enumerate(events) if m.msg.event == START]
    plans: List[_EpisodePlan] = []
    for n, i in enumerate(starts):
        start = events[i].msg
        episode_id, t0 = int(start.episode_id), _stamp_ns(start.header)
        t_next = _stamp_ns(events[starts[n + 1]].msg.header) if n + 1 < len(starts) else None
        window = events[i + 1:starts[n + 1] if n + 1 < len(starts) else len(events)]
        terminal, reset = None, False
        for m in window:
            ev = m.msg
            if ev.event in TERMINAL and ev.episode_id == episode_id:
                success, truncated = TERMINAL[ev.event]
                terminal = Terminal(_stamp_ns(ev.header), success, float(ev.reward), truncated)
                break
            if ev.event == RESET:
                reset = True      # reset before a terminal: the live learner drops the episode
                break
        if reset:
            continue
        end = terminal.stamp_ns if terminal is not None else t_next
        plan = _EpisodePlan(start.note or "train", episode_id, [], terminal)
        lo = bisect.bisect_left(command_stamps, t0)
        hi = bisect.bisect_left(command_stamps, end) if end is not None else len(commands)
        for m in sorted(commands[lo:hi], key=lambda m: (int(m.msg.step), m.seq)):
            msg = m.msg
            if msg.episode_id != episode_id or (plan.commands and int(msg.step) <= plan.commands[-1].step):
                continue   # another episode's command, or a re-sent one (stored once, as EpisodeRecorder does)
            composed = np.asarray(msg.composed_action, np.float32)
            plan.commands.append(Command(
                step=int(msg.step), stamp_ns=_stamp_ns(msg.header), action=np.asarray(msg.action, np.float32),
                base_action=np.asarray(msg.base_action, np.float32),
                residual=np.asarray(msg.residual_action, np.float32),
                lambda_=np.asarray(msg.lambda_per_dim, np.float32) if len(msg.lambda_per_dim) == 7 else 0.0,
                intervention=bool(msg.intervention), composed=composed if len(composed) == 7 else None))
        plans.append(plan)
    return plans, obs, "session"


# --- plain teleoperation bags ---------------------------------------------------------------------
def _decode_color(msg, msgtype_compressed: bool) -> np.ndarray:
    from resrl.ros.convert import image_to_numpy
    if msgtype_compressed:
        import io
        from PIL import Image as PILImage
        return np.asarray(PILImage.open(io.BytesIO(bytes(msg.data))).convert("RGB"))
    return image_to_numpy(msg)


def _teleop_plans(data: BagData, cfg: RebuildConfig):
    from resrl.perception.depth import SensorRelativeDepth, resize_area, resize_nearest
    from resrl.ros.convert import MessageError, image_to_numpy
    t = cfg.teleop
    color_topic = t.color
    if cfg.obs_mode == "image" and not data.messages.get(t.color) and data.messages.get(t.color + COMPRESSED_SUFFIX):
        color_topic = t.color + COMPRESSED_SUFFIX
    required = [color_topic if x == t.color else x for x in t.required(cfg.obs_mode)]
    try:
        data.require(required)
    except BagError as exc:
        raise BagError(f"{exc} (neither a resrl session bag, which needs {topics.COMMAND}, nor a complete "
                       "teleop bag; remap teleop topics with NAME:=/topic)") from None
    part_topics = {"pose": t.ee_pose, "gripper": t.gripper_state, "objects": t.object_poses,
                   "rgb": color_topic, "depth": t.depth}
    obs = _Observations(cfg, part_topics, max(len(v) for v in data.messages.values()))
    for m in data.messages[t.ee_pose]:
        obs.add_pose(m.msg)
    for m in data.messages[t.gripper_state]:
        obs.add_gripper(m.msg)
    if cfg.obs_mode == "image":
        depth = {}
        for m in data.messages[t.depth]:
            try:
                d = image_to_numpy(m.msg)
            except MessageError as exc:
                data.issue(t.depth, m.log_ns, f"depth image dropped: {exc}")
                continue
            scale = 1.0 if m.msg.encoding == "32FC1" else cfg.depth_scale
            depth[_stamp_ns(m.msg.header)] = (d, scale)
        depth_stamps = np.array(sorted(depth), dtype=np.int64)
        tol = int(cfg.tolerance_ms * 1e6)
        for m in data.messages[color_topic]:
            stamp = _stamp_ns(m.msg.header)
            try:
                rgb = _decode_color(m.msg, color_topic.endswith(COMPRESSED_SUFFIX))
            except Exception as exc:
                data.issue(color_topic, m.log_ns, f"colour image dropped: {exc}")
                continue
            if rgb.ndim != 3 or not len(depth_stamps):
                continue
            j = int(np.argmin(np.abs(depth_stamps - stamp)))
            if abs(int(depth_stamps[j]) - stamp) > tol:
                continue
            d, scale = depth[int(depth_stamps[j])]
            rel = SensorRelativeDepth(scale)(rgb, d)   # camera_depth_node's preprocessing
            obs.add("rgb", stamp, resize_area(rgb, cfg.image_size))
            obs.add("depth", stamp, resize_nearest(rel, cfg.image_size))
    else:
        for m in data.messages[t.object_poses]:
            obs.add_objects(m.msg)

    pose_cmds = sorted(((_stamp_ns(m.msg.header), m.msg) for m in data.messages[t.commanded_pose]),
                       key=lambda x: x[0])
    grip_cmds = sorted(((_stamp_ns(m.msg.header), float(m.msg.position[0]) if len(m.msg.position) else np.nan)
                        for m in data.messages[t.gripper_command]), key=lambda x: x[0])
    windows = _teleop_windows(data, t, cfg, pose_cmds)
    period = int(round(1e9 / cfg.control_rate_hz))
    pose_stamps = np.array([s for s, _ in pose_cmds], dtype=np.int64)
    grip_stamps = np.array([s for s, _ in grip_cmds], dtype=np.int64)
    plans = []
    for index, (t0, t_end, terminal_event) in enumerate(windows):
        commands = []
        stamps = list(range(t0, t_end + 1, period))
        if len(stamps) < 2:
            continue
        for k, stamp in enumerate(stamps[:-1]):
            i = int(np.searchsorted(pose_stamps, stamp, side="right")) - 1
            g = int(np.searchsorted(grip_stamps, stamp, side="right")) - 1
            if i < 0 or g < 0 or not np.isfinite(grip_cmds[g][1]):
                continue   # no command yet: the operator has not started
            p = pose_cmds[i][1].pose
            quat = np.array([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w])
            action = np.concatenate([[p.position.x, p.position.y, p.position.z], quat_to_rotvec(quat),
                                     [np.clip(grip_cmds[g][1], 0.0, 1.0)]]).astype(np.float32)
            state = obs.get(stamp, np.zeros(7, np.float32))
            hold = (np.concatenate([state["state"][:6], [1.0 - state["state"][6]]]).astype(np.float32)
                    if state is not None else np.zeros(7, np.float32))
            commands.append(Command(step=k, stamp_ns=stamp, action=action, base_action=hold,
                                    residual=np.zeros(7, np.float32), lambda_=0.0, intervention=True,
                                    composed=action))
        if not commands:
            continue
        success, truncated, reward = terminal_event
        # The terminal observation is the one after the last held command (a control period later).
        terminal = Terminal(commands[-1].stamp_ns + period, success, reward, truncated)
        plans.append(_EpisodePlan("demo", index, commands, terminal))
    return plans, obs, "teleop"


def _teleop_windows(data: BagData, t: TeleopTopics, cfg: RebuildConfig, pose_cmds):
    """[(t_start, t_end, (success, truncated, reward))]: EpisodeEvent START..terminal, or the whole bag."""
    events = [m.msg for m in data.messages.get(t.episode_events, [])]
    if not events:
        success = bool(cfg.demo_success)
        return [(pose_cmds[0][0], pose_cmds[-1][0], (success, not success, 1.0 if success else 0.0))]
    windows, start = [], None
    for ev in events:
        if ev.event == START:
            start = _stamp_ns(ev.header)
        elif ev.event in TERMINAL and start is not None:
            success, truncated = TERMINAL[ev.event]
            windows.append((start, _stamp_ns(ev.header), (success, truncated, float(ev.reward))))
            start = None
    return windows


# --- storing --------------------------------------------------------------------------------------
def _store(plan: _EpisodePlan, observations: _Observations, online, offline, data: BagData,
           report: RebuildReport) -> None:
    """Cut the plan at its first time gap, then feed it through an EpisodeRecorder."""
    commands, terminal = list(plan.commands), plan.terminal
    label = f"episode {plan.episode_id} ({plan.kind})"
    for j, cmd in enumerate(commands):
        if observations.get(cmd.stamp_ns, cmd.base_action) is None:
            data.issue(", ".join(observations.missing_topics(cmd.stamp_ns)), cmd.stamp_ns,
                       f"time gap: no message within +-{observations.cfg.tolerance_ms:g} ms of the control "
                       f"step {cmd.step} stamp; {label} cut there ({max(j - 1, 0)} steps kept, truncated)")
            commands, terminal = commands[:max(j - 1, 0)], (
                Terminal(commands[j - 1].stamp_ns, False, 0.0, True) if j >= 1 else None)
            break
    else:
        if terminal is None and commands:
            data.issue(topics.EPISODE_EVENTS, commands[-1].stamp_ns,
                       f"{label} has no terminal event (bag ends mid-episode); kept as truncated")
            commands, terminal = commands[:-1], Terminal(commands[-1].stamp_ns, False, 0.0, True)
        elif terminal is not None and observations.get(terminal.stamp_ns, commands[-1].base_action if commands
                                                        else np.zeros(7)) is None:
            data.issue(", ".join(observations.missing_topics(terminal.stamp_ns)), terminal.stamp_ns,
                       f"time gap: terminal observation missing; {label} cut before its last step (truncated)")
            commands, terminal = commands[:-1], (Terminal(commands[-1].stamp_ns, False, 0.0, True)
                                                 if commands else None)
    if not commands or terminal is None:
        report.dropped.append(f"{label}: no complete transition")
        return
    buffers = episode_buffers(plan.kind, online, offline)
    recorder = EpisodeRecorder(plan.kind, buffers, observations.get,
                               {"episode_id": plan.episode_id, "bag": str(data.path)})
    for cmd in commands:
        recorder.add_command(cmd)
    recorder.set_terminal(terminal)
    if not recorder.pump(offline):
        recorder.abort()
        report.dropped.append(f"{label}: incomplete after alignment")
        return
    report.episodes += 1
    report.steps += recorder.steps
    report.successes += int(terminal.success)
