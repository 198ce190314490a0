"""numpy <-> ROS message conversions (cv_bridge-compatible encodings, no cv_bridge needed)."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped
from sensor_msgs.msg import CameraInfo, Image

from resrl.geometry import quat_to_rotvec, rotvec_to_quat

_ENCODINGS = {  # encoding -> (dtype, channels)
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "mono8": (np.uint8, 1),
    "8UC1": (np.uint8, 1),
    "16UC1": (np.uint16, 1),
    "mono16": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}


class MessageError(ValueError):
    """A message could not be converted (wrong encoding, size or content)."""


def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def image_to_numpy(msg: Image) -> np.ndarray:
    """Image -> (H, W, 3) uint8 RGB, (H, W) uint8/uint16/float32 for single-channel encodings."""
    if msg.encoding not in _ENCODINGS:
        raise MessageError(f"unsupported image encoding '{msg.encoding}'")
    dtype, channels = _ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    row = msg.width * channels * itemsize
    if msg.step < row or len(msg.data) < msg.step * msg.height:
        raise MessageError(
            f"image {msg.width}x{msg.height} {msg.encoding}: step {msg.step}, {len(msg.data)} bytes is too small")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, :row]
    arr = buf.copy().view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<"))
    arr = arr.reshape(msg.height, msg.width, channels).astype(dtype, copy=False)
    if msg.encoding == "bgr8":
        arr = arr[..., ::-1]
    return arr[..., 0] if channels == 1 else np.ascontiguousarray(arr)


def numpy_to_image(arr: np.ndarray, encoding: str, stamp: Time | None = None, frame_id: str = "") -> Image:
    if encoding not in _ENCODINGS:
        raise MessageError(f"unsupported image encoding '{encoding}'")
    dtype, channels = _ENCODINGS[encoding]
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if (channels == 1 and arr.ndim != 2) or (channels == 3 and (arr.ndim != 3 or arr.shape[2] != 3)):
        raise MessageError(f"array of shape {arr.shape} does not fit encoding {encoding}")
    if encoding == "bgr8":
        arr = np.ascontiguousarray(arr[..., ::-1])
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1] * channels * arr.dtype.itemsize)
    msg.data = arr.tobytes()
    return msg


def camera_info(width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                stamp: Time | None = None, frame_id: str = "") -> CameraInfo:
    msg = CameraInfo()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def pose_to_numpy(pose: Pose) -> np.ndarray:
    """Pose -> [x, y, z, qx, qy, qz, qw] float32."""
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float32)


def numpy_to_pose(v) -> Pose:
    v = np.asarray(v, dtype=np.float64)
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = map(float, v[:3])
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = map(float, v[3:7])
    return pose


def action_to_pose_stamped(action, stamp: Time, frame_id: str) -> PoseStamped:
    """The translation + rotation-vector part of an action as an absolute target pose."""
    a = np.asarray(action, dtype=np.float64)
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose = numpy_to_pose(np.concatenate([a[:3], rotvec_to_quat(a[3:6])]))
    return msg


def pose_stamped_to_state(msg: PoseStamped, gripper_opening: float) -> np.ndarray:
    """EE pose + gripper opening -> the 7-D proprioceptive state [pos, rotvec, gripper]."""
    v = pose_to_numpy(msg.pose)
    return np.concatenate([v[:3], quat_to_rotvec(v[3:7]), [gripper_opening]]).astype(np.float32)
