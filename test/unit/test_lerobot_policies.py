"""The LeRobot backend on real LeRobot policies: a tiny ACT and a tiny Diffusion Policy trained a few
steps here, saved as lerobot-train saves them (config.json + model.safetensors + processors), loaded
by resrl.vla.lerobot_backend; resrl's observation mapped to their input features, their chunks back
in resrl's action space; and the load / feature errors."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lerobot_tiny import ACTION_MEAN, ACTION_STD, save_tiny_policy  # noqa: E402

from resrl.vla.backends import VLAError, make_backend  # noqa: E402


def sim_obs(num_objects=2, image=False):
    rng = np.random.default_rng(0)
    obs = {"state": np.array([0.45, 0.0, 0.2, np.pi, 0.0, 0.0, 1.0], np.float32),
           "object_poses": rng.normal(size=7 * num_objects).astype(np.float32)}
    if image:
        obs["image"] = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return obs


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("lerobot")
    out = {}
    for kind in ("act", "diffusion"):
        out[kind], losses = save_tiny_policy(kind, root / kind, env_dim=14, steps=3)
        assert all(np.isfinite(losses)), losses
    return out


@pytest.mark.parametrize("kind, rows", [("act", 10), ("diffusion", 4)])
def test_trained_policy_loads_and_returns_a_chunk_in_resrls_action_space(checkpoints, kind, rows):
    backend = make_backend("lerobot", checkpoint_dir=str(checkpoints[kind]), horizon=16, prompt="pick")
    assert backend.kind == kind and backend.num_objects == 2
    backend.reset(0)
    chunk = backend.infer(sim_obs())
    # ACT: chunk_size rows; Diffusion Policy: n_action_steps rows of its horizon
    assert chunk.shape == (rows, 7) and chunk.dtype == np.float32
    # the saved postprocessor un-normalised the output with the training statistics: rows sit
    # around the action mean, not around 0 (a normalised output would be ~N(0, 1))
    assert np.all(np.abs(chunk - ACTION_MEAN) < 10 * ACTION_STD), chunk
    # horizon cuts a longer chunk; the policy's own queue state does not leak between calls
    short = make_backend("lerobot", checkpoint_dir=str(checkpoints[kind]), horizon=3)
    assert short.infer(sim_obs()).shape == (3, 7)
    assert backend.infer(sim_obs()).shape == (rows, 7)


def test_act_with_a_camera_reads_the_exterior_image(tmp_path):
    path, _ = save_tiny_policy("act", tmp_path / "act_rgb", env_dim=0, image_shape=(3, 24, 32), steps=1)
    backend = make_backend("lerobot", checkpoint_dir=str(path), horizon=8)
    assert backend.num_objects == 0
    batch = backend._batch(sim_obs(image=True))
    assert tuple(batch["observation.images.rgb"].shape) == (1, 3, 24, 32)
    assert 0.0 <= float(batch["observation.images.rgb"].min()) and float(batch["observation.images.rgb"].max()) <= 1.0
    assert backend.infer(sim_obs(image=True)).shape == (8, 7)
    with pytest.raises(VLAError, match="no image has arrived"):
        backend.infer(sim_obs())


def test_smolvla_with_a_local_vlm_loads_and_returns_a_chunk(tmp_path):
    """SmolVLA builds its VLM from vlm_model_name: a local SmolVLM-shaped directory works offline;
    vla.vlm_dir points a checkpoint that names a hub repo at a local copy; neither is a clear error."""
    path, losses = save_tiny_policy("smolvla", tmp_path / "smolvla", env_dim=0, image_shape=(3, 32, 32), steps=2)
    assert all(np.isfinite(losses)), losses
    backend = make_backend("lerobot", checkpoint_dir=str(path), horizon=16, prompt="put the cube on the target")
    assert backend.kind == "smolvla" and backend.num_objects == 0
    backend.reset(0)
    chunk = backend.infer(sim_obs(image=True))
    assert chunk.shape == (10, 7) and chunk.dtype == np.float32 and np.all(np.isfinite(chunk))
    # un-normalised with the saved statistics: around the action mean (flow matching from noise
    # with 2 integration steps is noisier than ACT, hence the wider band)
    assert np.all(np.abs(chunk - ACTION_MEAN) < 50 * ACTION_STD), chunk
    with pytest.raises(VLAError, match="no image has arrived"):
        backend.infer(sim_obs())
    hub_name = _copy(path, tmp_path / "hub_name", vlm_model_name="HuggingFaceTB/SmolVLM2-500M-Video-Instruct")
    with pytest.raises(VLAError, match="neither a local directory nor in the Hugging Face cache"):
        make_backend("lerobot", checkpoint_dir=str(hub_name), horizon=16)
    vlm = Path(json.loads((path / "config.json").read_text())["vlm_model_name"])
    moved = tmp_path / "vlm_copy"
    shutil.copytree(vlm, moved)
    shutil.rmtree(vlm)   # the tokenizer the saved preprocessor names is gone too: vlm_dir replaces it
    local = make_backend("lerobot", checkpoint_dir=str(hub_name), horizon=4, vlm_dir=str(moved))
    assert local.infer(sim_obs(image=True)).shape == (4, 7)


def test_runtime_observation_errors(checkpoints):
    backend = make_backend("lerobot", checkpoint_dir=str(checkpoints["act"]), horizon=16)
    obs = sim_obs()
    del obs["object_poses"]
    with pytest.raises(VLAError, match="no object poses have arrived"):
        backend.infer(obs)
    with pytest.raises(VLAError, match=r"7 values \(1 objects\), policy needs 14"):
        backend.infer(sim_obs(num_objects=1))
    obs = sim_obs()
    obs["state"] = obs["state"][:6]
    with pytest.raises(VLAError, match="state has shape"):
        backend.infer(obs)


def _copy(src: Path, dst: Path, **config_changes) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    for key, value in config_changes.items():
        cfg[key] = value
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_load_errors_say_what_is_wrong(checkpoints, tmp_path):
    with pytest.raises(VLAError, match="does not exist"):
        make_backend("lerobot", checkpoint_dir=str(tmp_path / "nowhere"), horizon=16)
    no_weights = _copy(checkpoints["act"], tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(VLAError, match="has no model.safetensors"):
        make_backend("lerobot", checkpoint_dir=str(no_weights), horizon=16)
    with pytest.raises(VLAError, match="unknown policy type 'my_policy'"):
        make_backend("lerobot", checkpoint_dir=str(_copy(checkpoints["act"], tmp_path / "unknown", type="my_policy")),
                     horizon=16)
    cfg = json.loads((checkpoints["act"] / "config.json").read_text())
    wrong_state = {**cfg["input_features"], "observation.state": {"type": "STATE", "shape": [8]}}
    with pytest.raises(VLAError, match=r"observation.state \(8,\): resrl provides"):
        make_backend("lerobot", checkpoint_dir=str(_copy(checkpoints["act"], tmp_path / "state8",
                                                       input_features=wrong_state)), horizon=16)
    wrong_env = {**cfg["input_features"], "observation.environment_state": {"type": "ENV", "shape": [10]}}
    with pytest.raises(VLAError, match="environment_state \\(10,\\)"):
        make_backend("lerobot", checkpoint_dir=str(_copy(checkpoints["act"], tmp_path / "env10",
                                                       input_features=wrong_env)), horizon=16)
    wrong_action = {"action": {"type": "ACTION", "shape": [6]}}
    with pytest.raises(VLAError, match=r"action \(6,\): resrl needs"):
        make_backend("lerobot", checkpoint_dir=str(_copy(checkpoints["act"], tmp_path / "act6",
                                                       output_features=wrong_action)), horizon=16)
    broken = _copy(checkpoints["act"], tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(VLAError, match="cannot load the act checkpoint"):
        make_backend("lerobot", checkpoint_dir=str(broken), horizon=16)


def test_pi0_checkpoints_are_routed_to_openpi(tmp_path):
    """LeRobot's pi0 / pi0.5 need a transformers fork this stack cannot install: the backend says
    so and names the openpi backend instead of failing somewhere inside transformers."""
    from resrl.vla.lerobot_compat import prepare
    prepare()
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    cfg = PI0Config(input_features={"observation.state": PolicyFeature(FeatureType.STATE, (7,)),
                                    "observation.images.rgb": PolicyFeature(FeatureType.VISUAL, (3, 224, 224))},
                    output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))}, device="cpu")
    cfg._save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(VLAError, match="vla.backend: openpi"):
        make_backend("lerobot", checkpoint_dir=str(tmp_path), horizon=16)
