"""LeRobot policies (ACT, Diffusion Policy, SmolVLA; pi0 / pi0.5 see below) from a local checkpoint.

The checkpoint directory is what ``policy.save_pretrained(dir)`` writes (``config.json`` +
``model.safetensors``) -- e.g. ``outputs/train/<run>/checkpoints/last/pretrained_model`` of
``lerobot-train`` -- plus the pre/post-processor pipelines (``policy_preprocessor.json`` /
``policy_postprocessor.json`` and their normalisation statistics) that lerobot >= 0.4 saves beside a
trained policy; without them the processors are built from the config (no dataset normalisation,
logged as a warning). Nothing is downloaded: every ``from_pretrained`` runs with
``local_files_only``. The pipeline is LeRobot's own async policy server's: raw observation ->
preprocessor -> ``predict_action_chunk`` -> postprocessor per row.

Observation -> the policy's ``input_features`` (checked against the config when the checkpoint loads):

* ``STATE``  ``observation.state`` = resrl's EE state (7,): position, rotation vector, gripper opening.
* ``ENV``    ``observation.environment_state`` = tracked object poses in slot order, 7 per object
             (x, y, z, qx, qy, qz, qw; what ``resrl.export.lerobot`` writes from an object-mode replay).
* ``VISUAL`` every image feature, float CHW in [0, 1] resized (nearest) to the feature's shape: a
             key containing ``wrist`` reads the wrist camera, one containing ``depth`` the relative
             depth image (repeated on 3 channels, as the exporter stores it), any other the exterior
             camera.

Output: the policy's ``action`` must be in resrl's action space (absolute EE targets, 7 dims) -- or,
for DROID-style joint-velocity policies, ``vla.action_space: joint_velocity`` as for openpi.

Chunk length. ``predict_action_chunk`` returns the whole predicted chunk: ACT's and SmolVLA's
``chunk_size`` rows, Diffusion Policy's ``n_action_steps`` rows (of its ``horizon``). resrl publishes
the first ``min(rows, vla.horizon)`` of them; how many run open-loop before the next chunk takes over
is resrl's, not LeRobot's: ``execute_steps = vla.horizon - vla.prefetch_steps`` (the arbiter's
``chunk.execute_steps``). LeRobot's own ``n_action_steps`` (its action queue in ``select_action``)
is the same knob on LeRobot's side: set ``execute_steps`` to the ``n_action_steps`` the policy was
evaluated with.

SmolVLA builds its VLM (SmolVLM2) from ``vlm_model_name`` in its config -- the VLM's config.json,
tokenizer and processor; its weights are in the SmolVLA checkpoint. Nothing is downloaded: that name
must be a local directory or already in the Hugging Face cache, or ``vla.vlm_dir`` names a local copy
(it then also replaces the tokenizer the saved preprocessor names). ``num2words`` is required by
SmolVLM's processor (requirements.txt).

pi0 / pi0.5 load through the same path in principle, but LeRobot's implementations need a
transformers fork (``transformers@fix/lerobot_openpi``) that is not installable here; this backend
reports that and routes to the openpi backend (``vla.backend: openpi``), which serves them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from resrl.actions import STATE_DIM
from resrl.vla.action_mapping import ActionMapper
from resrl.vla.base import VLAError, check_chunk

LOG = logging.getLogger(__name__)
SUPPORTED_TYPES = ("act", "diffusion", "smolvla", "pi0", "pi05")
OPENPI_TYPES = ("pi0", "pi05")
STATE_KEY = "observation.state"
ENV_KEY = "observation.environment_state"
POSE_DIM = 7


def _import_lerobot():
    try:
        from resrl.vla.lerobot_compat import prepare
        prepare()   # lerobot 0.4.4's policies beside transformers 5: see lerobot_compat
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except Exception as exc:   # ImportError, or one of lerobot's own imports failing
        raise VLAError(f"lerobot backend: cannot import lerobot ({type(exc).__name__}: {exc}); "
                       "scripts/setup.sh installs lerobot 0.4.4 (--no-deps) and its dependencies") from exc
    return PreTrainedConfig, get_policy_class, make_pre_post_processors


def read_checkpoint_type(path: Path) -> str:
    """The policy type of a checkpoint dir, checked before lerobot parses it (clear errors first)."""
    if not path.is_dir():
        raise VLAError(f"lerobot backend: checkpoint dir '{path}' does not exist")
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise VLAError(f"lerobot backend: checkpoint dir '{path}' has no {name} (expected what "
                           "policy.save_pretrained(dir) writes: config.json + model.safetensors)")
    try:
        kind = json.loads((path / "config.json").read_text()).get("type")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise VLAError(f"lerobot backend: {path / 'config.json'} is not a JSON object ({exc})") from exc
    if kind not in SUPPORTED_TYPES:
        raise VLAError(f"lerobot backend: unknown policy type {kind!r} in {path / 'config.json'} "
                       f"(supported: {', '.join(SUPPORTED_TYPES)})")
    return kind


def image_source(key: str) -> str:
    """Which resrl image feeds a LeRobot image feature (see the module docstring)."""
    low = key.lower()
    return "wrist_image" if "wrist" in low else "depth" if "depth" in low else "image"


def _check_vlm_is_local(name: str, checkpoint: Path) -> None:
    """SmolVLA's VLM config / tokenizer must be on disk: a directory, or a cached hub repo."""
    if Path(name).is_dir():
        if not (Path(name) / "config.json").is_file():
            raise VLAError(f"lerobot backend: the SmolVLA VLM dir '{name}' has no config.json")
        return
    try:
        from huggingface_hub import try_to_load_from_cache
        cached = isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:   # not a valid repo id either
        cached = False
    if not cached:
        raise VLAError(f"lerobot backend: SmolVLA in '{checkpoint}' builds its VLM from '{name}' "
                       "(vlm_model_name), which is neither a local directory nor in the Hugging Face cache, "
                       "and nothing is downloaded: copy that repo's config, tokenizer and processor files "
                       "to this machine and set vla.vlm_dir to the folder")


