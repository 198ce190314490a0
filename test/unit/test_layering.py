"""Import layering, read from the source (every import statement, function-local ones too):
the VLA layer has no import cycle and imports no simulator, node or ROS code; export/ and the
offline trainer import no node module. A static check: a lazy import is still an edge."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """resrl module -> the modules it imports (resrl ones resolved to modules, others by top name)."""
    files = {_module_name(p): p for p in (SRC / "resrl").rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".")[: len(mod.split(".")) - node.level + (1 if is_pkg else 0)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                deps.add(target)
                deps.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in files)
        graph[mod] = {_resolve(d, files) for d in deps}
    return graph


def _resolve(name: str, files) -> str:
    """A resrl import -> the module that defines it (``resrl.vla.base.VLAError`` -> ``resrl.vla.base``);
    anything else -> its top-level package (``scipy.spatial`` -> ``scipy``)."""
    if not name.startswith("resrl"):
        return name.split(".")[0]
    while name not in files and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def reaches(graph, start: str, goal: str) -> bool:
    seen, todo = set(), [d for d in graph.get(start, ()) if d != start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


GRAPH = import_graph()
VLA = sorted(m for m in GRAPH if m.startswith("resrl.vla"))


def test_graph_is_read():
    assert {"resrl.vla.base", "resrl.vla.backends", "resrl.vla.openpi_backend"} <= set(VLA)
    assert "resrl.vla.base" in GRAPH["resrl.vla.openpi_backend"]


@pytest.mark.parametrize("module", VLA)
def test_vla_module_is_in_no_import_cycle(module):
    assert not reaches(GRAPH, module, module)


@pytest.mark.parametrize("module", VLA)
def test_vla_imports_no_sim_node_or_ros_code(module):
    bad = {d for d in GRAPH[module] if d.startswith(("resrl.sim", "resrl.nodes", "resrl.ros")) or d == "rclpy"}
    assert not bad


def test_vla_base_imports_nothing_of_resrl():
    assert not {d for d in GRAPH["resrl.vla.base"] if d.startswith("resrl")}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("resrl.export")) +
                         ["resrl.offline_train", "resrl.models.config"])
def test_export_and_offline_training_import_no_node_module(module):
    assert not {d for d in GRAPH[module] if d.startswith(("resrl.nodes", "resrl.ros")) or d == "rclpy"}


# --------------------------------------------------------------------------------------------
# the backend registry's typed configs
# --------------------------------------------------------------------------------------------
def test_backend_configs_are_typed_and_checked():
    from resrl.vla.base import BACKENDS, OpenPIConfig, VLAError, backend_config

    node_params = dict(task="pick_lift", horizon=8, replay_path="", host="10.0.0.2", port=9000, api_key="",
                       prompt="pick", action_space="eef_absolute", kinematics="franka", connect_timeout_s=1.0,
                       timeout_s=2.0, checkpoint_dir="", device="cpu")   # all the chunk node declares
    cfg = backend_config("openpi", node_params)
    assert cfg == OpenPIConfig(host="10.0.0.2", port=9000, horizon=8, prompt="pick", connect_timeout_s=1.0,
                               timeout_s=2.0)
    assert backend_config("sim_scripted", node_params).task == "pick_lift"
    with pytest.raises(VLAError, match="unknown parameters"):
        backend_config("openpi", {"hots": "x"})
    with pytest.raises(VLAError, match="unknown VLA backend"):
        backend_config("octo", {})
    with pytest.raises(VLAError, match="port"):
        backend_config("openpi", {"port": 0})
    with pytest.raises(VLAError, match="horizon"):
        backend_config("lerobot", {"horizon": 0})
    with pytest.raises(VLAError, match="replay_path"):
        backend_config("replay", node_params)
    assert set(BACKENDS) == {"sim_scripted", "replay", "openpi", "lerobot"}


def test_make_backend_builds_replay_and_sim_stand_in(tmp_path):
    from resrl.vla.backends import make_backend

    chunks = np.arange(2 * 4 * 7, dtype=np.float32).reshape(2, 4, 7)
    np.savez(tmp_path / "c.npz", chunks=chunks)
    replay = make_backend("replay", replay_path=str(tmp_path / "c.npz"), horizon=4)
    assert np.array_equal(replay.infer({}), chunks[0]) and np.array_equal(replay.infer({}), chunks[1])
    sim = make_backend("sim_scripted", task="pick_lift", horizon=8)
    assert sim.name == "sim_scripted" and sim.policy.chunk_size == 8
