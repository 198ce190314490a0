"""RViz markers for the arbiter: base, residual and final action arrows and the current lambda."""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

_COLORS = {"base": (0.2, 0.4, 1.0), "residual": (1.0, 0.5, 0.0), "final": (0.1, 0.9, 0.2)}


def _arrow(mid: int, ns: str, start, end, stamp, frame_id: str) -> Marker:
    m = Marker(ns=ns, id=mid, type=Marker.ARROW, action=Marker.ADD)
    m.header.stamp, m.header.frame_id = stamp, frame_id
    m.points = [Point(x=float(start[0]), y=float(start[1]), z=float(start[2])),
                Point(x=float(end[0]), y=float(end[1]), z=float(end[2]))]
    m.scale.x, m.scale.y, m.scale.z = 0.005, 0.01, 0.015
    m.color.r, m.color.g, m.color.b = _COLORS[ns]
    m.color.a = 1.0
    return m


def action_markers(state, base, residual, final, lam: float, stamp, frame_id: str,
                   residual_gain: float = 5.0) -> MarkerArray:
    """Arrows from the EE to the base and final targets, the residual (magnified) and a lambda label."""
    ee = np.asarray(state[:3])
    res_end = np.asarray(base[:3]) + residual_gain * np.asarray(residual[:3])
    text = Marker(ns="lambda", id=3, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, text=f"lambda={lam:.2f}")
    text.header.stamp, text.header.frame_id = stamp, frame_id
    text.pose.position.x, text.pose.position.y, text.pose.position.z = float(ee[0]), float(ee[1]), float(ee[2]) + 0.1
    text.scale.z = 0.03
    text.color.r = text.color.g = text.color.b = text.color.a = 1.0
    return MarkerArray(markers=[
        _arrow(0, "base", ee, base[:3], stamp, frame_id),
        _arrow(1, "residual", base[:3], res_end, stamp, frame_id),
        _arrow(2, "final", ee, final[:3], stamp, frame_id),
        text,
    ])
