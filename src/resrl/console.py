"""The operator console's live status (ROS-free): what the keyboard node shows in its terminal.

``ConsoleState`` folds the session's messages (episode events, commands, gate states, the
learner's status, takeovers, the robot bridge's status, the ROS graph) into plain values;
``render`` draws them with rich. The node only forwards messages and redraws.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, List, Optional, Tuple

from resrl import topics
from resrl.teleop import ABORT, FAILURE, HELP, PAUSE, RESET, RESUME, START, SUCCESS, TIMEOUT

EVENT_NAMES = {START: "start", SUCCESS: "success", FAILURE: "failure", RESET: "reset", ABORT: "abort",
               PAUSE: "pause", RESUME: "resume", TIMEOUT: "timeout"}
SOURCE_NAMES = {0: "key", 1: "oracle", 2: "classifier", 3: "system"}

# What the control loop waits for: (consumer node, topic, which process publishes it). The console
# checks the ROS graph for a publisher of each topic whose consumer is running.
GRAPH_INPUTS: Tuple[Tuple[str, str, str], ...] = (
    ("vgm_arbiter", topics.VLA_CHUNK, "vla_chunk_provider (and its VLA server)"),
    ("vgm_arbiter", topics.RESIDUAL, "residual_policy"),
    ("vgm_arbiter", topics.OBJECT_POSES, "pose_tracker"),
    ("robot_bridge", "/franka_robot_state_broadcaster/current_pose|/tcp_pose_broadcaster/pose",
     "the arm driver (franka_ros2 / ur_robot_driver)"),
    ("vgm_arbiter", f"{topics.ROBOT_EE_POSE}|{topics.EE_POSE}", "robot_bridge / sim_robot"),
    ("pose_tracker", f"{topics.FOUNDATIONPOSE_OUTPUT}|{topics.OBJECT_POSES_GT}",
     "the object tracker (Isaac ROS FoundationPose) / sim_robot"),
    ("replay_learner", topics.COMMAND, "vgm_arbiter"),
)


def waiting_for(nodes: Iterable[str], publishers: Dict[str, int],
                inputs: Tuple[Tuple[str, str, str], ...] = GRAPH_INPUTS) -> List[str]:
    """One line per running node whose input topic has no publisher ('a|b': either will do)."""
    nodes = set(nodes)
    lines = []
    for consumer, topic_alts, provider in inputs:
        if consumer not in nodes:
            continue
        alts = topic_alts.split("|")
        if not any(publishers.get(t, 0) > 0 for t in alts):
            lines.append(f"{consumer} waits for {alts[0]}: no publisher; start {provider}")
    return lines


@dataclass
class EpisodeView:
    episode_id: int = 0
    kind: str = ""
    running: bool = False
    step: int = 0                      # commands seen in this episode
    label: str = ""                    # "success (key)" ...
    interventions: int = 0
    gate_steps: int = 0
    gate_sums: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])   # lambda, g, r, e


class ConsoleState:
    def __init__(self, window: int = 20, log_lines: int = 6):
        self.episode = EpisodeView()
        self.outcomes: Deque[bool] = deque(maxlen=window)   # labelled train / eval episodes
        self.labelled = 0
        self.paused = False
        self.mode = ""
        self.lam = 0.0
        self.gates = (0.0, 0.0, 0.0)
        self.held, self.hold_reason = False, ""
        self.policy_version = 0
        self.learner: Dict = {}
        self.robot_status: Dict = {}
        self.takeover = ""                  # device taking over now ("" = none)
        self.devices: Dict[str, float] = {}   # device -> monotonic time of its last message
        self.classifier: Optional[Tuple[float, str]] = None   # (confidence, what happened)
        self.waiting: List[str] = []
        self.log: Deque[str] = deque(maxlen=log_lines)
        self.started_s = time.monotonic()

    # --- inputs ---------------------------------------------------------------------------
    def on_event(self, event: int, source: int, episode_id: int, note: str = "", confidence: float = 0.0) -> None:
        ep = self.episode
        src = SOURCE_NAMES.get(source, str(source))
        if event == START:
            if episode_id != ep.episode_id or not ep.running:
                self.episode = EpisodeView(episode_id=episode_id, kind=note or "train", running=True)
            self.note(f"episode {episode_id} ({note or 'train'}) started")
        elif event in (SUCCESS, FAILURE, TIMEOUT, ABORT) and episode_id == ep.episode_id and ep.running:
            ep.running = False
            ep.label = f"{EVENT_NAMES[event]} ({src})"
            if event in (SUCCESS, FAILURE, TIMEOUT) and ep.kind != "demo":
                self.outcomes.append(event == SUCCESS)
                self.labelled += 1
            if source == 2:
                self.classifier = (confidence, f"ended episode {episode_id}: {EVENT_NAMES[event]}")
            self.note(f"episode {episode_id}: {EVENT_NAMES[event]} ({src}"
                      + (f", p={confidence:.2f})" if source == 2 else ")"))
        elif event == RESET and episode_id == ep.episode_id and ep.running:
            ep.running, ep.label = False, f"reset ({src})"
            self.note(f"episode {episode_id} reset")
        elif event in (PAUSE, RESUME):
            self.paused = event == PAUSE
        elif event in (SUCCESS, FAILURE) and source == 0:
            self.note(f"key label for episode {episode_id} ignored: it already ended ({ep.label})")

    def on_command(self, episode_id: int, step: int, intervention: bool, held: bool, policy_version: int) -> None:
        if episode_id == self.episode.episode_id:
            self.episode.step += 1
            self.episode.interventions += int(intervention)
        self.policy_version = max(self.policy_version, int(policy_version))
        self.held = held

    def on_gate(self, episode_id: int, mode: str, lam: float, g: float, r: float, e: float,
                held: bool, hold_reason: str) -> None:
        self.mode, self.lam, self.gates = mode, lam, (g, r, e)
        self.held, self.hold_reason = held, hold_reason
        if episode_id == self.episode.episode_id:
            ep = self.episode
            ep.gate_steps += 1
            for i, v in enumerate((lam, g, r, e)):
                ep.gate_sums[i] += float(v)

    def on_learner(self, status: Dict) -> None:
        self.learner = dict(status)
        self.policy_version = max(self.policy_version, int(status.get("policy_version", 0)))

    def on_classifier(self, confidence: float) -> None:
        what = self.classifier[1] if self.classifier else ""
        self.classifier = (confidence, what)

    def note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    # --- derived --------------------------------------------------------------------------
    def success_rate(self) -> Optional[float]:
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else None

    def gate_activity(self) -> Tuple[float, float, float, float]:
        ep = self.episode
        if not ep.gate_steps:
            return 0.0, 0.0, 0.0, 0.0
        return tuple(s / ep.gate_steps for s in ep.gate_sums)   # type: ignore[return-value]

    def lines(self) -> List[Tuple[str, str]]:
        """(label, value) rows: the console's content as plain text (render() draws them)."""
        ep = self.episode
        state = "running" if ep.running else (ep.label or "waiting for 's'")
        sr = self.success_rate()
        lam, g, r, e = self.gate_activity()
        ln = self.learner
        rows = [
            ("episode", f"{ep.episode_id} {ep.kind or '-'}  {state}{'  PAUSED' if self.paused else ''}"),
            ("step", f"{ep.step}  (takeover steps {ep.interventions})"),
            ("success rate", "-" if sr is None else f"{sr:.0%} of the last {len(self.outcomes)} labelled"),
            ("lambda", f"{self.lam:.2f} now, {lam:.2f} episode mean  mode={self.mode or '-'}"),
            ("gates g/r/e", f"now {self.gates[0]:.0f}/{self.gates[1]:.2f}/{self.gates[2]:.0f}  "
                            f"episode {g:.2f}/{r:.2f}/{e:.2f}"),
            ("takeover", self.takeover or "off"),
            ("robot", (f"HOLD: {self.hold_reason}" if self.held else "moving")
             + (f"  bridge {self.robot_status.get('state')}: {self.robot_status.get('reason', '')}"
                if self.robot_status else "")),
            ("learner", (f"{ln.get('state', '?')}  updates={ln.get('updates', 0)}  "
                         f"replay online={ln.get('replay_online', 0)} demos={ln.get('replay_demos', 0)}")
             if ln else "no status yet"),
            ("policy version", str(self.policy_version)),
        ]
        if self.classifier is not None:
            rows.append(("classifier", f"p(success)={self.classifier[0]:.2f}  {self.classifier[1]}"))
        now = time.monotonic()
        if self.devices:
            rows.append(("devices", "  ".join(f"{d} {'live' if now - t < 1.0 else 'silent'}"
                                              for d, t in sorted(self.devices.items()))))
        for line in self.waiting:
            rows.append(("waiting", line))
        return rows


def render(state: ConsoleState):
    """A rich renderable of the console (a table of status rows, the recent log, the keys)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    styles = {"takeover": "bold yellow", "waiting": "bold red", "robot": "red" if state.held else "green"}
    for label, value in state.lines():
        style = styles.get(label, "")
        if label == "takeover" and value == "off":
            style = "dim"
        table.add_row(label, Text(value, style=style))
    log = Text("\n".join(state.log) or "-", style="dim")
    return Panel(Group(table, Text(""), log, Text(""), Text(HELP, style="bold")),
                 title="resrl operator console", border_style="blue")
