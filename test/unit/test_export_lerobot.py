"""LeRobotDataset export: episode selection, the v3.0 layout, and loading the data back."""
import importlib
import json

import numpy as np
import pytest

from resrl.export.lerobot import ExportError, episode_kinds, export_lerobot, hybrid_switch, main, select
from resrl.replay import ReplayBuffer

SIZE = 16
SPEC = {"state": ((7,), "float32"), "base_action": ((7,), "float32"),
        "image": ((SIZE, SIZE, 3), "uint8"), "depth": ((SIZE, SIZE), "uint8")}


def _obs(rng):
    return {"state": rng.normal(size=7).astype(np.float32), "base_action": rng.normal(size=7).astype(np.float32),
            "image": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8),
            "depth": rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)}


def _episode(buf, rng, steps, success, lambdas, interventions=(), kind="train", episode_id=0):
    buf.start_episode(_obs(rng), {"kind": kind, "episode_id": episode_id})
    for t in range(steps):
        last = t == steps - 1
        buf.add_step(rng.normal(size=7), rng.normal(size=7) * 0.01, lambdas[t], float(success and last),
                     _obs(rng), done=last, intervention=t in interventions)
    buf.end_episode(success)


@pytest.fixture
def replay(tmp_path):
    rng = np.random.default_rng(0)
    online = ReplayBuffer(SPEC, 500, tmp_path / "replay" / "online", name="online")
    demos = ReplayBuffer(SPEC, 500, tmp_path / "replay" / "demos", name="demos")
    _episode(online, rng, 5, True, [0.5] * 5, episode_id=1)                          # success
    _episode(online, rng, 4, False, [0.5] * 4, interventions={2}, episode_id=2)      # intervention
    _episode(demos, rng, 4, False, [0.5] * 4, interventions={2}, episode_id=2)       # ... its demos copy
    _episode(online, rng, 6, True, [0, 0, 0, 0.7, 0.7, 0.7], episode_id=3)           # PLD hybrid rollout
    _episode(online, rng, 3, False, [0.5] * 3, episode_id=4)                         # plain failure
    _episode(demos, rng, 3, True, [0.0] * 3, interventions={0, 1, 2}, kind="demo", episode_id=5)
    return tmp_path, online, demos


def test_selection_kinds(replay):
    _, online, _ = replay
    eps = {ep.meta["episode_id"]: ep for ep in online.episodes()}
    assert episode_kinds(eps[1]) == ["success"]
    assert episode_kinds(eps[2]) == ["intervention"]
    assert episode_kinds(eps[3]) == ["success", "hybrid"] and hybrid_switch(eps[3]) == 3
    assert episode_kinds(eps[4]) == []
    assert [e.meta["episode_id"] for e in select(online.episodes(), ["hybrid"])] == [3]
    with pytest.raises(ExportError, match="unknown selection"):
        select(online.episodes(), ["everything"])


def test_export_layout_and_data_load_back(replay):
    import datasets
    import pandas as pd
    tmp_path, online, demos = replay
    out = tmp_path / "dataset"
    assert main(["--replay", str(tmp_path / "replay" / "online"), str(tmp_path / "replay" / "demos"),
                 "--out", str(out), "--task", "put the cube on the target", "--fps", "10"]) == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    # Episode 2 is exported once (its demos copy is skipped), episode 4 (plain failure) not at all.
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 4 and info["fps"] == 10
    assert info["total_frames"] == 5 + 4 + 6 + 3
    for key in ("observation.state", "observation.images.rgb", "observation.images.depth", "action",
                "next.reward", "next.done", "timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in info["features"], key

    data = datasets.load_dataset("parquet", data_files=str(out / "data" / "chunk-000" / "file-000.parquet"),
                                 split="train")
    assert len(data) == info["total_frames"]
    assert data.features["observation.images.rgb"] == datasets.Image()
    episodes = pd.read_parquet(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    tasks = pd.read_parquet(out / "meta" / "tasks.parquet")
    assert list(tasks.index) == ["put the cube on the target"] and tasks.task_index.tolist() == [0]
    assert episodes.dataset_from_index.tolist() == [0, 5, 9, 15] and episodes.dataset_to_index.tolist() == [5, 9, 15, 18]
    by_id = {ep.meta["episode_id"]: ep for ep in online.episodes()}
    by_id[5] = [e for e in demos.episodes() if e.meta["episode_id"] == 5][0]
    assert episodes["resrl/source_episode"].tolist() == [1, 2, 3, 5]
    for row, eid in zip(episodes.itertuples(), episodes["resrl/source_episode"]):
        ep = by_id[eid]
        frames = data.select(range(row.dataset_from_index, row.dataset_to_index))
        np.testing.assert_array_equal(np.asarray(frames["action"], np.float32), ep.action)
        np.testing.assert_array_equal(np.asarray(frames["next.reward"], np.float32), ep.reward)
        np.testing.assert_array_equal(frames["next.done"], ep.done)
        np.testing.assert_array_equal(np.asarray(frames["observation.state"], np.float32), ep.obs["state"][:-1])
        for t, image in enumerate(frames["observation.images.rgb"]):
            np.testing.assert_array_equal(np.asarray(image), ep.obs["image"][t])       # PNG: lossless
        np.testing.assert_array_equal(np.asarray(frames["observation.images.depth"][0])[..., 0], ep.obs["depth"][0])
        # LeRobot's timestamp check: timestamp == frame_index / fps within 1e-4 s
        np.testing.assert_allclose(frames["timestamp"], np.asarray(frames["frame_index"]) / 10, atol=1e-4)
    assert data["index"] == list(range(info["total_frames"]))
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert np.asarray(stats["observation.images.rgb"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [info["total_frames"]] and len(stats["action"]["q50"]) == 7
    with pytest.raises(ExportError, match="not empty"):
        export_lerobot(list(online.episodes()), out, "task")


@pytest.fixture
def lerobot_dataset():
    """lerobot's dataset module (lerobot 0.4.4, installed --no-deps; it imports torchvision)."""
    return importlib.import_module("lerobot.datasets.lerobot_dataset")


def test_loads_in_lerobot(replay, lerobot_dataset):
    """The real check: lerobot's own LeRobotDataset loads the export (requirements-nodeps.txt)."""
    tmp_path, online, _ = replay
    out = tmp_path / "ds"
    info = export_lerobot(select(online.episodes(), ["success"]), out, "pick", fps=10)
    ds = lerobot_dataset.LeRobotDataset("local/resrl", root=out)
    assert len(ds) == info["total_frames"] and ds.meta.total_episodes == 2
    item = ds[0]
    ep = next(online.episodes())
    np.testing.assert_allclose(item["action"].numpy(), ep.action[0])
    assert tuple(item["observation.images.rgb"].shape) == (3, SIZE, SIZE)
