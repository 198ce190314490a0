"""The operator console as an operator uses it: `ros2 run resrl keyboard_node` in a terminal (a
pseudo-terminal here), keys typed into it, a gamepad takeover over sensor_msgs/Joy. The test side
plays the robot (the reset service, the EE pose) and watches what the console publishes."""
import re
import threading

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import MultiThreadedExecutor
from sensor_msgs.msg import Joy

from resrl import topics
from resrl.msg import EpisodeEvent, Intervention
from resrl.ros import qos
from resrl.ros.spin_thread import SpinThread
from resrl.ros.convert import numpy_to_pose
from resrl.srv import ResetEpisode
from resrl.teleop import GAMEPAD
from rosutil import PtyConsole, wait_for

TAKEOVER_ROW = re.compile(r"takeover {2,}(\w+)")


@pytest.mark.timeout(300)
def test_console_keys_label_episodes_and_gamepad_takes_over():
    rclpy.init()
    node = rclpy.create_node("robot_side")
    got = {"events": [], "interventions": [], "resets": []}
    lock = threading.Lock()
    episode = {"id": 0}
    events = node.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)

    def on_reset(request, response):   # the robot: reset, then START (as the bridge / sim do)
        with lock:
            got["resets"].append(request.episode_type)
            episode["id"] += 1
        events.publish(EpisodeEvent(event=EpisodeEvent.START, source=EpisodeEvent.SOURCE_SYSTEM,
                                    episode_id=episode["id"], note=request.episode_type))
        response.success, response.episode_id = True, episode["id"]
        return response

    node.create_service(ResetEpisode, topics.RESET_EPISODE, on_reset)
    node.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, lambda m: got["events"].append(m), qos.EVENTS)
    node.create_subscription(Intervention, topics.INTERVENTION, lambda m: got["interventions"].append(m), qos.EVENTS)
    pose_pub = node.create_publisher(PoseStamped, topics.EE_POSE, qos.SENSOR)
    joy_pub = node.create_publisher(Joy, "/joy", 10)
    home = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
    joy = {"axes": [0.0] * 8, "buttons": [0] * 11}

    def publish_state():
        msg = PoseStamped()
        msg.header.stamp, msg.header.frame_id = node.get_clock().now().to_msg(), "fr3_link0"
        msg.pose = numpy_to_pose(home)
        pose_pub.publish(msg)
        joy_pub.publish(Joy(axes=list(joy["axes"]), buttons=list(joy["buttons"])))

    node.create_timer(0.05, publish_state)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = SpinThread(executor).start()
    console = PtyConsole(["ros2", "run", "resrl", "keyboard_node", "--ros-args", "-p", "control_rate_hz:=15.0"])
    try:
        assert wait_for(lambda: "resrl operator console" in console.read(), 120), console.screen[-2000:]
        assert wait_for(lambda: "keyboard" in node.get_node_names(), 30)
        # A key label with no episode running is refused, not published.
        console.type("y")
        assert wait_for(lambda: "no running episode to label" in console.read(), 20), console.screen[-2000:]
        # 's': the console asks the robot to reset; the robot's START opens the episode.
        console.type("s")
        assert wait_for(lambda: got["resets"] == ["train"], 20), console.screen[-2000:]
        assert wait_for(lambda: "episode 1 (train) started" in console.read(), 20), console.screen[-2000:]
        # Gamepad: hold LB, push the left stick up -> Interventions moving along base +x.
        joy["buttons"][GAMEPAD.deadman_button], joy["axes"][1] = 1, 1.0
        assert wait_for(lambda: sum(1 for m in got["interventions"] if m.active and m.source == "gamepad") >= 5, 20)
        moving = [m for m in got["interventions"] if m.active and m.source == "gamepad"]
        assert moving[0].action[0] == pytest.approx(0.5, abs=1e-3)        # starts where the arm is
        assert moving[-1].action[0] > moving[0].action[0] and moving[-1].action[0] <= 0.5 + 0.05 + 1e-6
        # The status table's row ("takeover" then the column gap), not the help line's "takeover:".
        assert wait_for(lambda: TAKEOVER_ROW.findall(console.read())[-1:] == ["gamepad"], 60), console.screen[-2000:]
        joy["buttons"][GAMEPAD.deadman_button], joy["axes"][1] = 0, 0.0
        assert wait_for(lambda: any(not m.active for m in got["interventions"][len(moving):]), 10)
        # 'y' labels the running episode: a keyboard SUCCESS with full confidence.
        console.type("y")
        assert wait_for(lambda: any(e.event == EpisodeEvent.SUCCESS and e.source == EpisodeEvent.SOURCE_KEYBOARD
                                    for e in got["events"]), 20)
        label = next(e for e in got["events"] if e.event == EpisodeEvent.SUCCESS)
        assert (label.episode_id, label.reward, label.confidence) == (1, 1.0, 1.0)
        assert wait_for(lambda: "100% of the last 1 labelled" in console.read(), 20), console.screen[-2000:]
        console.type("q")   # closes the console, not the graph
        assert wait_for(lambda: console.proc.poll() is not None, 30)
    finally:
        console.stop()
        spinner.stop()
        node.destroy_node()
        rclpy.shutdown()
    assert console.proc.returncode == 0, console.screen[-3000:]
    assert "Traceback" not in console.screen, console.screen[-3000:]
