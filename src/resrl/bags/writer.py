"""Write rosbag2 bags (MCAP by default, sqlite3 selectable) with the ``rosbags`` writer.

Messages go in as serialized CDR (what an rclpy ``raw=True`` subscription hands over, and what
rosbag2 stores), so recording costs no deserialisation. Message definitions (resrl's own
included) are embedded from the type store, so Foxglove and ``ros2 bag`` read the bag without
the resrl package.

Crash safety: ``flush()`` closes the pending MCAP chunk (or commits the sqlite3 transaction),
fsyncs, and rewrites ``metadata.yaml`` for what is on disk so far. A session killed between
flushes loses at most the messages since the last flush; the MCAP file then has no summary
section, which ``resrl.bags.reader`` recovers by scanning (``ros2 bag reindex`` does the same
for the ROS tools).
"""
from __future__ import annotations

import os
from io import StringIO
from pathlib import Path
from typing import Dict, Optional, Tuple

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import dump_qos_v9
from ruamel.yaml import YAML

from resrl.bags.schema import typestore

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
BAG_VERSION = 9   # rosbag2 metadata version written by Jazzy / Kilted


class BagWriter:
    """Create the bag folder ``path`` (must not exist) and append messages to it."""

    def __init__(self, path: str | Path, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"bag storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        self.storage = storage
        self.store = typestore()
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: Dict[Tuple[str, str], object] = {}
        self.count = 0
        self.closed = False

    def connection(self, topic: str, msgtype: str):
        key = (topic, msgtype)
        conn = self._connections.get(key)
        if conn is None:
            try:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.store)
            except KeyError as exc:
                raise ValueError(f"{self.path}: topic {topic}: unknown message type {msgtype}") from exc
            self._connections[key] = conn
        return conn

    def write_raw(self, topic: str, msgtype: str, stamp_ns: int, cdr: bytes) -> None:
        """Append one serialized message; ``stamp_ns`` is the receive (log) time."""
        self._writer.write(self.connection(topic, msgtype), int(stamp_ns), cdr)
        self.count += 1

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg) -> None:
        """Serialize a rosbags message object (``typestore().types[...]``) and append it."""
        self.write_raw(topic, msgtype, stamp_ns, bytes(self.store.serialize_cdr(msg, msgtype)))

    def flush(self) -> None:
        """Make everything written so far durable and readable (see the module docstring)."""
        storage = self._writer.storage
        if storage is None:
            return
        if self.storage == "mcap":
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
        else:
            storage.conn.commit()
        self._write_interim_metadata()

    def _write_interim_metadata(self) -> None:
        """metadata.yaml as rosbag2 writes it, for the messages flushed so far (close() rewrites it)."""
        w = self._writer
        start = w.min_timestamp if w.counts and any(w.counts.values()) else 0
        duration = max(0, w.max_timestamp - w.min_timestamp) if start else 0
        count = sum(w.counts.values())
        name = w.storage.path.name
        info = {
            "version": BAG_VERSION, "storage_identifier": self.storage, "relative_file_paths": [name],
            "duration": {"nanoseconds": duration}, "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": count,
            "topics_with_message_count": [
                {"topic_metadata": {"name": c.topic, "type": c.msgtype,
                                    "serialization_format": c.ext.serialization_format,
                                    "offered_qos_profiles": dump_qos_v9(c.ext.offered_qos_profiles),
                                    "type_description_hash": c.digest},
                 "message_count": w.counts[c.id]} for c in w.connections],
            "compression_format": "", "compression_mode": "",
            "files": [{"path": name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": count}],
            "custom_data": None, "ros_distro": "rosbags",
        }
        yaml = YAML(typ="safe")
        yaml.default_flow_style = False
        text = StringIO()
        yaml.dump({"rosbag2_bagfile_information": info}, text)
        tmp = self.path / "metadata.yaml.tmp"
        tmp.write_text(text.getvalue())
        os.replace(tmp, self.path / "metadata.yaml")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def bag_file(path: Path) -> Optional[Path]:
    """The storage file inside a bag folder (or ``path`` itself when it is a file)."""
    path = Path(path)
    if path.is_file():
        return path
    files = sorted(p for p in path.glob("*") if p.suffix in (".mcap", ".db3"))
    return files[0] if files else None
