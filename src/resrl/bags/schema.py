"""What a resrl session bag holds: the topic list, message types and the type store.

The topic list is the one to pass to ``ros2 bag record`` on a real robot (``docs/data.md``);
the bag recorder node records the same list. Custom message definitions come from the
package's ``msg/*.msg`` files, so bags written here embed them and are self-describing.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, Tuple

from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from resrl import topics

# topic -> ROS 2 type name, as ``ros2 topic info`` prints it.
SESSION_TOPICS: Dict[str, str] = {
    topics.JOINT_STATES: "sensor_msgs/msg/JointState",
    topics.EE_POSE: "geometry_msgs/msg/PoseStamped",
    topics.GRIPPER_STATE: "sensor_msgs/msg/JointState",
    topics.TARGET_POSE: "geometry_msgs/msg/PoseStamped",
    topics.GRIPPER_COMMAND: "sensor_msgs/msg/JointState",
    topics.COLOR_IMAGE: "sensor_msgs/msg/Image",
    topics.COLOR_INFO: "sensor_msgs/msg/CameraInfo",
    topics.DEPTH_IMAGE: "sensor_msgs/msg/Image",
    topics.DEPTH_INFO: "sensor_msgs/msg/CameraInfo",
    topics.OBS_RGB: "sensor_msgs/msg/Image",
    topics.OBS_DEPTH: "sensor_msgs/msg/Image",
    topics.OBJECT_POSES: "resrl/msg/TrackedObjects",
    topics.VLA_CHUNK: "resrl/msg/ActionChunk",
    topics.RESIDUAL: "resrl/msg/ResidualAction",
    topics.COMMAND: "resrl/msg/CommandedAction",
    topics.GATE_STATE: "resrl/msg/GateState",
    topics.EPISODE_EVENTS: "resrl/msg/EpisodeEvent",
    topics.INTERVENTION: "resrl/msg/Intervention",
}

# Compressed camera streams (image_transport's names) are accepted where the raw ones are absent.
COMPRESSED_SUFFIX = "/compressed"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


def required_session_topics(obs_mode: str) -> Tuple[str, ...]:
    """Topics without which no transition of a resrl session bag can be rebuilt."""
    obs = (topics.OBS_RGB, topics.OBS_DEPTH) if obs_mode == "image" else (topics.OBJECT_POSES,)
    return (topics.COMMAND, topics.EPISODE_EVENTS, topics.EE_POSE, topics.GRIPPER_STATE) + obs


@dataclass(frozen=True)
class TeleopTopics:
    """Topic names of a plain teleoperation bag (no resrl topics); every one is remappable."""

    ee_pose: str = topics.EE_POSE                      # geometry_msgs/PoseStamped (robot state)
    gripper_state: str = topics.GRIPPER_STATE          # sensor_msgs/JointState finger positions (m)
    commanded_pose: str = topics.TARGET_POSE           # geometry_msgs/PoseStamped (teleop target)
    gripper_command: str = topics.GRIPPER_COMMAND      # sensor_msgs/JointState position[0] in [0, 1], 1 = closed
    color: str = topics.COLOR_IMAGE                    # sensor_msgs/Image rgb8/bgr8 (or <color>/compressed)
    depth: str = topics.DEPTH_IMAGE                    # sensor_msgs/Image 16UC1 mm / 32FC1 m (optional)
    object_poses: str = topics.OBJECT_POSES            # resrl/TrackedObjects (object mode)
    episode_events: str = topics.EPISODE_EVENTS        # resrl/EpisodeEvent (optional: episode bounds)

    def required(self, obs_mode: str) -> Tuple[str, ...]:
        obs = (self.color, self.depth) if obs_mode == "image" else (self.object_poses,)
        return (self.ee_pose, self.gripper_state, self.commanded_pose, self.gripper_command) + obs

    @classmethod
    def from_remaps(cls, remaps: Iterable[str]) -> "TeleopTopics":
        """``["commanded_pose:=/my/target", ...]`` -> TeleopTopics with those names replaced."""
        fields = cls.__dataclass_fields__
        values = {}
        for item in remaps:
            key, sep, value = item.partition(":=")
            if not sep or key not in fields or not value.startswith("/"):
                raise ValueError(f"bad topic remap {item!r}: expected NAME:=/topic with NAME in {sorted(fields)}")
            values[key] = value
        return cls(**values)


def msg_dir() -> Path:
    """The package's msg/ folder (install space share/resrl/msg, or the source tree)."""
    from resrl.launch_runner import package_share
    for candidate in (package_share() / "msg", Path(__file__).resolve().parents[3] / "msg"):
        if candidate.is_dir() and any(candidate.glob("*.msg")):
            return candidate
    raise FileNotFoundError("resrl msg/*.msg definitions not found (install space or source tree)")


@lru_cache(maxsize=None)
def _resrl_types() -> dict:
    types = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"resrl/msg/{path.stem}"))
    return types


@lru_cache(maxsize=None)
def _shared_store():
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(_resrl_types())
    return store


def typestore(fresh: bool = False):
    """ROS 2 Kilted standard types + resrl's own messages (rosbags type store).

    ``fresh``: a new store the caller may register more types into (a bag's embedded ones).
    """
    if not fresh:
        return _shared_store()
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(_resrl_types())
    return store
