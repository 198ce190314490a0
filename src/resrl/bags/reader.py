"""Read rosbag2 bags (MCAP or sqlite3) with the pure-Python ``rosbags`` reader.

Bad input never silently vanishes and never loses the readable part:

* a truncated or corrupted MCAP file (a killed recorder, a bad copy) is scanned record by record
  with the ``mcap`` stream reader; everything before the damage loads and a ``BagIssue`` names
  the file, the byte offset and the time of the last readable message;
* a message that does not deserialize is skipped with an issue naming file, topic and time;
* a topic of a type that is neither in the bag's embedded definitions nor in the type store is
  skipped with an issue naming file, topic, type and time;
* a topic the caller requires but the bag lacks is an issue too (the caller decides whether that
  is fatal: ``BagData.require``).
"""
from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from resrl.bags.schema import typestore


class BagError(RuntimeError):
    """A bag cannot be used at all (not found, no readable message, required topic missing)."""


@dataclass
class BagIssue:
    file: str
    topic: str          # "" when the problem is not tied to one topic
    stamp_ns: int       # time of the problem (or of the last readable message), 0 when unknown
    what: str

    def __str__(self) -> str:
        where = f" topic {self.topic}" if self.topic else ""
        return f"{self.file}:{where} at t={self.stamp_ns / 1e9:.3f}s: {self.what}"


@dataclass
class BagMessage:
    log_ns: int          # receive time as the recorder logged it
    msg: object          # rosbags message object (same field names as the rclpy message)
    seq: int = 0         # position in the file's (log time, write order): arrival order on equal log times


@dataclass
class BagData:
    path: Path
    types: Dict[str, str] = field(default_factory=dict)            # topic -> type
    messages: Dict[str, List[BagMessage]] = field(default_factory=lambda: defaultdict(list))
    issues: List[BagIssue] = field(default_factory=list)
    recovered: bool = False     # read by scanning a damaged file
    count: int = 0              # messages loaded
    read_directly: str = ""     # why the storage files were read without rosbags ("" when they were not)

    def issue(self, topic: str, stamp_ns: int, what: str) -> BagIssue:
        item = BagIssue(str(self.path), topic, int(stamp_ns), what)
        self.issues.append(item)
        return item

    def require(self, topics: Iterable[str]) -> None:
        missing = [t for t in topics if not self.messages.get(t)]
        if missing:
            have = ", ".join(f"{t} ({len(v)})" for t, v in sorted(self.messages.items()) if v) or "none"
            raise BagError(f"{self.path}: required topic(s) {missing} missing or empty; topics present: {have}")

    @property
    def end_ns(self) -> int:
        return max((m[-1].log_ns for m in self.messages.values() if m), default=0)


