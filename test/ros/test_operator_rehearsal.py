"""The operator's session rehearsed end to end (issue 17): the franka graph started with the real
`ros2 launch resrl franka_vgm.launch.py` through real launch_ros, the simulated Franka cell
(sim_cell:=true) standing behind franka_ros2's topics and actions (stand-in interface packages),
a LeRobot ACT checkpoint as the VLA, a learned success classifier as the second reward source,
and a scripted operator: keys typed into the console the launch tells them to start (a
pseudo-terminal), a gamepad on sensor_msgs/Joy for takeovers, and one Ctrl-C at the end.

The manual session: a demo driven with the gamepad and labelled 'y'; the warm-up; a train episode
where the VLA + residual drive, the operator takes over and labels 'n'; a train episode the
operator steers until the classifier calls success. Then the replay on disk is read back."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from sensor_msgs.msg import Joy
from std_msgs.msg import String

from resrl import topics
from resrl.msg import ActionChunk, CommandedAction, EpisodeEvent
from resrl.ros import qos
from resrl.ros.spin_thread import SpinThread
from resrl.teleop import GAMEPAD
from rosutil import LineProcess, PtyConsole, tracebacks, wait_for

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "stand_ins"))
sys.path.insert(0, str(HERE.parent / "unit"))
import stand_ins  # noqa: E402
from lerobot_tiny import save_tiny_policy  # noqa: E402

# The tiny ACT's chunks: the hand above the table, pointing down (franka_ros2 convention: qx = 1,
# rotation vector (pi, 0, 0)), gripper half way (the bridge's hysteresis sends no gripper goal).
VLA_MEAN = [0.5, 0.0, 0.25, np.pi, 0.0, 0.0, 0.5]
SUCCESS_X = 0.6   # the classifier's success: the hand pushed past x = 0.6 m (the operator does it)


def why(op, console, launch) -> str:
    return f"{op.story()}\nconsole:\n{console.read()[-2500:]}\nlaunch:\n{launch.out[-3000:]}"


def train_classifier(path: Path) -> None:
    """A success classifier on the graph's frame features (state, one object's pose, its
    confidence): success = the end effector beyond SUCCESS_X. Synthetic frames, broad elsewhere
    so only x decides; the rehearsal checks the wiring, BENCHMARKS.md has the one trained on bags."""
    from resrl.reward_classifier import ClassifierConfig, EpisodeFrames, save, train
    rng = np.random.default_rng(0)
    n = 3000
    x = np.concatenate([rng.uniform(0.25, SUCCESS_X - 0.04, n // 2), rng.uniform(SUCCESS_X + 0.02, 0.75, n // 2)])
    state = np.column_stack([x, rng.uniform(-0.3, 0.3, n), rng.uniform(0.02, 0.5, n),
                             rng.uniform(-np.pi, np.pi, (n, 3)), rng.uniform(0, 1, n)])
    obj = np.column_stack([rng.uniform(0.3, 0.7, n), rng.uniform(-0.3, 0.3, n), rng.uniform(0, 0.1, n),
                           rng.uniform(-1, 1, (n, 4))])
    features = np.column_stack([state, obj, rng.integers(0, 2, n)]).astype(np.float32)
    cfg = ClassifierConfig(epochs=300, consecutive=2)
    model = train([EpisodeFrames(f[None], bool(xi > SUCCESS_X)) for f, xi in zip(features, x)], cfg)
    save(model, cfg, path)


class Operator:
    """The operator's hands (a gamepad on /joy) and eyes (events, commands, learner and robot status)."""

    def __init__(self):
        self.node = rclpy.create_node("rehearsal_operator")
        self.lock = threading.Lock()
        self.events, self.commands, self.learner, self.robot, self.chunks = [], [], [], [], 0
        self.axes, self.buttons = [0.0] * 8, [0] * 11
        n = self.node
        n.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._keep("events"), qos.EVENTS)
        n.create_subscription(CommandedAction, topics.COMMAND, self._keep("commands"), qos.RECORDED)
        n.create_subscription(String, topics.LEARNER_STATUS, lambda m: self._keep("learner")(json.loads(m.data)),
                              qos.CONTROL)
        n.create_subscription(String, topics.ROBOT_STATUS, lambda m: self._keep("robot")(json.loads(m.data)), qos.CONTROL)
        n.create_subscription(ActionChunk, topics.VLA_CHUNK, self._on_chunk, qos.CONTROL)
        self.joy_pub = n.create_publisher(Joy, "/joy", 10)
        n.create_timer(0.05, self._publish_joy)
        self.spinner = SpinThread(rclpy.executors.MultiThreadedExecutor(num_threads=2))
        self.spinner.executor.add_node(n)
        self.spinner.start()

    def _keep(self, key):
        def keep(msg):
            with self.lock:
                getattr(self, key).append(msg)
        return keep

    def _on_chunk(self, _msg):
        with self.lock:
            self.chunks += 1

    def _publish_joy(self):
        with self.lock:
            self.joy_pub.publish(Joy(axes=list(self.axes), buttons=list(self.buttons)))

    def stick(self, axis: int = -1, value: float = 0.0):
        """Hold the deadman and push one stick axis; axis -1 lets go of everything."""
        with self.lock:
            self.axes = [0.0] * 8
            self.buttons[GAMEPAD.deadman_button] = int(axis >= 0)
            if axis >= 0:
                self.axes[axis] = value

    def event(self, episode: int, code: int, source: int = -1):
        with self.lock:
            return next((e for e in self.events if e.episode_id == episode and e.event == code
                         and (source < 0 or e.source == source)), None)

    def count(self, episode: int, intervention: bool) -> int:
        with self.lock:
            return sum(1 for c in self.commands if c.episode_id == episode and c.intervention == intervention
                       and not c.held)

    def story(self) -> str:
        """What the operator saw, for a failure message: the robot's status changes and the events."""
        learner = self.latest("learner")
        with self.lock:
            robot, seen = [], None
            for status in self.robot:
                now = (status.get("state"), status.get("reason"))
                if now != seen:
                    robot.append(now)
                    seen = now
            events = [(e.episode_id, e.event, e.source, e.note) for e in self.events]
            commands = {}
            for c in self.commands:
                key = (c.episode_id, "held" if c.held else "takeover" if c.intervention else "policy")
                commands[key] = commands.get(key, 0) + 1
        return (f"robot status: {robot[-12:]}\nevents (episode, code, source, note): {events}\n"
                f"commands: {commands}\nlearner: {learner}")

    def latest(self, key: str) -> dict:
        with self.lock:
            items = getattr(self, key)
            return items[-1] if items else {}

    def close(self):
        self.spinner.stop()
        self.node.destroy_node()


