"""QoS profiles: sensor streams best-effort like the real drivers; weights and events reliable."""
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

SENSOR = qos_profile_sensor_data
# Control-loop messages: reliable, shallow (a stale command is worse than a dropped one).
CONTROL = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Episode events and interventions must not be lost.
EVENTS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# Latest weights are latched so a node that (re)starts late still gets them.
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)

# Lockstep sim: reliable, and deep enough that a reader busy for a few seconds (the learner while
# it trains) loses nothing: a reliable KEEP_LAST writer drops unacknowledged samples past depth.
RELIABLE_SENSOR = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# The per-step command / gate-state stream: every CommandedAction is a replay transition, so the
# recording side must not lose one while it lags (same reasoning as RELIABLE_SENSOR).
RECORDED = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def sensor(node) -> QoSProfile:
    """Sensor-stream QoS for this node: best effort like the real drivers, or reliable when the
    node's ``reliable_sensors`` parameter is set (lockstep simulation: a dropped observation part
    would stall the loop until the robot re-sends it)."""
    if not node.has_parameter("reliable_sensors"):
        node.declare_parameter("reliable_sensors", False)
    return RELIABLE_SENSOR if node.get_parameter("reliable_sensors").value else SENSOR
