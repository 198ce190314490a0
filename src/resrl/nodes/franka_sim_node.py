"""A simulated Franka cell behind the real drivers' contract: rehearse the real-robot graph without an arm.

``ros2 launch resrl franka_vgm.launch.py sim_cell:=true`` starts it in place of the franka_ros2
driver, the camera and FoundationPose (docs/robots.md). Logic in resrl.sim.franka_cell; this node:

- publishes ``/franka_robot_state_broadcaster/current_pose``, ``/franka_gripper/joint_states`` and
  ``/joint_states`` (reliable, as franka_ros2 does), FoundationPose's ``vision_msgs/Detection3DArray``
  in the camera's optical frame and, with ``render``, realsense2_camera's colour / aligned depth;
- follows the Cartesian controller's ``PoseStamped`` target (``franka.target_topic``);
- serves franka_gripper's ``move`` / ``grasp`` / ``homing`` and franka_hardware's
  ``/action_server/error_recovery`` actions; error recovery also puts the scene back.

Wall-clock time, like the driver: the physics advances one control period per timer tick with
the latest target. No reward is published: the operator's keys or the classifier label episodes.
"""
from __future__ import annotations

import json
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionServer
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from resrl import topics
from resrl.deps import require
from resrl.node_config import FrankaSimNodeConfig
from resrl.ros import qos
from resrl.ros.convert import numpy_to_pose, pose_to_numpy
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.params import declare_dataclass
from resrl.ros.sim_state import SimStatePublishers
from resrl.sim.franka_cell import JOINT_NAMES, FrankaCell, FrankaCellConfig

# franka_ros2 publishes its state with rclcpp's SystemDefaults QoS: reliable.
DRIVER_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class FrankaSimNode(Node):
    def __init__(self):
        super().__init__("franka_sim")
        cfg = declare_dataclass(self, FrankaSimNodeConfig)
        actions = require("franka_msgs.action", "franka_sim (franka_gripper and error recovery actions)",
                          source_workspace="franka_ros2")
        vision = require("vision_msgs.msg", "franka_sim (FoundationPose's Detection3DArray)")
        self.actions, self.vision = actions, vision
        self.cell = FrankaCell(FrankaCellConfig(task=cfg.task, seed=cfg.seed, control_rate_hz=cfg.control_rate_hz,
                                                render=cfg.render, camera_size=cfg.camera_size,
                                                max_width=cfg.franka.max_width))
        self.base_frame, self.camera_frame = cfg.frame_id, cfg.camera_frame
        self.lock = threading.Lock()
        self.counts = {"targets": 0, "bad_targets": 0, "gripper_goals": 0, "recoveries": 0, "steps": 0}
        self.state_pubs = SimStatePublishers(self, DRIVER_QOS, cfg.frame_id, cfg.camera_frame,
                                             ee_pose_topic=cfg.franka.ee_pose_topic,
                                             gripper_topic=cfg.franka.gripper_state_topic)
        self.det_pub = self.create_publisher(vision.Detection3DArray, cfg.detection_topic, DRIVER_QOS)
        self.info_pub = self.create_publisher(String, topics.TASK_INFO, qos.CONTROL)   # diagnostics only
        # Best effort matches a reliable or a best-effort target publisher.
        self.create_subscription(PoseStamped, cfg.franka.target_topic, self._on_target, qos.SENSOR)
        ns = cfg.franka.gripper_namespace.rstrip("/")
        self.servers = [ActionServer(self, cls, f"{ns}/{name}", self._gripper_goal(name, cls))
                        for name, cls in (("move", actions.Move), ("grasp", actions.Grasp), ("homing", actions.Homing))]
        self.servers.append(ActionServer(self, actions.ErrorRecovery, cfg.franka.error_recovery_action,
                                         self._error_recovery))
        wall_timer(self, 1.0 / cfg.control_rate_hz, self._tick)
        self.get_logger().info(f"simulated Franka cell ({cfg.task}, {cfg.control_rate_hz:g} Hz): target on "
                               f"{cfg.franka.target_topic}, detections on {cfg.detection_topic}, camera at "
                               f"{[round(v, 4) for v in self.cell.camera_pose_in_base()]} in {cfg.frame_id}")

    def _on_target(self, msg: PoseStamped):
        try:
            if msg.header.frame_id and msg.header.frame_id != self.base_frame:
                raise ValueError(f"frame {msg.header.frame_id!r}, the controller runs in {self.base_frame!r}")
            with self.lock:
                self.cell.set_target(pose_to_numpy(msg.pose))
                self.counts["targets"] += 1
        except ValueError as exc:   # the controller keeps its last target, as a real one does
            with self.lock:
                self.counts["bad_targets"] += 1
            self.get_logger().error(f"target ignored: {exc}", throttle_duration_sec=2.0)

    def _gripper_goal(self, name: str, cls):
        def execute(handle):
            with self.lock:
                if name == "grasp":
                    self.cell.grasp()
                else:   # move to a width; homing opens fully
                    self.cell.move(handle.request.width if name == "move" else self.cell.cfg.max_width)
                self.counts["gripper_goals"] += 1
            handle.succeed()
            return cls.Result(success=True)
        return execute

    def _error_recovery(self, handle):
        with self.lock:
            seed = self.cell.reset_scene()
            self.counts["recoveries"] += 1
        self.get_logger().info(f"error recovery: scene put back (scene seed {seed})")
        handle.succeed()
        return self.actions.ErrorRecovery.Result()

    def _tick(self):
        with self.lock:
            info = self.cell.step()
            self.counts["steps"] += 1
            obs, ee, fingers = self.cell.obs, self.cell.ee_pose(), self.cell.finger_positions()
            detections = self.cell.detections()
            success = self.cell.success()
            counts = dict(self.counts)
        if info.get("scene_reset"):
            self.get_logger().error("simulation unstable: scene put back")
        stamp = self.get_clock().now().to_msg()
        self.state_pubs.publish(self.cell.env, obs, stamp, ee, fingers, JOINT_NAMES)
        self.det_pub.publish(self._detections(stamp, detections))
        self.info_pub.publish(String(data=json.dumps({"success": success, **counts,
                                                      "ee_pose": np.round(ee, 5).tolist()})))

    def _detections(self, stamp, detections):
        out = self.vision.Detection3DArray()
        out.header.stamp, out.header.frame_id = stamp, self.camera_frame
        for object_id, score, pose in detections:
            det = self.vision.Detection3D()
            det.header, det.id = out.header, object_id
            hyp = self.vision.ObjectHypothesisWithPose()
            hyp.hypothesis.class_id, hyp.hypothesis.score = object_id, float(score)
            hyp.pose.pose = numpy_to_pose(pose)
            det.results.append(hyp)
            out.detections.append(det)
        return out


def main(args=None):
    return run_node(FrankaSimNode, args)


if __name__ == "__main__":
    main()
