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
from resrl.bags.writer import bag_file


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
    """All messages of ``topics`` (all topics when None) in log-time order, plus the issues found."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    wanted = set(topics) if topics is not None else None
    data = BagData(path)
    storage = bag_file(path)
    try:
        _read_rosbags(path, wanted, data)
    except Exception as exc:   # rosbags raises several types for damaged files
        if storage is None or storage.suffix != ".mcap":
            raise BagError(f"{path}: unreadable bag ({type(exc).__name__}: {exc})") from exc
        data.messages.clear()   # the scan reads them again, in file order
        data.issues.clear()
        data.count = 0
        data.recovered = True
        _scan_mcap(storage, wanted, data, reason=f"{type(exc).__name__}: {exc}")
    if not any(data.messages.values()):
        raise BagError(f"{path}: no readable message" + (f" ({data.issues[-1]})" if data.issues else ""))
    return data


def _read_rosbags(path: Path, wanted, data: BagData) -> None:
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
        for conn, log_ns, raw in reader.messages(connections=connections):
            _add(data, conn.topic, conn.msgtype, log_ns, raw, deserialize)
        for conn in connections:   # damage inside the file that the index did not notice
            got = len(data.messages.get(conn.topic, ()))
            expected = sum(c.msgcount for c in connections if c.topic == conn.topic)
            if got < expected and not any(i.topic == conn.topic for i in data.issues):
                last = data.messages[conn.topic][-1].log_ns if got else reader.start_time
                data.issue(conn.topic, last, f"{expected - got} of {expected} messages unreadable "
                                             f"(file damaged); {got} loaded")


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


def _add(data: BagData, topic: str, msgtype: str, log_ns: int, raw, deserialize) -> None:
    try:
        msg = deserialize(raw, msgtype)
    except Exception as exc:
        data.issue(topic, log_ns, f"message of type {msgtype} does not deserialize ({type(exc).__name__}: {exc}); "
                                  "skipped")
        return
    data.count += 1
    data.messages[topic].append(BagMessage(int(log_ns), msg, data.count))


def _scan_mcap(file: Path, wanted, data: BagData, reason: str) -> None:
    """Read a damaged MCAP file: chunk by chunk from its summary when it has one (a damaged chunk
    is skipped), else sequentially up to the damage (a truncated file has no summary)."""
    from mcap.reader import SeekingReader
    from mcap.records import Channel, Message, Schema
    from mcap.exceptions import EndOfFile
    from mcap.stream_reader import StreamReader

    store = typestore(fresh=True)
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

    with open(file, "rb") as stream:
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
                        data.issue("", index.message_start_time, f"chunk at byte {index.chunk_start_offset} is "
                                                                 "cut short; its messages are lost, the rest loaded")
                except Exception as exc:
                    data.issue("", index.message_start_time,
                               f"chunk at byte {index.chunk_start_offset} with messages from "
                               f"t={index.message_start_time / 1e9:.3f}s to t={index.message_end_time / 1e9:.3f}s "
                               f"is corrupted ({type(exc).__name__}: {exc}); its messages are lost, the rest loaded")
        else:
            stream.seek(0)
            try:
                for record in StreamReader(stream, skip_magic=False).records:
                    handle(record)
                data.issue("", data.end_ns, f"MCAP file has no summary, recovered by scanning ({reason})")
            except Exception as exc:
                data.issue("", data.end_ns, f"file truncated or corrupted at byte {stream.tell()} "
                                            f"({type(exc).__name__}: {exc}); loaded the "
                                            f"{sum(map(len, data.messages.values()))} messages before it")
    for topic in data.messages:
        data.messages[topic].sort(key=lambda m: (m.log_ns, m.seq))


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