def transformers_fork_installed() -> bool:
    """The check LeRobot's pi0 / pi0.5 run after building their model, run before it."""
    try:
        from transformers.models.siglip import check
        return bool(check.check_whether_transformers_replace_is_installed_correctly())
    except ImportError:
        return False


class LeRobotBackend:
    name = "lerobot"

    def __init__(self, checkpoint_dir: str, horizon: int, task: str = "", device: str = "cpu",
                 action_space: str = "eef_absolute", kinematics: str = "franka", vlm_dir: str = ""):
        path = Path(checkpoint_dir)
        kind = read_checkpoint_type(path)
        PreTrainedConfig, get_policy_class, make_pre_post_processors = _import_lerobot()
        import torch
        self.torch = torch
        try:
            cfg = PreTrainedConfig.from_pretrained(path, local_files_only=True)
        except Exception as exc:
            raise VLAError(f"lerobot backend: cannot parse {path / 'config.json'} as a {kind} config "
                           f"({type(exc).__name__}: {exc})") from exc
        cfg.device = device
        if kind == "smolvla":
            if vlm_dir:
                cfg.vlm_model_name = vlm_dir
            _check_vlm_is_local(cfg.vlm_model_name, path)
        self.inputs = self._check_features(cfg)   # before the weights: a clear error, not a size mismatch
        if kind in OPENPI_TYPES and not transformers_fork_installed():
            # LeRobot would build the whole ~3B-parameter model first and check this afterwards.
            raise VLAError(f"lerobot backend: LeRobot's {kind} needs a transformers fork "
                           "(transformers@fix/lerobot_openpi) that is not installed / installable on this stack: "
                           "serve it with openpi and use vla.backend: openpi")
        try:
            policy_class = get_policy_class(kind)
            self.policy = policy_class.from_pretrained(path, config=cfg, local_files_only=True)
        except Exception as exc:
            if kind in OPENPI_TYPES:
                raise VLAError(f"lerobot backend: {kind} cannot be loaded by LeRobot here "
                               f"({type(exc).__name__}: {exc}); LeRobot's {kind} needs a transformers fork "
                               "that is not installable on this stack: serve it with openpi and use "
                               "vla.backend: openpi") from exc
            raise VLAError(f"lerobot backend: cannot load the {kind} checkpoint in '{path}' "
                           f"({type(exc).__name__}: {exc})") from exc
        self.policy.to(device).eval()
        self.cfg, self.kind, self.horizon, self.task, self.device = cfg, kind, int(horizon), task, device
        saved = (path / "policy_preprocessor.json").is_file() and (path / "policy_postprocessor.json").is_file()
        if not saved:
            LOG.warning("lerobot backend: %s has no saved pre/post-processors; inputs and actions are "
                        "not normalised with the training statistics", path)
        overrides = {"device_processor": {"device": device}}
        pre_overrides = {**overrides, **({"tokenizer_processor": {"tokenizer_name": vlm_dir}} if kind == "smolvla" and vlm_dir else {})}
        try:
            self.pre, self.post = make_pre_post_processors(
                cfg, pretrained_path=str(path) if saved else None,
                **({"preprocessor_overrides": pre_overrides, "postprocessor_overrides": overrides} if saved else {}))
        except Exception as exc:
            raise VLAError(f"lerobot backend: cannot build the {kind} pre/post-processors from '{path}' "
                           f"({type(exc).__name__}: {exc})") from exc
        self.mapper = ActionMapper(action_space, kinematics)

    @property
    def num_objects(self) -> int:
        """Object slots the policy's environment state holds (0: it reads none)."""
        return self.inputs.get(ENV_KEY, (0,))[0] // POSE_DIM

    @staticmethod
    def _check_features(cfg) -> dict:
        """input feature key -> shape; raises VLAError for any feature resrl cannot feed."""
        from lerobot.configs.types import FeatureType
        inputs, problems = {}, []
        for key, feature in cfg.input_features.items():
            shape = tuple(int(s) for s in feature.shape)
            if feature.type == FeatureType.STATE:
                if key != STATE_KEY or shape != (STATE_DIM,):
                    problems.append(f"{key} {shape}: resrl provides {STATE_KEY} ({STATE_DIM},) = EE position, "
                                    "rotation vector, gripper opening")
            elif feature.type == FeatureType.ENV:
                if key != ENV_KEY or len(shape) != 1 or shape[0] % POSE_DIM or shape[0] == 0:
                    problems.append(f"{key} {shape}: resrl provides {ENV_KEY} (7 * objects,) = tracked poses "
                                    "(x, y, z, qx, qy, qz, qw) in slot order")
            elif feature.type == FeatureType.VISUAL:
                if len(shape) != 3 or shape[0] != 3:
                    problems.append(f"{key} {shape}: resrl provides RGB images (3, H, W)")
            else:
                problems.append(f"{key}: feature type {feature.type.value} has no resrl source")
            inputs[key] = shape
        action = cfg.output_features.get("action")
        if action is None or len(action.shape) != 1 or action.shape[0] < 7:
            problems.append(f"action {None if action is None else tuple(action.shape)}: resrl needs (>= 7,) "
                            "absolute EE targets (or vla.action_space: joint_velocity)")
        if problems:
            raise VLAError("lerobot backend: the policy's features do not match resrl's observation: "
                           + "; ".join(problems))
        return inputs

    def reset(self, seed: int) -> None:
        self.policy.reset()

    def _batch(self, obs) -> dict:
        torch = self.torch
        batch = {}
        for key, shape in self.inputs.items():
            if key == STATE_KEY:
                value = np.asarray(obs.get("state", ()), np.float32).reshape(-1)
                if value.shape != shape:
                    raise VLAError(f"lerobot: observation state has shape {value.shape}, policy needs {shape}")
                batch[key] = torch.from_numpy(value)[None]
            elif key == ENV_KEY:
                if "object_poses" not in obs:
                    raise VLAError(f"lerobot: policy needs {ENV_KEY} {shape} and no object poses have arrived")
                value = np.asarray(obs["object_poses"], np.float32).reshape(-1)
                if value.shape != shape:
                    raise VLAError(f"lerobot: {ENV_KEY} has {value.shape[0]} values ({value.shape[0] // 7} "
                                   f"objects), policy needs {shape[0]}")
                batch[key] = torch.from_numpy(value)[None]
            else:
                source = image_source(key)
                if source not in obs:
                    raise VLAError(f"lerobot: policy needs image feature '{key}' and no {source} has arrived")
                img = np.asarray(obs[source])
                if source == "depth" and img.ndim == 2:
                    img = np.repeat(img[:, :, None], 3, axis=2)
                if img.ndim != 3 or img.shape[2] != 3:
                    raise VLAError(f"lerobot: {source} must be (H, W, 3), got {img.shape}")
                _, h, w = shape
                img = img[np.arange(h) * img.shape[0] // h][:, np.arange(w) * img.shape[1] // w]   # nearest
                batch[key] = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()[None] / 255.0
        batch["task"] = [self.task]
        return batch

    def _predict(self, batch: dict):
        if self.kind == "diffusion":
            # Diffusion Policy reads its n_obs_steps observation history from queues that its
            # select_action fills; fill them the same way (first call: the observation repeated).
            from lerobot.policies.utils import populate_queues
            from lerobot.utils.constants import OBS_IMAGES
            if self.cfg.image_features:
                batch = {**batch, OBS_IMAGES: self.torch.stack([batch[k] for k in self.cfg.image_features], dim=-4)}
            self.policy._queues = populate_queues(self.policy._queues, batch)
        return self.policy.predict_action_chunk(batch)

    def infer(self, obs):
        torch = self.torch
        batch = self._batch(obs)
        with torch.inference_mode():
            # the preprocessor's transition also carries action / reward keys: observations only
            batch = {k: v for k, v in self.pre(batch).items() if k.startswith("observation.") or k == "task"}
            chunk = self._predict(batch)
            if chunk.ndim == 2:
                chunk = chunk[None]
            rows = [self.post(chunk[:, i, :]) for i in range(min(chunk.shape[1], self.horizon))]
        actions = torch.stack([r.reshape(-1) for r in rows]).float().cpu().numpy()
        try:
            mapped = self.mapper(actions, obs)
        except ValueError as exc:
            raise VLAError(f"lerobot: {exc}") from exc
        return check_chunk(mapped, self.horizon, 7, "lerobot")
