"""rosbag2 session bags: write -> read -> transitions, damaged bags, teleop bags, offline training."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import serialize_message

from resrl import topics
from resrl.bags import BagError, BagWriter, RebuildConfig, SESSION_TOPICS, read_bag, rebuild, typestore
from resrl.bags.schema import TeleopTopics
from resrl.geometry import quat_to_rotvec, rotvec_to_quat
from resrl.models.config import ModelConfig, obs_spec
from resrl.replay import ReplayBuffer
from resrl.ros.convert import ns_to_stamp, numpy_to_image, numpy_to_pose

PERIOD = 100_000_000
EE = topics.EE_POSE


def _pose_msg(stamp_ns, v):
    from geometry_msgs.msg import PoseStamped
    msg = PoseStamped()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.pose = numpy_to_pose(v)
    return msg


def _joint_msg(stamp_ns, positions):
    from sensor_msgs.msg import JointState
    msg = JointState()
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.position = [float(x) for x in positions]
    return msg


class Session:
    """A synthetic control-loop stream with known ground truth, as rclpy messages in receive order."""

    def __init__(self, obs_mode="object", seed=0, gap_episode=None):
        from resrl.msg import CommandedAction, EpisodeEvent, TrackedObjectPose, TrackedObjects
        self.rng = np.random.default_rng(seed)
        self.obs_mode = obs_mode
        self.stream = []          # (topic, msg)
        self.truth = {}           # episode_id -> dict of expected arrays
        t = 1_000_000_000
        plan = [(1, "demo", "success", 6), (2, "train", "success", 5), (3, "eval", "failure", 4),
                (4, "train", "reset", 3), (5, "train", "timeout", 4)]
        for episode_id, kind, end, steps in plan:
            ev = EpisodeEvent(event=EpisodeEvent.START, source=EpisodeEvent.SOURCE_SYSTEM, episode_id=episode_id,
                              note=kind)
            ev.header.stamp = ns_to_stamp(t)
            self.stream.append((topics.EPISODE_EVENTS, ev))
            truth = {"kind": kind, "action": [], "residual": [], "base": [], "intervention": [], "obj": [], "state_pos": [],
                     "images": []}
            for k in range(steps + 1):
                stamp = t + k * PERIOD
                pos = self.rng.uniform(-0.5, 0.5, 3)
                quat = rotvec_to_quat(self.rng.uniform(-0.3, 0.3, 3))
                self.stream.append((EE, _pose_msg(stamp, np.concatenate([pos, quat]))))
                self.stream.append((topics.GRIPPER_STATE, _joint_msg(stamp, [0.02, 0.02])))
                truth["state_pos"].append(pos.astype(np.float32))
                skip = gap_episode == episode_id and k == 3
                if obs_mode == "object" and not skip:
                    obj = TrackedObjects()
                    obj.header.stamp = ns_to_stamp(stamp)
                    o = np.concatenate([self.rng.uniform(-1, 1, 3), [0, 0, 0, 1]])
                    obj.objects = [TrackedObjectPose(object_id="cube", pose=numpy_to_pose(o), confidence=0.9,
                                                     valid=True)]
                    self.stream.append((topics.OBJECT_POSES, obj))
                    truth["obj"].append(o.astype(np.float32))
                elif obs_mode == "image":
                    rgb = self.rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                    depth = self.rng.integers(0, 256, (8, 8), dtype=np.uint8)
                    self.stream.append((topics.OBS_RGB, numpy_to_image(rgb, "rgb8", ns_to_stamp(stamp))))
                    self.stream.append((topics.OBS_DEPTH, numpy_to_image(depth, "mono8", ns_to_stamp(stamp))))
                    truth["images"].append((rgb, depth))
                if k == steps:
                    break
                base = self.rng.normal(0, 0.1, 7).astype(np.float32)
                residual = self.rng.normal(0, 0.01, 7).astype(np.float32)
                intervention = kind == "demo" or (kind == "train" and k == 1)
                composed = (base + self.rng.normal(0, 0.05, 7)).astype(np.float32) if intervention else base + residual
                action = np.clip(composed, -0.2, 0.2).astype(np.float32)
                cmd = CommandedAction(step=episode_id * 100 + k, episode_id=episode_id, action=action.tolist(),
                                      composed_action=composed.tolist(), base_action=base.tolist(),
                                      residual_action=residual.tolist(), lambda_per_dim=[0.5] * 7,
                                      intervention=intervention)
                cmd.header.stamp = ns_to_stamp(stamp)
                self.stream.append((topics.COMMAND, cmd))
                if k == 0:   # a re-sent command must not make a second transition
                    self.stream.append((topics.COMMAND, cmd))
                truth["action"].append(action)
                truth["base"].append(base)
                truth["residual"].append(composed - base if intervention else residual)
                truth["intervention"].append(intervention)
            end_stamp = t + steps * PERIOD
            code = {"success": EpisodeEvent.SUCCESS, "failure": EpisodeEvent.FAILURE, "reset": EpisodeEvent.RESET,
                    "timeout": EpisodeEvent.TIMEOUT}[end]
            ev = EpisodeEvent(event=code, source=EpisodeEvent.SOURCE_ORACLE, episode_id=episode_id,
                              reward=1.0 if end == "success" else 0.0)
            ev.header.stamp = ns_to_stamp(end_stamp)
            self.stream.append((topics.EPISODE_EVENTS, ev))
            truth["end"] = end
            self.truth[episode_id] = truth
            t = end_stamp + 10 * PERIOD

    def write(self, path, storage="mcap", flush_every=0, writer=None):
        w = writer or BagWriter(path, storage)
        for i, (topic, msg) in enumerate(self.stream):
            w.write_raw(topic, SESSION_TOPICS[topic], 1_000 * i + int(msg.header.stamp.sec) * 10**9
                        + msg.header.stamp.nanosec, serialize_message(msg))
            if flush_every and i % flush_every == flush_every - 1:
                w.flush()
        return w


def _buffers(obs_mode="object", n_step=1, image_size=8):
    cfg = ModelConfig(obs_mode=obs_mode, image_size=max(image_size, 16), num_objects=1)
    spec = obs_spec(obs_mode, cfg)
    if obs_mode == "image":
        spec.update(image=((image_size, image_size, 3), "uint8"), depth=((image_size, image_size), "uint8"))
    return (ReplayBuffer(spec, 1000, None, 0.9, n_step, "online"), ReplayBuffer(spec, 1000, None, 0.9, n_step, "demos"))


def _by_id(buffer):
    return {ep.meta["episode_id"]: ep for ep in buffer.episodes()}


def test_session_bag_round_trip_bit_identical(tmp_path):
    s = Session()
    s.write(tmp_path / "bag").close()
    data = read_bag(tmp_path / "bag")
    assert data.issues == [] and not data.recovered
    online, demos = _buffers()
    report = rebuild(data, online, demos, RebuildConfig(tolerance_ms=0.0))
    assert report.source == "session" and report.episodes == 4     # the reset episode is not stored
    on, off = _by_id(online), _by_id(demos)
    assert sorted(on) == [2, 5] and sorted(off) == [1, 2, 5]    # eval 3 goes nowhere; train with an intervention also -> demos
    for eid, ep in list(on.items()) + list(off.items()):
        truth = s.truth[eid]
        np.testing.assert_array_equal(ep.action, np.stack(truth["action"]))
        np.testing.assert_array_equal(ep.residual, np.stack(truth["residual"]).astype(np.float32))
        np.testing.assert_array_equal(ep.intervention, truth["intervention"])
        np.testing.assert_array_equal(ep.obs["object_poses"], np.stack(truth["obj"]))
        np.testing.assert_array_equal(ep.obs["state"][:, :3], np.stack(truth["state_pos"]))
        np.testing.assert_allclose(ep.obs["state"][:, 6], 0.5)       # 2 x 0.02 m of 0.08 m
        expected_reward = np.zeros(len(truth["action"]), np.float32)
        expected_reward[-1] = 1.0 if truth["end"] == "success" else 0.0
        np.testing.assert_array_equal(ep.reward, expected_reward)
        assert bool(ep.done[-1]) == (truth["end"] in ("success", "failure"))
        assert bool(ep.truncated[-1]) == (truth["end"] == "timeout")
        assert ep.success == (truth["end"] == "success")
        np.testing.assert_allclose(ep.mc_return, expected_reward[-1] * 0.9 ** np.arange(len(ep.reward))[::-1],
                                   rtol=1e-6)
        # o_t carries a_VLA_t of command t; the terminal observation repeats the last one.
        np.testing.assert_array_equal(ep.obs["base_action"], np.stack(truth["base"] + truth["base"][-1:]))


def test_image_session_bag_images_equal(tmp_path):
    s = Session(obs_mode="image", seed=1)
    s.write(tmp_path / "bag", storage="sqlite3").close()
    online, demos = _buffers("image")
    rebuild(read_bag(tmp_path / "bag"), online, demos, RebuildConfig(obs_mode="image", image_size=8))
    ep = _by_id(demos)[1]
    truth = s.truth[1]["images"]
    np.testing.assert_array_equal(ep.obs["image"], np.stack([rgb for rgb, _ in truth]))
    np.testing.assert_array_equal(ep.obs["depth"], np.stack([d for _, d in truth]))
    np.testing.assert_array_equal(ep.action, np.stack(s.truth[1]["action"]))


def _issues_text(data):
    return "\n".join(str(i) for i in data.issues)


def test_killed_recorder_bag_loads_up_to_last_flush(tmp_path):
    s = Session()
    writer = s.write(tmp_path / "bag", flush_every=40)          # never closed: the recorder was killed
    shutil.copytree(tmp_path / "bag", tmp_path / "killed")
    writer.close()
    data = read_bag(tmp_path / "killed")
    assert data.recovered and sum(map(len, data.messages.values())) == 80     # the two flushed chunks
    text = _issues_text(data)
    assert str(tmp_path / "killed") in text and "truncated" in text and "t=" in text
    online, demos = _buffers()
    report = rebuild(data, online, demos, RebuildConfig())
    # Episodes 1-3 ended before the last flush; episode 4 had only its START on disk.
    assert report.episodes == 3 and report.dropped == ["episode 4 (train): no complete transition"]
    np.testing.assert_array_equal(_by_id(online)[2].action, np.stack(s.truth[2]["action"]))   # eval 3 is not stored


def test_truncated_and_corrupted_files_keep_readable_parts(tmp_path):
    s = Session()
    s.write(tmp_path / "bag", flush_every=20).close()
    mcap = tmp_path / "bag" / "bag.mcap"
    size = mcap.stat().st_size
    shutil.copytree(tmp_path / "bag", tmp_path / "cut")
    with open(tmp_path / "cut" / "bag.mcap", "r+b") as f:
        f.truncate(size // 2)
    cut = read_bag(tmp_path / "cut")
    assert 0 < sum(map(len, cut.messages.values())) < len(s.stream)
    assert "truncated or corrupted at byte" in _issues_text(cut) and str(tmp_path / "cut") in _issues_text(cut)
    online, demos = _buffers()
    assert rebuild(cut, online, demos, RebuildConfig()).episodes >= 1

    shutil.copytree(tmp_path / "bag", tmp_path / "bad")
    with open(tmp_path / "bad" / "bag.mcap", "r+b") as f:
        f.seek(size // 4)
        f.write(b"\xff" * 64)
    bad = read_bag(tmp_path / "bad")
    assert 0 < sum(map(len, bad.messages.values())) < len(s.stream)
    assert "corrupted" in _issues_text(bad) and "t=" in _issues_text(bad)
    online, demos = _buffers()
    assert rebuild(bad, online, demos, RebuildConfig()).episodes >= 1

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "junk.mcap").write_bytes(b"not a bag at all")
    with pytest.raises(BagError, match="junk"):
        read_bag(tmp_path / "junk")


def test_missing_required_topic_names_it(tmp_path):
    s = Session()
    s.stream = [(t, m) for t, m in s.stream if t != topics.OBJECT_POSES]
    s.write(tmp_path / "bag").close()
    with pytest.raises(BagError, match=r"bag: required topic\(s\) \['/resrl/object_poses'\] missing"):
        rebuild(read_bag(tmp_path / "bag"), *_buffers(), RebuildConfig())


def test_unknown_message_type_is_skipped_with_issue(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    s = Session()
    writer = Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.open()
    foreign = writer.add_connection("/vendor/status", "vendor_msgs/msg/Status", msgdef="", rihs01="RIHS01_" + "0" * 64)
    writer.write(foreign, 1_000_000_000, b"\x00\x01\x00\x00\x05\x00\x00\x00")
    conns = {}
    for i, (topic, msg) in enumerate(s.stream):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, SESSION_TOPICS[topic], typestore=typestore())
        writer.write(conns[topic], 1_000_000_000 + i, serialize_message(msg))
    writer.close()
    data = read_bag(tmp_path / "bag")
    assert "/vendor/status" not in data.messages
    assert "topic /vendor/status" in _issues_text(data) and "unknown message type vendor_msgs/msg/Status" in _issues_text(data)
    online, demos = _buffers()
    assert rebuild(data, online, demos, RebuildConfig()).episodes == 4


def test_time_gap_cuts_episode_and_names_topic(tmp_path):
    s = Session(gap_episode=2)
    s.write(tmp_path / "bag").close()
    data = read_bag(tmp_path / "bag")
    online, demos = _buffers()
    report = rebuild(data, online, demos, RebuildConfig(tolerance_ms=50.0))
    gap = [i for i in data.issues if "time gap" in i.what]
    assert len(gap) == 1 and gap[0].topic == topics.OBJECT_POSES
    ep2 = _by_id(online)[2]
    # o_3 is missing: transitions 0 and 1 are kept, the second bootstraps from o_2 (truncated).
    assert len(ep2.action) == 2 and bool(ep2.truncated[-1]) and not ep2.done.any() and ep2.success is False
    np.testing.assert_array_equal(ep2.action, np.stack(s.truth[2]["action"][:2]))
    assert f"at t={gap[0].stamp_ns / 1e9:.3f}s" in str(gap[0]) and str(tmp_path / "bag") in str(gap[0])
    assert report.episodes == 4


def _write_with_rosbags(path, stream, storage):
    """What `ros2 bag record <topics>` writes: rosbag2 format via a different writer (rosbags')."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP)
    writer.open()
    conns = {}
    for i, (topic, msgtype, msg) in enumerate(stream):
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=typestore())
        writer.write(conns[topic], msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec + i, serialize_message(msg))
    writer.close()