@pytest.mark.timeout(900)
def test_operator_rehearses_a_manual_session_on_the_simulated_franka_cell(tmp_path):
    stand_ins.ensure_built()
    env = dict(stand_ins.subprocess_env(), PYTHONUNBUFFERED="1")   # the launch's log as it happens
    checkpoint, _ = save_tiny_policy("act", tmp_path / "act", env_dim=7, steps=2, action_mean=VLA_MEAN)
    classifier = tmp_path / "classifier.pt"
    train_classifier(classifier)
    extra = tmp_path / "rehearsal.yaml"
    extra.write_text(yaml.safe_dump({
        # A Python sim cell on a loaded 2-core box can be late by a few hundred ms.
        "robot_bridge": {"ros__parameters": {"bridge.max_state_age_s": 1.0}},
        "vla_chunk_provider": {"ros__parameters": {"vla.action_space": "eef_absolute"}},   # an EE-target policy
        "replay_learner": {"ros__parameters": {"session_plan.num_demos": 1, "learner.warmup_steps": 20,
                                               "learner.batch_size": 16, "learner.learning_starts": 16}},
    }))
    run_dir = tmp_path / "run"
    launch = LineProcess(["ros2", "launch", "resrl", "franka_vgm.launch.py", "sim_cell:=true", "vla_backend:=lerobot",
                          f"checkpoint:={checkpoint}", f"classifier:={classifier}", f"run_dir:={run_dir}",
                          f"extra_params:={extra}"], env=env, guard_s=240.0, new_session=True)
    rclpy.init()
    op = console = None
    try:
        # The launch says where the operator console is; the operator starts it in a second terminal.
        assert launch.wait_line("ros2 run resrl keyboard_node --ros-args"), launch.out[-4000:]
        command = re.search(r"(ros2 run resrl keyboard_node --ros-args[^\n]*)", launch.out).group(1)
        console = PtyConsole(shlex.split(command), env=env)
        op = Operator()
        # Ready: the console is up, the learner reports, the bridge has the cell's state, the VLA answers.
        assert wait_for(lambda: "resrl operator console" in console.read(), 180), console.screen[-2000:]
        assert wait_for(lambda: op.latest("learner") and op.latest("robot").get("state") == "ok" and op.chunks > 0,
                        300), (op.latest("learner"), op.latest("robot"), op.chunks, launch.out[-4000:])

        # Episode 1, a demo: 'e', the robot resets (recovery, gripper open, home) and starts it; the
        # operator drives it with the gamepad (left stick: base y) and labels it 'y'.
        console.type("e")
        assert wait_for(lambda: op.event(1, EpisodeEvent.START), 120), why(op, console, launch)
        assert op.event(1, EpisodeEvent.START).note == "demo"
        op.stick(GAMEPAD.linear_axes[1], 0.8)
        assert wait_for(lambda: op.count(1, intervention=True) >= 10, 60), why(op, console, launch)
        op.stick()
        console.type("y")
        assert wait_for(lambda: op.event(1, EpisodeEvent.SUCCESS, EpisodeEvent.SOURCE_KEYBOARD), 30)
        # One demo asked for: the learner warms up on it before the next episode.
        assert wait_for(lambda: op.latest("learner").get("warmup_done") and op.latest("learner")["replay_demos"] > 0,
                        180), op.latest("learner")
        warmup = op.latest("learner")

        # Episode 2, train: the VLA + residual drive; the operator takes over (base -y), lets go,
        # and labels the episode a failure.
        console.type("s")
        assert wait_for(lambda: op.event(2, EpisodeEvent.START), 120), why(op, console, launch)
        assert wait_for(lambda: op.count(2, intervention=False) >= 10, 60), why(op, console, launch)
        op.stick(GAMEPAD.linear_axes[1], -0.8)
        assert wait_for(lambda: op.count(2, intervention=True) >= 8, 60), why(op, console, launch)
        op.stick()
        after = op.count(2, intervention=False)
        assert wait_for(lambda: op.count(2, intervention=False) >= after + 5, 60), why(op, console, launch)   # back to the policy
        console.type("n")
        assert wait_for(lambda: op.event(2, EpisodeEvent.FAILURE, EpisodeEvent.SOURCE_KEYBOARD), 30)

        # Episode 3, train: the operator pushes the hand forward (base +x) until the classifier calls it.
        console.type("s")
        assert wait_for(lambda: op.event(3, EpisodeEvent.START), 120), why(op, console, launch)
        op.stick(GAMEPAD.linear_axes[0], 1.0)
        assert wait_for(lambda: op.event(3, EpisodeEvent.SUCCESS, EpisodeEvent.SOURCE_CLASSIFIER), 120), \
            why(op, console, launch)
        op.stick()
        call = op.event(3, EpisodeEvent.SUCCESS, EpisodeEvent.SOURCE_CLASSIFIER)
        assert 0.5 <= call.confidence <= 1.0 and call.reward == 1.0
        assert not op.event(1, EpisodeEvent.SUCCESS, EpisodeEvent.SOURCE_CLASSIFIER)   # the keys labelled those
        assert not op.event(2, EpisodeEvent.SUCCESS, EpisodeEvent.SOURCE_CLASSIFIER)
        # The learner trains online on the train episodes (beyond its warm-up).
        assert wait_for(lambda: op.latest("learner").get("episodes", 0) >= 3
                        and op.latest("learner")["updates"] > warmup["updates"], 180), (warmup, why(op, console, launch))
        # What the operator saw: who labelled what.
        assert wait_for(lambda: re.search(r"episode 3: success \(classifier, p=", console.read()), 30), \
            console.screen[-2000:]
        assert "episode 2: failure (key)" in console.screen, console.screen[-2000:]
    finally:
        if op is not None:
            op.close()
        rclpy.shutdown()
        # One Ctrl-C: the terminal sends SIGINT to the launch's whole process group.
        if launch.proc.poll() is None:
            os.killpg(launch.proc.pid, signal.SIGINT)
        code = launch.wait()
        if console is not None:
            console.type("q")   # the console closes itself; the graph is already down
            wait_for(lambda: console.proc.poll() is not None, 30)
            console.stop()
    out = launch.out
    assert code == 0, out[-4000:]
    names = ("franka_sim", "robot_bridge", "camera_depth", "pose_tracker", "vla_chunk", "residual_policy",
             "vgm_arbiter", "learner", "bag_recorder", "reward_classifier")
    for name in names:
        assert re.search(rf"\[{name}_node-\d+\]: process has finished cleanly", out), f"{name}:\n{out[-4000:]}"
    assert "signal 'SIGTERM'" not in out and "signal 'SIGKILL'" not in out and not tracebacks(out), out[-4000:]
    assert console.proc.returncode == 0 and "Traceback" not in console.screen, console.screen[-3000:]

    # The replay on disk: the demo, and the takeover in both buffers.
    from resrl.replay import ReplayBuffer
    online = {e.meta["episode_id"]: e for e in ReplayBuffer.load(run_dir / "replay" / "online", 10_000).episodes()}
    demos = {e.meta["episode_id"]: e for e in ReplayBuffer.load(run_dir / "replay" / "demos", 10_000).episodes()}
    assert demos[1].success is True and demos[1].intervention.any() and 1 not in online
    assert online[2].success is False and online[2].intervention.any() and not online[2].intervention.all()
    # The train episode with a takeover is in the demo buffer too, its takeover steps flagged.
    assert 2 in demos and np.array_equal(demos[2].intervention, online[2].intervention)
    assert online[3].success is True
