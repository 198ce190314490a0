"""Valid bags from writers other than resrl's own load completely (issue 13).

Every bag here holds the same synthetic session (test_bags.Session, known transitions) written
another way: by mcap-ros2-support's writer, with metadata QoS strings that differ from the
file's, as a sqlite3 file whose topic ids are not in metadata order, without embedded message
definitions, split over two files, and with rosbag2 metadata versions 4 to 9. Each must load every
message with no issue and rebuild into the very transitions resrl's own bag gives.
"""
from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rclpy.serialization import serialize_message

from resrl.bags import SESSION_TOPICS, BagWriter, RebuildConfig, read_bag, rebuild, typestore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bags import Session, _buffers  # noqa: E402

# What rosbag2 (Humble .. Jazzy) writes for a reliable, volatile publisher, in the v4-v8 form:
# a YAML string with numeric enums. resrl's writer stores no profile in the file.
OLD_QOS = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n    sec: 2147483647\n"
           "    nsec: 4294967295\n  lifespan:\n    sec: 2147483647\n    nsec: 4294967295\n  liveliness: 1\n"
           "  liveliness_lease_duration:\n    sec: 2147483647\n    nsec: 4294967295\n"
           "  avoid_ros_namespace_conventions: false")


def _items(session: Session):
    """(topic, type, log time, rclpy message) in write order, with Session.write's log times."""
    return [(topic, SESSION_TOPICS[topic], 1_000 * i + msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg)
            for i, (topic, msg) in enumerate(session.stream)]


def _transitions(path):
    online, demos = _buffers()
    rebuild(read_bag(path), online, demos, RebuildConfig())
    return [(ep.meta["episode_id"], ep.action, ep.reward, ep.obs["object_poses"], ep.obs["state"], ep.intervention)
            for buf in (online, demos) for ep in buf.episodes()]


def _assert_same(a, b):
    assert len(a) == len(b) == 5   # online 2, 5; demos 1, 2, 5 (eval episodes are not stored)
    for x, y in zip(a, b):
        assert x[0] == y[0]
        for u, v in zip(x[1:], y[1:]):
            np.testing.assert_array_equal(u, v)


def _assert_complete(path, session: Session):
    data = read_bag(path)
    assert data.issues == [], [str(i) for i in data.issues]
    assert data.count == len(session.stream) and not data.recovered
    return data


@pytest.fixture(scope="module")
def session():
    return Session(seed=4)


@pytest.fixture(scope="module")
def reference(session, tmp_path_factory):
    path = tmp_path_factory.mktemp("ours") / "bag"
    session.write(path).close()
    return _transitions(path)


def _metadata(version: int, storage: str, files, topics, qos: str = ""):
    """metadata.yaml as rosbag2 writes it at ``version`` (4: QoS strings, 5: per-file info,
    6: custom_data, 7: type hash, 8: ros_distro, 9: QoS as YAML lists with named enums)."""
    counts = {}
    for topic, msgtype, log_ns, _ in topics:
        c = counts.setdefault(topic, [msgtype, 0, log_ns, log_ns])
        c[1] += 1
        c[2], c[3] = min(c[2], log_ns), max(c[3], log_ns)
    start = min(c[2] for c in counts.values())
    end = max(c[3] for c in counts.values())
    total = sum(c[1] for c in counts.values())

    def topic_metadata(name, msgtype):
        meta = {"name": name, "type": msgtype, "serialization_format": "cdr"}
        if version >= 9:
            meta["offered_qos_profiles"] = yaml.safe_load(qos.replace(": 3\n", ": keep_last\n")
                                                          .replace("reliability: 1", "reliability: reliable")
                                                          .replace("durability: 2", "durability: volatile")
                                                          .replace("liveliness: 1", "liveliness: automatic")) if qos else []
        else:
            meta["offered_qos_profiles"] = qos
        if version >= 7:
            meta["type_description_hash"] = ""
        return meta

    info = {
        "version": version, "storage_identifier": storage, "relative_file_paths": [f.name for f in files],
        "duration": {"nanoseconds": end - start}, "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": total,
        "topics_with_message_count": [{"topic_metadata": topic_metadata(name, c[0]), "message_count": c[1]}
                                      for name, c in sorted(counts.items(), key=lambda kv: kv[0], reverse=True)],
        "compression_format": "", "compression_mode": "",
    }
    if version >= 5:
        info["files"] = [{"path": f.name, "starting_time": {"nanoseconds_since_epoch": start},
                          "duration": {"nanoseconds": end - start}, "message_count": n} for f, n in files.items()]
    if version >= 6:
        info["custom_data"] = {}
    if version >= 8:
        info["ros_distro"] = "humble"
    return {"rosbag2_bagfile_information": info}


