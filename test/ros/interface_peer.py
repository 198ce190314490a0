"""Peer process for the interface round-trip test: echoes every resrl message type from
/rt/in/<Type> to /rt/out/<Type> and serves every resrl service on /rt/srv/<Type> with a
response filled deterministically from the request."""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from interface_values import MESSAGES, SERVICES, fill  # noqa: E402


def main():
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    keep = []
    for name, cls in MESSAGES.items():
        pub = node.create_publisher(cls, f"/rt/out/{name}", qos)
        keep.append(node.create_subscription(cls, f"/rt/in/{name}", lambda m, pub=pub: pub.publish(m), qos))
    for name, cls in SERVICES.items():
        def handle(req, res, cls=cls):
            return fill(cls.Response(), seed=len(str(req)))
        keep.append(node.create_service(cls, f"/rt/srv/{name}", handle))
    print("peer ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
