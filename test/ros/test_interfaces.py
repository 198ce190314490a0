"""Every resrl message and service round-trips between two OS processes over Fast DDS."""
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from interface_values import MESSAGES, SERVICES, fill
from rosutil import spawn_python, wait_for

HERE = Path(__file__).parent
EXPECTED_MESSAGES = {"ActionChunk", "ResidualAction", "GateState", "CommandedAction", "EpisodeEvent",
                     "Intervention", "TrackedObjectPose", "TrackedObjects", "PolicyWeights"}
EXPECTED_SERVICES = {"ResetEpisode", "SaveCheckpoint", "LoadCheckpoint", "SetArbiterMode"}


@pytest.fixture(scope="module")
def ros_pair():
    peer = spawn_python(HERE / "interface_peer.py")
    rclpy.init()
    node = rclpy.create_node("interface_tester")
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()
        peer.terminate()
        peer.wait(10)


def test_all_interfaces_are_generated():
    assert EXPECTED_MESSAGES <= set(MESSAGES)
    assert EXPECTED_SERVICES <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(EXPECTED_MESSAGES))
def test_message_round_trip(ros_pair, name):
    node, cls = ros_pair, MESSAGES[name]
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received = []
    sub = node.create_subscription(cls, f"/rt/out/{name}", received.append, qos)
    pub = node.create_publisher(cls, f"/rt/in/{name}", qos)
    sent = fill(cls(), seed=len(name))
    assert sent != cls(), "test values must differ from the defaults"
    assert wait_for(lambda: pub.get_subscription_count() > 0 and sub.get_publisher_count() > 0, 20)
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        pub.publish(sent)
        rclpy.spin_once(node, timeout_sec=0.2)
    node.destroy_subscription(sub)
    node.destroy_publisher(pub)
    assert received, f"{name} did not come back from the peer process"
    assert received[0] == sent


@pytest.mark.parametrize("name", sorted(EXPECTED_SERVICES))
def test_service_round_trip(ros_pair, name):
    node, cls = ros_pair, SERVICES[name]
    client = node.create_client(cls, f"/rt/srv/{name}")
    assert client.wait_for_service(timeout_sec=20)
    request = fill(cls.Request(), seed=3)
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=10)
    assert future.done()
    assert future.result() == fill(cls.Response(), seed=len(str(request)))
    node.destroy_client(client)