def _write_metadata(folder: Path, meta: dict) -> None:
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


def _mcap_ros2_bag(folder: Path, items) -> Path:
    """An MCAP file from mcap-ros2-support's writer (its own CDR encoder, its own schemas)."""
    from mcap_ros2.writer import Writer
    folder.mkdir(parents=True)
    file = folder / "recorded_0.mcap"
    store = typestore()
    with open(file, "wb") as stream:
        writer = Writer(stream, chunk_size=4096)
        schemas = {}
        for topic, msgtype, log_ns, msg in items:
            if msgtype not in schemas:
                schemas[msgtype] = writer.register_msgdef(msgtype, store.generate_msgdef(msgtype, ros_version=2)[0])
            writer.write_message(topic, schemas[msgtype], msg, log_time=log_ns, publish_time=log_ns)
        writer.finish()
    return file


def test_mcap_ros2_support_writer_bag_loads_completely(session, reference, tmp_path):
    items = _items(session)
    file = _mcap_ros2_bag(tmp_path / "bare", items)
    _assert_complete(tmp_path / "bare", session)          # no metadata.yaml: the file alone
    _assert_same(_transitions(file), reference)
    shutil.copytree(tmp_path / "bare", tmp_path / "with_metadata")   # + what `ros2 bag reindex` would write
    _write_metadata(tmp_path / "with_metadata", _metadata(5, "mcap", {file: len(items)}, items, OLD_QOS))
    _assert_complete(tmp_path / "with_metadata", session)
    _assert_same(_transitions(tmp_path / "with_metadata"), reference)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_metadata_qos_differing_from_the_file_is_no_damage(session, reference, tmp_path, storage):
    from rosbags.rosbag2 import Reader
    items = _items(session)
    session.write(tmp_path / "bag", storage=storage).close()
    file = next((tmp_path / "bag").glob("*.mcap" if storage == "mcap" else "*.db3"))
    _write_metadata(tmp_path / "bag", _metadata(5, storage, {file: len(items)}, items, OLD_QOS))
    with Reader(tmp_path / "bag") as reader:    # the case itself: rosbags matches no connection, says nothing
        assert sum(1 for _ in reader.messages(connections=reader.connections)) < len(items)
    data = _assert_complete(tmp_path / "bag", session)
    assert "rosbags reader gave" in data.read_directly
    _assert_same(_transitions(tmp_path / "bag"), reference)


def _sqlite_bag(folder: Path, items, topic_order) -> Path:
    """A rosbag2 sqlite3 file written with plain SQL (rosbag2's schema), topic ids in ``topic_order``."""
    folder.mkdir(parents=True)
    file = folder / "recorded_0.db3"
    db = sqlite3.connect(file)
    db.executescript("""
        CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
        CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL, metadata TEXT NOT NULL);
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                              data BLOB NOT NULL);
        INSERT INTO schema VALUES (3, 'humble');
    """)
    ids = {}
    for k, topic in enumerate(topic_order):
        ids[topic] = 100 + 7 * k       # sparse ids that follow neither the metadata nor the alphabet
        db.execute("INSERT INTO topics VALUES (?, ?, ?, 'cdr', ?)", (ids[topic], topic, SESSION_TOPICS[topic], OLD_QOS))
    for topic, _, log_ns, msg in items:
        db.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)",
                   (ids[topic], log_ns, serialize_message(msg)))
    db.commit()
    db.close()
    return file