def read_bag(path: str | Path, topics: Optional[Iterable[str]] = None) -> BagData:
    """All messages of ``topics`` (all topics when None) in log-time order, plus the issues found.

    The ``rosbags`` reader goes first. When it raises, or yields fewer messages than the bag's
    metadata counts while raising nothing (it matches the metadata's connections to the file's
    by QoS profile and type hash, and older rosbag2 versions write those differently in the two
    places), the storage files are read directly (``mcap`` / ``sqlite3``) before anything is
    called damaged: a message counts as lost only when the file itself does not give it.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    wanted = set(topics) if topics is not None else None
    data = BagData(path)
    try:
        expected = _read_rosbags(path, wanted, data)
        reason = "" if data.count >= expected else (f"the rosbags reader gave {data.count} of the {expected} "
                                                     "messages the metadata counts")
    except Exception as exc:   # rosbags raises several types for damaged files and unusual bags
        reason = f"{type(exc).__name__}: {exc}"
    if reason:
        direct = _read_direct(path, wanted, reason)
        if direct is None:
            if not data.count:
                raise BagError(f"{path}: unreadable bag ({reason})")
        elif direct.count >= data.count:
            data = direct
    if not any(data.messages.values()):
        raise BagError(f"{path}: no readable message" + (f" ({data.issues[-1]})" if data.issues else ""))
    return data


def _read_rosbags(path: Path, wanted, data: BagData) -> int:
    """Read through rosbags; returns how many messages of the read topics the metadata counts."""
    from rosbags.rosbag2 import Reader
    folder = path.parent if path.is_file() else path
    store = typestore(fresh=True)      # a bag's embedded types go into a store of its own
    with Reader(folder) as reader:
        connections = []
        for conn in reader.connections:
            if wanted is not None and conn.topic not in wanted:
                continue
            if conn.msgtype not in store.fielddefs:
                types = _embedded_types(conn.msgtype, "ros2msg" if conn.msgdef.format.name == "MSG" else "ros2idl",
                                        conn.msgdef.data)
                if conn.msgtype in types:
                    store.register(types)
            if conn.msgtype not in store.fielddefs:
                data.issue(conn.topic, reader.start_time, f"unknown message type {conn.msgtype} (no definition in "
                                                          "the bag or the type store); topic skipped")
                continue
            data.types[conn.topic] = conn.msgtype
            connections.append(conn)
        deserialize = lenient_deserializer(store)
        undecodable = 0
        for conn, log_ns, raw in reader.messages(connections=connections):
            undecodable += not _add(data, conn.topic, conn.msgtype, log_ns, raw, deserialize)
        return sum(c.msgcount for c in connections) - undecodable


def storage_files(path: Path) -> List[Path]:
    """The storage files of a bag, in the order its metadata lists them (a split bag has several)."""
    path = Path(path)
    if path.is_file():
        return [path]
    listed = []
    try:
        from ruamel.yaml import YAML
        info = YAML(typ="safe").load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        listed = [path / Path(rel).name for rel in info.get("relative_file_paths", [])]
    except Exception:   # no or unreadable metadata: the files in the folder are all there is
        pass
    found = sorted(p for p in path.glob("*") if p.suffix in (".mcap", ".db3"))
    return [p for p in listed if p.is_file()] + [p for p in found if p not in listed]


def _read_direct(path: Path, wanted, reason: str) -> Optional[BagData]:
    """Every message the storage files themselves hold; None when there is no storage file or no
    file opens at all."""
    files = storage_files(path)
    if not files:
        return None
    data = BagData(path, read_directly=reason)
    store = typestore(fresh=True)
    opened = 0
    for file in files:
        if file.suffix == ".db3":
            opened += _read_sqlite(file, wanted, data, store)
        else:
            opened += _scan_mcap(file, wanted, data, store, reason)
    if not opened:
        return None
    for topic in data.messages:
        data.messages[topic].sort(key=lambda m: (m.log_ns, m.seq))
    return data


def _read_sqlite(file: Path, wanted, data: BagData, store) -> bool:
    """A rosbag2 sqlite3 file read with plain SQL: topics are matched by their id in the file."""
    import sqlite3
    deserialize = lenient_deserializer(store)
    try:
        db = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        try:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"topics", "messages"} <= tables:
                return False
            if "message_definitions" in tables:   # metadata version >= 8
                for msgtype, encoding, text in db.execute(
                        "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"):
                    if msgtype not in store.fielddefs:
                        types = _embedded_types(msgtype, encoding, text or "")
                        if msgtype in types:
                            store.register(types)
            topics = {}
            for topic_id, name, msgtype in db.execute("SELECT id, name, type FROM topics"):
                if wanted is not None and name not in wanted:
                    continue
                if msgtype not in store.fielddefs:
                    data.issue(name, 0, f"unknown message type {msgtype} (no definition in the bag or the type "
                                        "store); topic skipped")
                    continue
                topics[topic_id] = (name, msgtype)
                data.types[name] = msgtype
        except sqlite3.Error:
            return False
        read = 0
        try:
            for topic_id, log_ns, raw in db.execute(
                    "SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp, id"):
                if topic_id in topics:
                    _add(data, *topics[topic_id], log_ns, raw, deserialize)
                    read += 1
        except sqlite3.Error as exc:
            data.issue("", data.end_ns, f"{file.name}: database damaged after {read} messages "
                                        f"({type(exc).__name__}: {exc}); the messages before it loaded")
        return True
    finally:
        db.close()


MAX_TRAILING_BYTES = 16


def lenient_deserializer(store):
    """``store.deserialize_cdr`` that accepts trailing bytes after a complete message.

    rclpy / Fast CDR on Kilted hand out some messages (e.g. a JointState with empty arrays) with a
    few bytes beyond the last field; ``ros2 bag record`` stores them as they are. rosbags rejects
    those as a size mismatch although every field decoded; the fields are kept here.
    """
    from rosbags.serde import SerdeError

    def deserialize(raw, typename):
        try:
            return store.deserialize_cdr(raw, typename)
        except SerdeError as exc:
            if "size mismatch" not in str(exc):
                raise
            msgdef = store.get_msgdef(typename)
            func = msgdef.deserialize_cdr_le if bytes(raw[1:2]) == b"\x01" else msgdef.deserialize_cdr_be
            message, pos = func(raw[4:], 0, msgdef.cls, store)
            if len(raw) - 4 - pos > MAX_TRAILING_BYTES:
                raise
            return message
    return deserialize


def _add(data: BagData, topic: str, msgtype: str, log_ns: int, raw, deserialize) -> bool:
    try:
        msg = deserialize(raw, msgtype)
    except Exception as exc:
        data.issue(topic, log_ns, f"message of type {msgtype} does not deserialize ({type(exc).__name__}: {exc}); "
                                  "skipped")
        return False
    data.count += 1
    data.messages[topic].append(BagMessage(int(log_ns), msg, data.count))
    return True


def _scan_mcap(file: Path, wanted, data: BagData, store, reason: str) -> bool:
    """Read an MCAP file with the ``mcap`` library: chunk by chunk from its summary when it has one
    (a damaged chunk is skipped and named), else record by record up to the damage (a killed
    recorder leaves no summary). Channels are matched by their id in the file. False when the
    file cannot be opened."""
    from mcap.exceptions import EndOfFile
    from mcap.reader import SeekingReader
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    deserialize = lenient_deserializer(store)
    schemas, channels, unknown = {}, {}, set()

    def handle(record) -> None:
        if isinstance(record, Schema):
            schemas[record.id] = record
        elif isinstance(record, Channel):
            channels[record.id] = record
        elif isinstance(record, Message):
            channel = channels.get(record.channel_id)
            if channel is None or (wanted is not None and channel.topic not in wanted):
                return
            schema = schemas.get(channel.schema_id)
            msgtype = schema.name if schema else ""
            if msgtype not in store.fielddefs and schema is not None:
                types = _embedded_types(schema.name, schema.encoding, schema.data.decode(errors="replace"))
                if msgtype in types:
                    store.register(types)
            if msgtype not in store.fielddefs:
                if channel.topic not in unknown:
                    unknown.add(channel.topic)
                    data.issue(channel.topic, record.log_time,
                               f"unknown message type {msgtype or '(no schema)'}; topic skipped")
                return
            data.types[channel.topic] = msgtype
            _add(data, channel.topic, msgtype, record.log_time, record.data, deserialize)

    try:
        stream = open(file, "rb")
    except OSError:
        return False
    with stream:
        try:
            summary = SeekingReader(stream).get_summary()
        except Exception:
            summary = None
        if summary is not None and summary.chunk_indexes:
            schemas.update(summary.schemas)
            channels.update(summary.channels)
            for index in summary.chunk_indexes:
                stream.seek(index.chunk_start_offset)
                chunk = io.BytesIO(stream.read(index.chunk_length))
                try:
                    for record in StreamReader(chunk, skip_magic=True).records:
                        handle(record)
                except EndOfFile:
                    if chunk.tell() < index.chunk_length:
                        data.recovered = True
                        data.issue("", index.message_start_time, f"{file.name}: chunk at byte "
                                   f"{index.chunk_start_offset} is cut short; its messages are lost, the rest loaded")
                except Exception as exc:
                    data.recovered = True
                    data.issue("", index.message_start_time,
                               f"{file.name}: chunk at byte {index.chunk_start_offset} with messages from "
                               f"t={index.message_start_time / 1e9:.3f}s to t={index.message_end_time / 1e9:.3f}s "
                               f"is corrupted ({type(exc).__name__}: {exc}); its messages are lost, the rest loaded")
        else:
            stream.seek(0)
            try:
                for record in StreamReader(stream, skip_magic=False).records:
                    handle(record)
                if summary is None:
                    data.recovered = True
                    data.issue("", data.end_ns, f"{file.name}: MCAP file has no summary, recovered by scanning "
                                                f"({reason})")
            except Exception as exc:
                data.recovered = True
                data.issue("", data.end_ns, f"{file.name}: file truncated or corrupted at byte {stream.tell()} "
                                            f"({type(exc).__name__}: {exc}); loaded the "
                                            f"{sum(map(len, data.messages.values()))} messages before it")
    return True


def _embedded_types(name: str, encoding: str, text: str) -> dict:
    """Types from an embedded ros2msg definition (main definition + '====' separated dependencies)."""
    from rosbags.typesys import get_types_from_msg
    if encoding != "ros2msg" or not text.strip():
        return {}
    types = {}
    try:
        parts = text.split("=" * 80 + "\n")
        types.update(get_types_from_msg(parts[0], name))
        for part in parts[1:]:
            header, _, body = part.partition("\n")
            if header.startswith("MSG: "):
                dep = header[5:].strip()
                types.update(get_types_from_msg(body, dep if "/msg/" in dep else dep.replace("/", "/msg/")))
    except Exception:
        return {}
    return types
