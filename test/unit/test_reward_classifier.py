"""Success classifier (resrl.reward_classifier): labels, training, held-out evaluation, save/load."""
import numpy as np
import pytest

from resrl.reward_classifier import (ClassifierConfig, EpisodeFrames, SuccessDetector, evaluate, frame_features,
                                     labels_for, load, save, split_episodes, train)


def synthetic_episodes(n: int, seed: int):
    """Cube travels toward the target; successes end with it on the target, failures stop short."""
    rng = np.random.default_rng(seed)
    eps = []
    target = np.array([0.6, 0.1, 0.02])
    for i in range(n):
        success = i % 2 == 0
        start = np.array([0.4, -0.1, 0.02]) + rng.normal(0, 0.01, 3)
        end = target if success else target + np.array([0.0, -0.12, 0.1])
        t = np.linspace(0, 1, 30)[:, None]
        cube = start + t * (end - start) + rng.normal(0, 0.002, (30, 3))
        state = np.concatenate([cube + [0, 0, 0.1], np.zeros((30, 3)), np.ones((30, 1))], 1)
        poses = np.concatenate([cube, np.tile([0, 0, 0, 1], (30, 1)), np.tile([*target, 0, 0, 0, 1], (30, 1))], 1)
        obs = {"state": state, "object_poses": poses, "object_conf": np.ones((30, 2))}
        eps.append(EpisodeFrames(frame_features(obs), success))
    return eps


def test_labels_mark_only_the_end_of_successes():
    ep = synthetic_episodes(2, 0)
    assert labels_for(ep[0], 3).tolist() == [0.0] * 27 + [1.0] * 3
    assert labels_for(ep[1], 3).sum() == 0


def test_trains_and_separates_held_out_episodes(tmp_path):
    cfg = ClassifierConfig(positive_frames=2, epochs=200, consecutive=1)
    train_eps, test_eps = split_episodes(synthetic_episodes(40, 1), 0.3, seed=0)
    assert len(test_eps) == 12 and sum(e.success for e in test_eps) == 6
    model = train(train_eps, cfg)
    result = evaluate(model, test_eps, cfg)
    assert result["episodes"]["precision"] == 1.0 and result["episodes"]["recall"] == 1.0, result
    save(model, cfg, tmp_path / "clf.pt", result)
    loaded, cfg2 = load(tmp_path / "clf.pt")
    np.testing.assert_allclose(loaded.probability(test_eps[0].features), model.probability(test_eps[0].features))
    assert cfg2 == cfg


def test_bad_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="both classes"):
        train([e for e in synthetic_episodes(4, 2) if not e.success], ClassifierConfig())
    with pytest.raises(ValueError, match="object mode"):
        frame_features({"state": np.zeros(7)})
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a resrl success classifier"):
        load(tmp_path / "junk.pt")


def test_detector_needs_consecutive_frames():
    det = SuccessDetector(0.5, consecutive=2)
    assert [det.update(p) for p in (0.9, 0.1, 0.9, 0.9)] == [False, False, False, True]
    det.reset()
    assert not det.update(0.9)
