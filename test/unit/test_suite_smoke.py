"""benchmarks/suite.py end to end on a tiny budget: paired runs from one warm-up, summary shape."""
import importlib.util
import json
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "suite.py"
TINY_LEARNER = {"batch_size": 16, "warmup_steps": 3, "learning_starts": 16}


@pytest.fixture
def suite(tmp_path, monkeypatch):
    """benchmarks/suite.py writing under tmp_path, 2-episode evaluation blocks, a tiny learner."""
    spec = importlib.util.spec_from_file_location("suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path)
    monkeypatch.setattr(module, "EVAL_EPISODES", 2)
    monkeypatch.setattr(module, "BASE_OVERRIDES", {"session": {"eval_episodes": 2}, "learner": dict(TINY_LEARNER)})
    return module


def test_paired_runs_and_summary_shape(tmp_path, suite):
    suite.BASE_OVERRIDES["session"]["num_demos"] = 2
    suite.run_paired("pick_place", 0, ["static-1", "vgm-takeover"], max_env_steps=60, eval_every=1,
                     out_dir=tmp_path / "runs" / "online" / "pick_place", command="test",
                     warm_arms=("base_only", "static-1", "vgm-paper", "vgm"))
    summary = suite.summarize()
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    task = summary["tasks"]["pick_place"]
    assert task["base_success"] == 0.0
    for arm in ("static-1", "vgm-takeover"):
        a = task["arms"][arm]
        assert a["seeds"] == 1 and a["solved"] in (0, 1) and 0.0 <= a["final_success"] <= 1.0
        assert set(a) >= {"seeds", "solved", "median_steps_to_20of20", "warmup_only_success", "final_success",
                          "mean_lambda"}
    assert task["arms"]["vgm-paper"]["warmup_only_success"] is not None and task["arms"]["vgm-paper"]["seeds"] == 0
    assert (tmp_path / "summary.md").read_text().startswith("#### pick_place")
    assert (tmp_path / "learning_curves.png").stat().st_size > 0


def test_demo_starved_variant_and_arms_added_to_a_stored_warmup(tmp_path, suite):
    cfg = suite._cfg("pick_place_demos1", "vgm-amplify", 0)
    assert (cfg.task, cfg.session["num_demos"]) == ("pick_place", 1)
    assert cfg.vgm["lambda_max"] == 2.0 and cfg.vgm["group_lambda_max"]["gripper"] == 1.0
    assert suite._cfg("pick_place", "vgm", 0).session.get("num_demos") is None   # not a variant: the YAML's 20
    helped = suite._cfg("pick_place", "vgm-escape-amplify-takeover", 0)   # an arm plus the scripted operator
    assert helped.takeover == suite.TAKEOVER and helped.vgm == suite._cfg("pick_place", "vgm-escape-amplify", 0).vgm
    assert suite._cfg("pick_place", "vgm", 0).takeover == {}
    both = suite._cfg("pick_place_stagnation_demos3@v_target=mc;cql_alpha=0.5", "static-1", 0)
    assert (both.task, both.session["num_demos"], both.algo) == \
        ("pick_place_stagnation", 3, {"v_target": "mc", "cql_alpha": 0.5})
    with pytest.raises(ValueError, match="key=value"):
        suite._cfg("pick_place_stagnation@v_target", "static-1", 0)
    out = tmp_path / "runs" / "warmup" / "pick_place_demos1" / "seed0.json"
    first = suite.run_warmup("pick_place_demos1", 0, ["static-1"], out, command="first")
    assert list(first["arms"]) == ["static-1"]
    # Arms added later: the same warm-up is rebuilt, static-1 is played again on it and must repeat
    # episode for episode (the new arms are only comparable if it does); nothing stored is lost.
    second = suite.run_warmup("pick_place_demos1", 0, ["static-1", "static-1.5", "vgm-amplify"], out, command="second")
    stored = json.loads(out.read_text())
    assert stored == second and stored["command"] == "first"
    assert set(stored["arms"]) == {"static-1", "static-1.5", "vgm-amplify"}
    assert stored["arms"]["static-1"] == first["arms"]["static-1"]
    assert stored["static1_recheck"] == [{"successes": first["arms"]["static-1"]["successes"], "same_episodes": True}]
    assert stored["added"][0]["command"] == "second" and stored["added"][0]["arms"] == ["static-1.5", "vgm-amplify"]
    assert all(e["mean_lambda"] == 1.5 for e in stored["arms"]["static-1.5"]["episodes"])


def test_configure_applies_the_arms_exploration_schedule(suite):
    """A paired arm runs on a copy of the shared warm-up: what the arm sets must reach that copy."""
    from resrl.sim.inprocess import InProcessSession
    sess = InProcessSession(suite._cfg("pick_place", "static-1", 0), log=lambda _: None)
    assert sess.noise_free_every == 0
    suite._configure(sess, "pick_place", "vgm-escape-amplify-noise-free3", 0)
    assert sess.noise_free_every == 3 and sess.cfg.mode == "vgm"
    suite._configure(sess, "pick_place", "static-1", 0)
    assert sess.noise_free_every == 0 and sess.cfg.mode == "static"
