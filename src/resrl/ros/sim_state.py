"""What a simulated Franka publishes as its drivers would: franka_ros2's joint states, EE pose and
finger joint states, realsense2_camera's colour / aligned depth with their infos. Shared by the
sim graph's robot (sim_robot_node) and the sim cell behind the real-robot graph (franka_sim_node)."""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState

from resrl import topics
from resrl.perception.depth import sensor_depth_to_uint16_mm
from resrl.ros.convert import camera_info, numpy_to_image, numpy_to_pose


class SimStatePublishers:
    def __init__(self, node, qos_profile, base_frame: str, camera_frame: str, ee_pose_topic: str = topics.EE_POSE,
                 gripper_topic: str = topics.GRIPPER_STATE):
        self.base_frame, self.camera_frame = base_frame, camera_frame
        self.js_pub = node.create_publisher(JointState, topics.JOINT_STATES, qos_profile)
        self.pose_pub = node.create_publisher(PoseStamped, ee_pose_topic, qos_profile)
        self.grip_pub = node.create_publisher(JointState, gripper_topic, qos_profile)
        self.color_pub = node.create_publisher(Image, topics.COLOR_IMAGE, qos_profile)
        self.depth_pub = node.create_publisher(Image, topics.DEPTH_IMAGE, qos_profile)
        self.color_info_pub = node.create_publisher(CameraInfo, topics.COLOR_INFO, qos_profile)
        self.depth_info_pub = node.create_publisher(CameraInfo, topics.DEPTH_INFO, qos_profile)

    def publish(self, env, obs: Dict[str, np.ndarray], stamp, ee_pose: Sequence[float],
                finger_positions: Sequence[float], joint_names: Sequence[str] = ()) -> None:
        """One state (and, when the env renders, one camera frame) stamped ``stamp``; the joints
        under ``joint_names`` (7 arm + 2 fingers; default: the env's own)."""
        if "image" in obs:
            intr = env.camera_intrinsics()
            for pub, info_pub, img, enc in ((self.color_pub, self.color_info_pub, obs["image"], "rgb8"),
                                            (self.depth_pub, self.depth_info_pub,
                                             sensor_depth_to_uint16_mm(obs["depth_m"]), "16UC1")):
                pub.publish(numpy_to_image(img, enc, stamp, self.camera_frame))
                info_pub.publish(camera_info(intr["width"], intr["height"], intr["fx"], intr["fy"],
                                             intr["cx"], intr["cy"], stamp, self.camera_frame))
        names = list(joint_names or env.joint_names)
        js = JointState(name=names, position=obs["joint_pos"].astype(float).tolist(),
                        velocity=obs["joint_vel"].astype(float).tolist())
        js.header.stamp = stamp
        self.js_pub.publish(js)
        grip = JointState(name=names[7:9], position=[float(p) for p in finger_positions])
        grip.header.stamp = stamp
        self.grip_pub.publish(grip)
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, self.base_frame
        pose.pose = numpy_to_pose(np.asarray(ee_pose, np.float64))
        self.pose_pub.publish(pose)
