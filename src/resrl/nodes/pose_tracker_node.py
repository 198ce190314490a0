"""Pose tracking node: object poses with confidence for the object-centric residual.

Backends (``tracker.backend``):
- ``sim``: ground truth from the simulator + SimulatedTracker noise/dropout;
- ``passthrough``: re-publishes an external tracker's TrackedObjects after validation;
- ``detection3d``: Isaac ROS FoundationPose's ``vision_msgs/Detection3DArray`` (``tracking/output``
  or ``pose_estimation/output``), mapped to the configured object slots and into the robot base
  frame with the static camera extrinsic; the hypothesis score is the confidence;
- ``foundationpose``: FoundationPose + SAM2 in-process on the RealSense colour + aligned depth
  (resrl.perception.foundationpose; needs their checkout, packages, weights and CUDA), one object.
Below ``conf_threshold`` consumers see zeros (the seed's dropout fallback). When the tracker stops
publishing, no TrackedObjects go out, the observation for those steps is incomplete and the
residual / arbiter hold.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from resrl import topics
from resrl.deps import require
from resrl.msg import EpisodeEvent, TrackedObjectPose, TrackedObjects
from resrl.obs_assembly import ObservationAssembler
from resrl.node_config import PoseTrackerNodeConfig
from resrl.perception.pose_tracking import DetectionTrackerConfig, SimulatedTrackers, detections_to_objects
from resrl.ros import qos
from resrl.ros.convert import MessageError, image_to_numpy, numpy_to_pose, pose_to_numpy, stamp_to_ns
from resrl.ros.node_main import run_node
from resrl.control import session_seeds
from resrl.ros.params import declare_dataclass


class PoseTrackerNode(Node):
    def __init__(self):
        super().__init__("pose_tracker")
        # Every backend's parameters, declared up front (each backend reads its own).
        self.cfg = cfg = declare_dataclass(self, PoseTrackerNodeConfig)
        self.backend = cfg.tracker.backend
        self.input_topic = cfg.tracker.input_topic
        self.trackers = SimulatedTrackers(cfg.tracker.noise, session_seeds(cfg.seed)["tracker"])   # one per object id
        self.last_output = None        # (stamp, TrackedObjects) of the sim path, for re-sent frames
        self.pub = self.create_publisher(TrackedObjects, topics.OBJECT_POSES, qos.sensor(self))
        if self.backend == "detection3d":
            self._init_detection3d()
        elif self.backend == "foundationpose":
            self._init_foundationpose()
        elif self.backend in ("sim", "passthrough"):
            self.create_subscription(TrackedObjects, self.input_topic, self._on_objects, qos.sensor(self))
        else:
            raise ValueError(f"unknown tracker.backend '{self.backend}' "
                             "(sim | passthrough | detection3d | foundationpose)")
        self.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, self._on_event, qos.EVENTS)

    def _init_detection3d(self):
        # One line, no traceback, when it is missing (resrl.deps): "... needs vision_msgs ...".
        Detection3DArray = require("vision_msgs.msg", "pose_tracker (tracker.backend 'detection3d')").Detection3DArray
        self.detection_cfg = self._detection_config()
        self.create_subscription(Detection3DArray, self.cfg.tracker.detection.topic,
                                 self._on_detections, qos.sensor(self))

    def _detection_config(self):
        det = self.cfg.tracker.detection
        return DetectionTrackerConfig(object_ids=tuple(det.object_ids),
                                      camera_pose_in_base=tuple(float(v) for v in det.camera_pose_in_base),
                                      base_frame=det.base_frame)

    def _init_foundationpose(self):
        from resrl.perception.foundationpose import FoundationPoseSAM2
        fp = self.cfg.tracker.foundationpose
        cfg = self._detection_config()
        self.object_id = (cfg.object_ids or ("object",))[0]
        self.detection_cfg = dataclasses.replace(cfg, object_ids=(self.object_id,))   # one tracked object
        self.pose_tracker = FoundationPoseSAM2(fp.repo_dir, fp.mesh_file, fp.sam2_config, fp.sam2_checkpoint,
                                               list(fp.prompt_box))
        self.depth_scale = fp.depth_scale
        self.k = None
        self.frames = ObservationAssembler(["color", "depth"], max_skew_ns=int(self.cfg.max_skew_ms * 1e6),
                                           history=4)
        sensor = qos.sensor(self)
        self.create_subscription(CameraInfo, topics.COLOR_INFO, lambda m: setattr(self, "k", np.asarray(m.k)), sensor)
        self.create_subscription(Image, topics.COLOR_IMAGE, lambda m: self._on_frame("color", m), sensor)
        self.create_subscription(Image, topics.DEPTH_IMAGE, lambda m: self._on_frame("depth", m), sensor)

    def _on_frame(self, part: str, msg: Image):
        ns = stamp_to_ns(msg.header.stamp)
        self.frames.add(part, ns, msg)
        pair = self.frames.get(ns)
        if pair is None or self.k is None:
            return
        try:
            rgb = image_to_numpy(pair["color"])
            depth = image_to_numpy(pair["depth"]).astype(np.float32) * self.depth_scale
        except MessageError as exc:
            self.get_logger().error(f"dropping frame: {exc}", throttle_duration_sec=2.0)
            return
        pose, conf, valid = self.pose_tracker.track(rgb, depth, self.k)
        dets = [(self.object_id, [(self.object_id, conf, pose)])] if valid else []
        self._publish_objects(pair["color"].header.stamp, detections_to_objects(dets, self.detection_cfg))

    def _publish_objects(self, stamp, objects):
        out = TrackedObjects()
        out.header.stamp, out.header.frame_id = stamp, self.detection_cfg.base_frame
        for object_id, pose, conf, valid in objects:
            obj = TrackedObjectPose(object_id=object_id, confidence=conf, valid=valid)
            obj.header = out.header
            if valid:
                obj.pose = numpy_to_pose(pose)
            out.objects.append(obj)
        self.pub.publish(out)

    def _on_detections(self, msg):
        dets = [(d.id, [(r.hypothesis.class_id, r.hypothesis.score, pose_to_numpy(r.pose.pose)) for r in d.results])
                for d in msg.detections]
        self._publish_objects(msg.header.stamp, detections_to_objects(dets, self.detection_cfg))

    def _on_event(self, msg: EpisodeEvent):
        if msg.event == EpisodeEvent.START:
            self.trackers.reset()
            if self.backend == "foundationpose":
                self.pose_tracker.reset()   # the object was moved: segment and register again

    def _on_objects(self, msg: TrackedObjects):
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if self.last_output is not None and self.last_output[0] == stamp:
            # A re-sent observation (lockstep sim after a lost command) must track identically:
            # fresh noise would give one stamp two different poses in the replay and the bag.
            self.pub.publish(self.last_output[1])
            return
        out = TrackedObjects(header=msg.header)
        for obj in msg.objects:
            gt = pose_to_numpy(obj.pose)
            if not np.all(np.isfinite(gt)):
                self.get_logger().warning(f"{obj.object_id}: non-finite pose dropped", throttle_duration_sec=2.0)
                out.objects.append(TrackedObjectPose(header=obj.header, object_id=obj.object_id,
                                                     confidence=0.0, valid=False))
                continue
            if self.backend == "sim":
                pose, conf, valid = self.trackers.track(obj.object_id, gt)
            else:
                pose, conf, valid = gt, obj.confidence, obj.valid
            out.objects.append(TrackedObjectPose(header=obj.header, object_id=obj.object_id,
                                                 pose=numpy_to_pose(pose), confidence=float(conf), valid=valid))
        self.last_output = (stamp, out)
        self.pub.publish(out)


def main(args=None):
    return run_node(PoseTrackerNode, args)


if __name__ == "__main__":
    main()
