"""rosbag2 data for resrl: the session topic list, a writer, a reader with clear errors, and the
bag -> replay transition rebuild used by offline training (ROS-free apart from message field access).

    from resrl.bags import read_bag, rebuild, RebuildConfig
    data = read_bag("runs/2026-01-01/bag")
    report = rebuild(data, online_buffer, demo_buffer, RebuildConfig(obs_mode="object"))
    for issue in data.issues: print(issue)
"""
from resrl.bags.reader import BagData, BagError, BagIssue, BagMessage, read_bag
from resrl.bags.schema import SESSION_TOPICS, TeleopTopics, required_session_topics, typestore
from resrl.bags.transitions import RebuildConfig, RebuildReport, rebuild
from resrl.bags.writer import STORAGES, BagWriter

__all__ = ["BagData", "BagError", "BagIssue", "BagMessage", "BagWriter", "RebuildConfig", "RebuildReport",
           "SESSION_TOPICS", "STORAGES", "TeleopTopics", "read_bag", "rebuild", "required_session_topics",
           "typestore"]
