"""The bag recorder node beside the real learner node: a control-loop stream published over ROS is
recorded into <run_dir>/bag, and the bag replays into exactly the transitions the live learner
stored in <run_dir>/replay (actions, rewards, observations, flags, MC returns bit-identical)."""
import json
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import rclpy
from std_msgs.msg import String

from resrl import topics
from resrl.bags import RebuildConfig, read_bag, rebuild
from resrl.bags.schema import SESSION_TOPICS
from resrl.nodes.bag_recorder_node import message_class
from resrl.replay import ReplayBuffer
from resrl.replay.storage import read_episode
from resrl.ros import qos
from rosutil import ROOT, install_prefix, interrupt, wait_for

sys.path.insert(0, str(ROOT / "test" / "unit"))
from test_bags import Session, _buffers  # noqa: E402  (the synthetic stream with known ground truth)

LEARNER_PARAMS = {"obs_mode": "object", "session": "manual", "max_skew_ms": 0.0, "reliable_sensors": True,
                  "replay.n_step": 1, "replay.gamma": 0.9, "session_plan.num_demos": 1000, "learner.enabled": False,
                  "model.num_objects": 1}


def _start(exe, run_dir, params, log):
    cmd = [str(install_prefix() / "lib" / "resrl" / exe), "--ros-args", "-p", f"run_dir:={run_dir}"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(120)
def test_recorded_bag_replays_into_the_learners_transitions(tmp_path):
    session = Session(seed=11)
    log = open(tmp_path / "nodes.log", "w")
    recorder = _start("bag_recorder_node", tmp_path, {"reliable_sensors": True, "flush_period_s": 0.2}, log)
    learner = _start("learner_node", tmp_path, LEARNER_PARAMS, log)
    rclpy.init()
    node = rclpy.create_node("bag_stream_source")
    try:
        pubs = {}
        for topic in {t for t, _ in session.stream}:
            profile = (qos.EVENTS if topic == topics.EPISODE_EVENTS else
                       qos.RECORDED if topic == topics.COMMAND else qos.RELIABLE_SENSOR)   # as the arbiter
            pubs[topic] = node.create_publisher(message_class(SESSION_TOPICS[topic]), topic, profile)
        # Learner (5 topics) and recorder (all) must both listen before anything is sent.
        ready = wait_for(lambda: all(p.get_subscription_count() >= 2 for p in pubs.values()) or
                         learner.poll() is not None or recorder.poll() is not None, 60, 0.2)
        assert ready and learner.poll() is None and recorder.poll() is None, (tmp_path / "nodes.log").read_text()
        # The learner's first status (a timer of its executor): it is spinning, not still starting up.
        status = []
        node.create_subscription(String, topics.LEARNER_STATUS, status.append, qos.CONTROL)
        assert wait_for(lambda: rclpy.spin_once(node, timeout_sec=0.1) or status, 30, 0.0), \
            (tmp_path / "nodes.log").read_text()
        for topic, msg in session.stream:
            pubs[topic].publish(msg)
            # Still several times the message rate of a real 10-30 Hz loop, but not a burst that
            # overruns reader queues of a learner busy with its first fsyncs on a loaded CI machine.
            time.sleep(0.03 if topic in (topics.EPISODE_EVENTS, topics.COMMAND) else 0.01)
        # Both have it all: the learner's episode files are closed (END / ABORT record: the stream's
        # last message ends the last episode) and the recorder's flushed count is the stream's.
        expected_files = 3 + 3   # online: episodes 2, 5 + the reset one (ABORT); eval 3 goes nowhere; demos: 1, copies of 2 and 5
        assert wait_for(lambda: _episodes_closed(tmp_path / "replay", expected_files), 60, 0.2), \
            sorted(p.name for p in (tmp_path / "replay").rglob("*"))
        assert wait_for(lambda: _flushed_count(tmp_path / "bag") == len(session.stream), 60, 0.1), \
            (_flushed_count(tmp_path / "bag"), len(session.stream))
    finally:
        node.destroy_node()
        rclpy.shutdown()
        codes = (interrupt(learner), interrupt(recorder))
        log.close()
    out = (tmp_path / "nodes.log").read_text()
    assert codes == (0, 0) and "Traceback" not in out, out
    assert (tmp_path / "bag" / "metadata.yaml").is_file() and (tmp_path / "bag" / "bag.mcap").is_file()

    data = read_bag(tmp_path / "bag")
    assert data.issues == [], [str(i) for i in data.issues]
    online, demos = _buffers(n_step=1)
    report = rebuild(data, online, demos, RebuildConfig(tolerance_ms=0.0))
    assert report.episodes == 4, report
    live = {name: {ep.meta["episode_id"]: ep for ep in ReplayBuffer.load(tmp_path / "replay" / name, 1000,
                                                                          gamma=0.9).episodes()}
            for name in ("online", "demos")}
    replayed = {"online": {ep.meta["episode_id"]: ep for ep in online.episodes()},
                "demos": {ep.meta["episode_id"]: ep for ep in demos.episodes()}}
    for name in ("online", "demos"):
        assert sorted(live[name]) == sorted(replayed[name]), name
        for eid, ep in live[name].items():
            other = replayed[name][eid]
            for field in ("action", "residual", "lambda_", "reward", "done", "truncated", "intervention", "mc_return"):
                np.testing.assert_array_equal(getattr(ep, field), getattr(other, field), err_msg=f"{name} {eid} {field}")
            for key in ep.obs:
                np.testing.assert_array_equal(ep.obs[key], other.obs[key], err_msg=f"{name} {eid} obs {key}")
            assert ep.success == other.success


def _episodes_closed(replay_dir, n: int) -> bool:
    """At least ``n`` episode files, each closed by an END or ABORT record."""
    files = list(replay_dir.rglob("episode-*.rrb"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # a file being appended to reads as truncated
        return len(files) >= n and all(ep.success is not None or ep.aborted for ep in map(read_episode, files))


def _flushed_count(bag) -> int:
    """Messages the bag's metadata.yaml says are on disk (-1 before the first flush)."""
    import yaml
    try:
        return int(yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["message_count"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return -1


@pytest.mark.timeout(120)
def test_killed_recorder_leaves_a_readable_bag(tmp_path):
    from resrl.msg import EpisodeEvent
    log = open(tmp_path / "recorder.log", "w")
    recorder = _start("bag_recorder_node", tmp_path, {"storage": "mcap", "flush_period_s": 0.2,
                                                      "topics": "['/resrl/episode_events']"}, log)
    rclpy.init()
    node = rclpy.create_node("bag_kill_source")
    try:
        pub = node.create_publisher(EpisodeEvent, topics.EPISODE_EVENTS, qos.EVENTS)
        assert wait_for(lambda: pub.get_subscription_count() >= 1 or recorder.poll() is not None, 30, 0.1)
        # Its latched status names the writers each subscription is matched with (what the learner
        # waits on before episode 1): this publisher, once the recorder's side has matched it too.
        bag_status = []
        node.create_subscription(String, topics.BAG_STATUS, lambda m: bag_status.append(json.loads(m.data)),
                                 qos.LATCHED)
        assert wait_for(lambda: rclpy.spin_once(node, timeout_sec=0.1) or any(
            s["matched_writers"] == {topics.EPISODE_EVENTS: 1} for s in bag_status), 30, 0.0), bag_status
        for i in range(20):
            pub.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id=i, note="train"))
            time.sleep(0.01)
        # Kill once a flush holding all 20 is on disk: the recorder rewrites metadata.yaml after
        # each fsynced flush, so its message count is the event (no fixed wait).
        assert wait_for(lambda: _flushed_count(tmp_path / "bag") == 20 or recorder.poll() is not None, 60, 0.05), \
            (tmp_path / "recorder.log").read_text()
        assert recorder.poll() is None, (tmp_path / "recorder.log").read_text()
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(timeout=10)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        log.close()
    data = read_bag(tmp_path / "bag")
    assert data.recovered and "truncated" in str(data.issues[-1])
    assert [m.msg.episode_id for m in data.messages[topics.EPISODE_EVENTS]] == list(range(20))
    # metadata.yaml was rewritten at the last flush: ros2 bag info sees the messages too
    import yaml
    info = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["message_count"] == 20 and info["storage_identifier"] == "mcap"