def test_sqlite3_topic_ids_not_in_metadata_order(session, reference, tmp_path):
    items = _items(session)
    first_seen = list(dict.fromkeys(t for t, *_ in items))
    file = _sqlite_bag(tmp_path / "bag", items, topic_order=sorted(first_seen))   # metadata lists them reversed
    _write_metadata(tmp_path / "bag", _metadata(5, "sqlite3", {file: len(items)}, items, OLD_QOS))
    data = _assert_complete(tmp_path / "bag", session)
    assert {t: len(v) for t, v in data.messages.items()} == {t: sum(1 for i in items if i[0] == t) for t in first_seen}
    assert all(data.types[t] == SESSION_TOPICS[t] for t in first_seen)
    _assert_same(_transitions(tmp_path / "bag"), reference)


def test_bag_without_embedded_message_definitions(session, reference, tmp_path):
    """A writer that leaves the schema text empty (common types are in every type store)."""
    from mcap.writer import Writer
    items = _items(session)
    (tmp_path / "bag").mkdir()
    with open(tmp_path / "bag" / "bare_0.mcap", "wb") as stream:
        writer = Writer(stream)
        writer.start(profile="ros2", library="a writer without schemas")
        schemas, channels = {}, {}
        for topic, msgtype, log_ns, msg in items:
            if msgtype not in schemas:
                schemas[msgtype] = writer.register_schema(msgtype, "ros2msg", b"")
            if topic not in channels:
                channels[topic] = writer.register_channel(topic, "cdr", schemas[msgtype])
            writer.add_message(channels[topic], log_time=log_ns, data=serialize_message(msg), publish_time=log_ns)
        writer.finish()
    _assert_complete(tmp_path / "bag", session)
    _assert_same(_transitions(tmp_path / "bag"), reference)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_multi_file_bag(session, reference, tmp_path, storage):
    """A bag split in two files (`ros2 bag record --max-bag-size`): both load, in order."""
    items = _items(session)
    half = len(items) // 2
    (tmp_path / "bag").mkdir()
    suffix = ".mcap" if storage == "mcap" else ".db3"
    files = {}
    for k, part in enumerate((items[:half], items[half:])):
        with BagWriter(tmp_path / f"part{k}", storage) as writer:
            for topic, msgtype, log_ns, msg in part:
                writer.write_raw(topic, msgtype, log_ns, serialize_message(msg))
        target = tmp_path / "bag" / f"bag_{k}{suffix}"
        shutil.move(next((tmp_path / f"part{k}").glob(f"*{suffix}")), target)
        files[target] = len(part)
    _write_metadata(tmp_path / "bag", _metadata(9, storage, files, items))
    data = _assert_complete(tmp_path / "bag", session)
    assert data.read_directly == ""       # rosbags reads split bags itself
    _assert_same(_transitions(tmp_path / "bag"), reference)


@pytest.mark.parametrize("version", [4, 5, 6, 7, 8, 9])
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_metadata_versions_4_to_9(session, reference, tmp_path, version, storage):
    items = _items(session)
    session.write(tmp_path / "bag", storage=storage).close()
    file = next((tmp_path / "bag").glob("*.mcap" if storage == "mcap" else "*.db3"))
    _write_metadata(tmp_path / "bag", _metadata(version, storage, {file: len(items)}, items))
    _assert_complete(tmp_path / "bag", session)
    _assert_same(_transitions(tmp_path / "bag"), reference)


def test_real_damage_is_still_called_damage(session, tmp_path):
    """A valid index over a file whose middle is overwritten: the read names what was lost (a
    damaged chunk, or a message that no longer decodes), and the rest loads."""
    session.write(tmp_path / "bag", flush_every=20).close()
    file = tmp_path / "bag" / "bag.mcap"
    size = file.stat().st_size
    with open(file, "r+b") as f:
        f.seek(size // 3)
        f.write(b"\x00" * 256)
    data = read_bag(tmp_path / "bag")
    assert 0 < data.count < len(session.stream)
    lost = ("corrupted", "cut short", "truncated", "does not deserialize")
    assert any(word in i.what for i in data.issues for word in lost), [str(i) for i in data.issues]
