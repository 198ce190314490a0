"""benchmarks/suite.py end to end on a tiny budget: paired runs from one warm-up, summary shape."""
import importlib.util
import json
from pathlib import Path

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "suite.py"


def test_paired_runs_and_summary_shape(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("suite", SUITE)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    monkeypatch.setattr(suite, "OUT", tmp_path)
    monkeypatch.setattr(suite, "EVAL_EPISODES", 2)
    monkeypatch.setattr(suite, "BASE_OVERRIDES", {
        "session": {"num_demos": 2, "eval_episodes": 2},
        "learner": {"batch_size": 16, "warmup_steps": 3, "learning_starts": 16}})
    suite.run_paired("pick_place", 0, ["static-1", "vgm"], max_env_steps=60, eval_every=1,
                     out_dir=tmp_path / "runs" / "online" / "pick_place", command="test",
                     warm_arms=("base_only", "static-1", "vgm-paper", "vgm"))
    summary = suite.summarize()
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    task = summary["tasks"]["pick_place"]
    assert task["base_success"] == 0.0
    for arm in ("static-1", "vgm"):
        a = task["arms"][arm]
        assert a["seeds"] == 1 and a["solved"] in (0, 1) and 0.0 <= a["final_success"] <= 1.0
        assert set(a) >= {"seeds", "solved", "median_steps_to_20of20", "warmup_only_success", "final_success",
                          "mean_lambda"}
    assert task["arms"]["vgm-paper"]["warmup_only_success"] is not None and task["arms"]["vgm-paper"]["seeds"] == 0
    assert (tmp_path / "summary.md").read_text().startswith("#### pick_place")
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