def test_foreign_writer_bag_same_transitions_and_trains_offline(tmp_path):
    from resrl import offline_train
    from resrl.models import build_critic, build_residual
    from resrl.models.checkpoint import load_checkpoint, load_state_dict_checked
    s = Session(seed=3)
    s.write(tmp_path / "ours").close()
    _write_with_rosbags(tmp_path / "recorded", [(t, SESSION_TOPICS[t], m) for t, m in s.stream], "sqlite3")
    results = []
    for name in ("ours", "recorded"):
        online, demos = _buffers()
        rebuild(read_bag(tmp_path / name), online, demos, RebuildConfig())
        results.append([(ep.action, ep.reward, ep.obs["object_poses"], ep.intervention)
                        for buf in (online, demos) for ep in buf.episodes()])
    assert len(results[0]) == len(results[1]) == 5   # online 2, 5; demos 1, 2, 5
    for a, b in zip(*results):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)

    share = Path(__file__).resolve().parents[2] / "config"
    summary = offline_train.run(offline_train.parse_args([
        "--bags", str(tmp_path / "recorded"), "--out", str(tmp_path / "out"), "--params", str(share / "sim_vgm.yaml"),
        "--learner-config", str(share / "learner.yaml"), "--warmup-steps", "5", "--steps", "3",
        "--batch-size", "16", "--learning-starts", "1"]))
    assert summary["demo_transitions"] > 0 and summary["online_transitions"] > 0
    assert summary["warmup_updates"] == 5 and summary["updates"] > 0
    states, cfg, version, _ = load_checkpoint(tmp_path / "out" / "checkpoints" / "final.pt")
    model_cfg = ModelConfig(**{k: v for k, v in cfg.items()})
    assert model_cfg.obs_mode == "object" and version == summary["policy_version"] >= 1
    load_state_dict_checked(build_residual(model_cfg), states["residual"], "residual")
    load_state_dict_checked(build_critic(model_cfg), states["critic"], "critic")
    # The rebuilt transitions are kept in the replay format: the live learner can load them.
    assert len(ReplayBuffer.load(tmp_path / "out" / "replay" / "demos", 1000)) == summary["demo_transitions"]
    saved = json.loads((tmp_path / "out" / "offline_train.json").read_text())
    assert saved["bags"][0]["source"] == "session" and saved["issues"] == []
    with pytest.raises(SystemExit, match="already holds a replay"):
        offline_train.run(offline_train.parse_args(["--bags", str(tmp_path / "recorded"), "--out", str(tmp_path / "out")]))


