"""Camera / depth node: RealSense-style colour + aligned depth in, model-resolution RGB and
relative depth out (same stamp), for the image residual.

Colour and depth are paired by stamp with the package's own assembler (see __init__ for why not
message_filters' approximate synchroniser). Relative depth comes from the sensor depth or from
Depth-Anything-V2 (parameter ``depth.source``).

Stale camera (``stale_after_ms`` > 0; off by default because simulated stamps follow no clock): a
frame pair whose stamp is older than that on the node's clock is dropped, and a watchdog logs
when no frame has arrived for that long. No observation is published meanwhile, so the residual
and the arbiter, which need the image parts of the observation, hold the robot.
"""
from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from resrl import topics
from resrl.obs_assembly import ObservationAssembler
from resrl.perception.depth import make_depth_source, resize_area, resize_nearest
from resrl.ros import qos
from resrl.ros.convert import MessageError, image_to_numpy, numpy_to_image, stamp_to_ns
from resrl.node_config import CameraNodeConfig
from resrl.ros.node_main import run_node, wall_timer
from resrl.ros.params import declare_dataclass


class CameraDepthNode(Node):
    def __init__(self):
        super().__init__("camera_depth")
        cfg = declare_dataclass(self, CameraNodeConfig)
        self.size = cfg.image_size
        self.source_kind = cfg.depth.source
        self.depth = make_depth_source(cfg.depth.source, cfg.depth.checkpoint_dir, cfg.depth.input_size,
                                       cfg.depth.depth_scale)
        skew_ns = int(cfg.max_skew_ms * 1e6)
        self.stale_ns = int(cfg.stale_after_ms * 1e6)
        self.last_frame = time.monotonic()   # arrival of the last pair (steady clock)
        self.stale = False                   # logged once per outage; cleared by the next fresh pair
        if self.stale_ns > 0:
            wall_timer(self, max(self.stale_ns / 2e9, 0.01), self._watchdog)
        # Aligned depth carries the colour camera's intrinsics: the infos catch an unaligned stream.
        self.infos = {}
        for key, topic in (("color", topics.COLOR_INFO), ("depth", topics.DEPTH_INFO)):
            self.create_subscription(CameraInfo, topic, lambda m, k=key: self.infos.__setitem__(k, m), qos.sensor(self))
        self.rgb_pub = self.create_publisher(Image, topics.OBS_RGB, qos.sensor(self))
        self.depth_pub = self.create_publisher(Image, topics.OBS_DEPTH, qos.sensor(self))
        # Paired by exact stamp (aligned depth carries the colour frame's stamp), at once: not
        # message_filters.ApproximateTimeSynchronizer, which releases a set only when a later frame
        # proves it optimal -- in lockstep no later frame comes until this one is answered (measured:
        # the image-mode graph session stalled at step 2), and a re-sent frame must not publish twice.
        self.pairs = ObservationAssembler(["color", "depth"], max_skew_ns=skew_ns, history=8)
        self.create_subscription(Image, topics.COLOR_IMAGE, lambda m: self._on_part("color", m), qos.sensor(self))
        self.create_subscription(Image, topics.DEPTH_IMAGE, lambda m: self._on_part("depth", m), qos.sensor(self))
        self.done_ns = -1
        self._drop_reason, self._drop_said = "", 0.0

    def _on_part(self, part: str, msg: Image):
        ns = stamp_to_ns(msg.header.stamp)
        self.pairs.add(part, ns, msg)
        if ns <= self.done_ns:
            return
        pair = self.pairs.get(ns)
        if pair is not None:
            self.done_ns = ns
            self._on_pair(pair["color"], pair["depth"])

    def _watchdog(self):
        gap = time.monotonic() - self.last_frame
        if gap * 1e9 > self.stale_ns and not self.stale:
            self.stale = True
            self.get_logger().error(f"stale camera: no colour+depth frame for {gap * 1e3:.0f} ms; "
                                    "observation stopped (the arbiter holds)")

    def _check_aligned(self, color_hw, depth_hw):
        if color_hw != depth_hw:
            raise MessageError(f"depth {depth_hw[1]}x{depth_hw[0]} does not match colour {color_hw[1]}x{color_hw[0]}: "
                               "subscribe to aligned depth (realsense2_camera align_depth.enable:=true)")
        ci, di = self.infos.get("color"), self.infos.get("depth")
        if ci is not None and di is not None and not np.allclose(ci.k, di.k, rtol=1e-3):
            raise MessageError("depth camera_info intrinsics differ from colour's: the depth stream is not "
                               "aligned to colour (realsense2_camera align_depth.enable:=true)")

    def _on_pair(self, color: Image, depth: Image):
        if self.stale_ns > 0:
            age_ns = self.get_clock().now().nanoseconds - stamp_to_ns(color.header.stamp)
            if age_ns > self.stale_ns:
                self.get_logger().error(f"stale camera: frame is {age_ns / 1e6:.0f} ms old "
                                        f"(> {self.stale_ns / 1e6:.0f} ms); not published", throttle_duration_sec=2.0)
                return
            self.last_frame = time.monotonic()
            if self.stale:
                self.stale = False
                self.get_logger().info("camera frames are fresh again; observation resumed")
        try:
            rgb = image_to_numpy(color)
            d = image_to_numpy(depth)
            if rgb.ndim != 3:
                raise MessageError(f"colour image has encoding {color.encoding}, expected rgb8/bgr8")
            self._check_aligned(rgb.shape[:2], d.shape[:2])
            rel = self.depth(rgb, d)
        except (MessageError, ValueError) as exc:
            # A new reason is said at once; the same reason again at most every 2 s (rclpy's own
            # throttle is per call site and would swallow a second, different reason).
            now = time.monotonic()
            if str(exc) != self._drop_reason or now - self._drop_said > 2.0:
                self._drop_reason, self._drop_said = str(exc), now
                self.get_logger().error(f"dropping frame: {exc}")
            return
        stamp, frame = color.header.stamp, color.header.frame_id
        self.rgb_pub.publish(numpy_to_image(resize_area(rgb, self.size), "rgb8", stamp, frame))
        self.depth_pub.publish(numpy_to_image(resize_nearest(rel, self.size), "mono8", stamp, frame))


def main(args=None):
    return run_node(CameraDepthNode, args)


if __name__ == "__main__":
    main()
