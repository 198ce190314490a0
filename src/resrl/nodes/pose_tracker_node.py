"""Pose tracking node: object poses with confidence for the object-centric residual.

Backend ``sim``: ground truth from the simulator + SimulatedTracker noise/dropout. Backend
``passthrough``: re-publishes an external tracker's TrackedObjects (e.g. a FoundationPose bridge)
after validation. Below ``conf_threshold`` consumers see zeros (the seed's dropout fallback).
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node

from resrl import topics
from resrl.msg import EpisodeEvent, TrackedObjectPose, TrackedObjects
from resrl.perception.pose_tracking import SimulatedTracker, TrackerNoiseConfig
from resrl.ros import qos
from resrl.ros.convert import numpy_to_pose, pose_to_numpy
from resrl.ros.node_main import run_node
from resrl.ros.params import declare_dataclass


class PoseTrackerNode(Node):
    def __init__(self):
        super().__init__("pose_tracker")
        self.backend = self.declare_parameter("tracker.backend", "sim").value
        self.input_topic = self.declare_parameter("tracker.input_topic", topics.OBJECT_POSES_GT).value
        cfg = declare_dataclass(self, TrackerNoiseConfig, "tracker.noise")
        self.tracker = SimulatedTracker(cfg, self.declare_parameter("seed", 0).value + 11)
        self.pub = self.create_publisher(TrackedObjects, topics.OBJECT_POSES, qos.sensor(self))
        self.create_subscription(TrackedObjects, self.input_topic, self._on_objects, qos.sensor(self))
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)

    def _on_event(self, msg: EpisodeEvent):
        if msg.event == EpisodeEvent.START:
            self.tracker.reset()

    def _on_objects(self, msg: TrackedObjects):
        out = TrackedObjects(header=msg.header)
        for obj in msg.objects:
            gt = pose_to_numpy(obj.pose)
            if not np.all(np.isfinite(gt)):
                self.get_logger().warning(f"{obj.object_id}: non-finite pose dropped", throttle_duration_sec=2.0)
                out.objects.append(TrackedObjectPose(header=obj.header, object_id=obj.object_id,
                                                     confidence=0.0, valid=False))
                continue
            if self.backend == "sim":
                pose, conf, valid = self.tracker.track(gt)
            else:
                pose, conf, valid = gt, obj.confidence, obj.valid
            out.objects.append(TrackedObjectPose(header=obj.header, object_id=obj.object_id,
                                                 pose=numpy_to_pose(pose), confidence=float(conf), valid=valid))
        self.pub.publish(out)


def main(args=None):
    return run_node(PoseTrackerNode, args)


if __name__ == "__main__":
    main()