def test_teleop_bag_with_remapped_topics_becomes_a_demo(tmp_path):
    from resrl.perception.depth import resize_area
    rng = np.random.default_rng(7)
    stream, commands, colors = [], [], []
    t0 = 5_000_000_000
    for i in range(40):                                  # 20 Hz state + teleop commands, 2 s
        stamp = t0 + i * 50_000_000
        pose = np.concatenate([rng.uniform(-0.3, 0.3, 3), rotvec_to_quat(rng.uniform(-0.2, 0.2, 3))])
        stream.append((EE, "geometry_msgs/msg/PoseStamped", _pose_msg(stamp, pose)))
        stream.append((topics.GRIPPER_STATE, "sensor_msgs/msg/JointState", _joint_msg(stamp, [0.04, 0.04])))
        target = np.concatenate([rng.uniform(-0.3, 0.3, 3), rotvec_to_quat(rng.uniform(-0.2, 0.2, 3))])
        grip = float(i >= 20)
        stream.append(("/teleop/target_pose", "geometry_msgs/msg/PoseStamped", _pose_msg(stamp + 1_000_000, target)))
        stream.append(("/teleop/gripper", "sensor_msgs/msg/JointState", _joint_msg(stamp + 1_000_000, [grip])))
        commands.append((stamp + 1_000_000, target, grip))
        if i % 2 == 0:                                   # 10 Hz camera, 3 ms after the state
            rgb = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            depth = rng.integers(300, 2000, (32, 32)).astype(np.uint16)
            stream.append((topics.COLOR_IMAGE, "sensor_msgs/msg/Image", numpy_to_image(rgb, "rgb8", ns_to_stamp(stamp + 3_000_000))))
            stream.append((topics.DEPTH_IMAGE, "sensor_msgs/msg/Image", numpy_to_image(depth, "16UC1", ns_to_stamp(stamp + 3_000_000))))
            colors.append(rgb)
    _write_with_rosbags(tmp_path / "teleop", stream, "mcap")
    cfg = RebuildConfig(obs_mode="image", image_size=16, tolerance_ms=10.0,
                        teleop=TeleopTopics.from_remaps(["commanded_pose:=/teleop/target_pose",
                                                         "gripper_command:=/teleop/gripper"]))
    online, demos = _buffers("image", image_size=16)
    data = read_bag(tmp_path / "teleop")
    report = rebuild(data, online, demos, cfg)
    assert report.source == "teleop" and report.episodes == 1 and len(online) == 0
    ep = next(demos.episodes())
    # Steps every 100 ms from the first command; the action is the last command at or before t_k.
    k = np.arange(len(ep.action))
    assert len(ep.action) == 19 and ep.intervention.all() and ep.success and ep.done[-1] and ep.reward[-1] == 1.0
    for i in k:
        stamp, target, grip = commands[2 * i]
        expected = np.concatenate([target[:3], quat_to_rotvec(target[3:]), [grip]]).astype(np.float32)
        np.testing.assert_allclose(ep.action[i], expected, atol=1e-6)
        np.testing.assert_array_equal(ep.obs["image"][i], resize_area(colors[i], 16))
    np.testing.assert_allclose(ep.obs["state"][:, 6], 1.0)                      # fingers fully open
    np.testing.assert_allclose(ep.obs["base_action"][:, 6], 0.0)                 # hold: open gripper
    np.testing.assert_allclose(ep.residual, ep.action - ep.obs["base_action"][:-1], atol=1e-6)
    with pytest.raises(BagError, match="teleop/gripper|/resrl/gripper_command"):
        rebuild(data, *_buffers("image", image_size=16), RebuildConfig(obs_mode="image", image_size=16))
    with pytest.raises(ValueError, match="bad topic remap"):
        TeleopTopics.from_remaps(["commanded:=/x"])


def test_rebuild_does_not_depend_on_receive_order(tmp_path):
    """A recorder's executor may log a terminal event before the last command, or a re-published
    observation part twice: episodes follow header stamps and ids, and the first value of a part wins."""
    s = Session(seed=5)
    s.write(tmp_path / "ordered").close()
    shuffled = list(s.stream)
    for i, (topic, msg) in enumerate(list(shuffled)):
        if topic == topics.EPISODE_EVENTS and msg.event in (1, 2, 7):   # terminal: move it before the last command
            last_cmd = max(j for j in range(i) if shuffled[j][0] == topics.COMMAND)
            shuffled.insert(last_cmd, shuffled.pop(i))
    first_pose = next(m for t, m in s.stream if t == topics.OBJECT_POSES)
    from resrl.msg import TrackedObjects
    resent = TrackedObjects(header=first_pose.header, objects=[])      # a later, different copy
    shuffled.insert(shuffled.index((topics.OBJECT_POSES, first_pose)) + 1, (topics.OBJECT_POSES, resent))
    s.stream = shuffled
    s.write(tmp_path / "shuffled").close()
    results = []
    for name in ("ordered", "shuffled"):
        online, demos = _buffers()
        rebuild(read_bag(tmp_path / name), online, demos, RebuildConfig())
        results.append([(ep.action, ep.reward, ep.done, ep.obs["object_poses"]) for buf in (online, demos)
                        for ep in buf.episodes()])
    assert len(results[0]) == len(results[1]) == 5   # online 2, 5; demos 1, 2, 5
    for a, b in zip(*results):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
