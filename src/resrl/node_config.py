"""The typed config tree of the node graph: one dataclass per node plus the shared one, and ONE
loader for the parameter YAML that launch passes (config/sim_vgm.yaml, franka_vgm.yaml, ...).

The nodes declare these dataclasses as ROS parameters (resrl.ros.params.declare_dataclass), so
their defaults and `ros2 param list` come from here; the in-process runner, offline_train and the
benchmarks read the same YAML through :func:`node_params` / :func:`build`, so a value set in one
YAML file reaches both runners. Unknown keys are an error (a typo must not fall back to a default).

A node's parameters are the ``/**`` section merged with its own section (as ROS applies them);
nested mappings and dotted keys are the same parameter (``vgm: {kappa: 0}`` == ``vgm.kappa: 0``).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Type, TypeVar

from resrl import topics

from resrl.arbiter.chunks import ChunkConfig
from resrl.arbiter.pld import PLDConfig
from resrl.arbiter.safety import SafetyConfig
from resrl.arbiter.vgm import VGMConfig
from resrl.configs import ConfigError, from_dict, load_yaml
from resrl.models.config import ModelConfig, obs_spec  # noqa: F401  (re-exported: the runners take it from here)
from resrl.perception.pose_tracking import IDENTITY_POSE, TrackerNoiseConfig
from resrl.recorder import episode_buffers  # noqa: F401  (re-exported for the runners)
from resrl.robots.common import BridgeConfig
from resrl.robots.franka import FrankaConfig
from resrl.session import SessionConfig
from resrl.teleop import TeleopConfig

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class SharedConfig:
    """``/**``: what every resrl control node reads (the arbiter, residual policy and learner)."""
    control_rate_hz: float = 10.0     # stamps on a 1/rate grid: one decision per control period
    frame_id: str = "fr3_link0"
    max_skew_ms: float = 0.0          # observation parts may differ this much in stamp
    reliable_sensors: bool = False    # lockstep sim: a dropped observation part would stall the loop
    obs_mode: str = "object"          # object | image
    seed: int = 0                     # the session seed; per-component seeds: resrl.control.session_seeds
    torch_threads: int = 1
    model: ModelConfig = field(default_factory=ModelConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)


@dataclass
class ArbiterNodeConfig:
    chunk_wait_s: float = 1.0           # wait this long (wall s) for the chunk, then hold
    residual_wait_s: float = 1.0        # ... and for the residual, then on_late_residual
    on_late_residual: str = "base"      # base: a_VLA alone (no residual this step) | hold (resrl.control.StepDeadline)
    intervention_timeout_s: float = 0.5
    vgm: VGMConfig = field(default_factory=VGMConfig)     # vgm.mode is THE arbiter mode
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    pld: PLDConfig = field(default_factory=PLDConfig)     # PLD hybrid rollouts in train episodes


@dataclass
class ResidualNodeConfig:
    exploration_noise: float = 0.2        # Gaussian std as a fraction of xi, training episodes only
    exploration_noise_clip: float = 0.5
    # Every N-th train episode (by episode id) without noise: the deterministic policy that
    # evaluation deploys, stored and trained on like any train episode (0: every one explores).
    noise_free_every: int = 0
    chunks: ChunkConfig = field(default_factory=ChunkConfig)

    def __post_init__(self):
        if self.noise_free_every < 0:
            raise ConfigError(f"residual_policy.noise_free_every: 0 (every train episode explores) or N >= 1, "
                              f"got {self.noise_free_every}")


@dataclass
class DepthSourceConfig:
    source: str = "sensor"            # sensor (aligned depth) | depth_anything_v2 (+ checkpoint_dir)
    checkpoint_dir: str = ""
    input_size: int = 224             # Depth-Anything-V2 input (px)
    depth_scale: float = 0.001        # sensor depth units -> m (RealSense 16UC1: mm)


@dataclass
class CameraNodeConfig:
    image_size: int = 96              # model resolution of RGB + relative depth
    depth: DepthSourceConfig = field(default_factory=DepthSourceConfig)
    max_skew_ms: float = 20.0         # colour and depth stamps may differ this much
    stale_after_ms: float = 0.0       # older frames are not used (0: no staleness check)


@dataclass
class OpenPIEndpoint:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str = ""


@dataclass
class VLASourceConfig:
    """``vla.*`` of the chunk provider; resrl.vla.base picks the fields its backend's config takes."""
    backend: str = "sim_scripted"     # sim_scripted | replay | openpi | lerobot
    horizon: int = 16                 # chunk rows used
    prefetch_steps: int = 0           # ask for the next chunk while this many rows remain
    latency_steps: int = 0
    replay_path: str = ""
    openpi: OpenPIEndpoint = field(default_factory=OpenPIEndpoint)
    prompt: str = ""
    action_space: str = "eef_absolute"   # eef_absolute | joint_velocity (resrl.vla.action_mapping)
    kinematics: str = "franka"
    connect_timeout_s: float = 2.0
    timeout_s: float = 5.0
    checkpoint_dir: str = ""          # lerobot: a save_pretrained directory
    vlm_dir: str = ""                 # lerobot SmolVLA: local VLM dir (else its config's vlm_model_name)
    device: str = "cpu"
    # Real backends (openpi, lerobot): inputs and retries.
    retry_period_s: float = 0.5
    arm_joints: Tuple[str, ...] = tuple(f"fr3_joint{i}" for i in range(1, 8))
    image_topic: str = topics.COLOR_IMAGE
    wrist_image_topic: str = ""
    joint_states_topic: str = topics.JOINT_STATES
    object_conf_threshold: float = 0.5
    object_poses_topic: str = topics.OBJECT_POSES

    def backend_params(self, task: str) -> Dict[str, Any]:
        """What ``resrl.vla.make_backend(self.backend, **...)`` takes; each backend keeps its own fields."""
        return dict(task=task, horizon=self.horizon, replay_path=self.replay_path, host=self.openpi.host,
                    port=self.openpi.port, api_key=self.openpi.api_key, prompt=self.prompt,
                    action_space=self.action_space, kinematics=self.kinematics,
                    connect_timeout_s=self.connect_timeout_s, timeout_s=self.timeout_s,
                    checkpoint_dir=self.checkpoint_dir, device=self.device, vlm_dir=self.vlm_dir)


@dataclass
class VLANodeConfig:
    control_rate_hz: float = 10.0
    frame_id: str = "fr3_link0"
    task: str = "pick_place"          # the sim task (sim_scripted backend)
    vla: VLASourceConfig = field(default_factory=VLASourceConfig)


@dataclass
class ReplayConfig:
    capacity: int = 200_000
    gamma: float = 0.99
    n_step: int = 1


@dataclass
class ArbiterMode:
    """The learner reads the arbiter's mode under the arbiter's name, ``vgm.mode`` (one name per setting)."""
    mode: str = "vgm"   # base_only: nothing to train, the demos are only recorded


@dataclass
class LearnerNodeConfig:
    session: str = "manual"             # auto: the node runs the session plan; manual: keyboard episodes
    run_dir: str = "runs/latest"
    learner_config: str = ""            # algorithm YAML (default: config/learner.yaml)
    updates_per_step: int = 1
    step_grid: bool = False             # lockstep: one command per control-period stamp
    wait_for_nodes: str = ""            # comma-separated nodes listening to events/takeovers/commands before episode 1
    startup_wait_s: float = 3.0
    # How long a labelled episode waits for its last command and terminal observation before it is
    # stored with the commands that came (or dropped without its terminal observation); in a
    # manual session the operator's next episode ends that wait at once.
    terminal_wait_s: float = 5.0
    # A key press is stamped by the keyboard's clock, between two state samples: once that wait is
    # over, a keyboard label's terminal observation may lie this far from its stamp (a person's
    # reaction takes longer; under load the state stream skips beats wider than max_skew_ms).
    label_skew_ms: float = 250.0
    # A reset whose response has not come after this long is asked again (a response lost while
    # discovery is incomplete left the session waiting forever; the sim restarts a running episode).
    reset_timeout_s: float = 15.0
    offline_bags: str = ""
    bag_tolerance_ms: float = 50.0
    obs_history: int = 1000
    # The training thread only (issue 16: training must not starve the control path): its nice
    # value (0-19; the other threads of this node and the other nodes keep theirs) and the CPUs it
    # may run on ("": any; e.g. "1" keeps core 0 for the control nodes). A real cell trains on
    # the GPU host; on a shared CPU these decide who waits.
    train_nice: int = 0
    train_cpus: str = ""
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    vgm: ArbiterMode = field(default_factory=ArbiterMode)
    session_plan: SessionConfig = field(default_factory=SessionConfig)
    # Overrides of config/learner.yaml's `learner:` section (declared by the node with the YAML's values).
    learner: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PoseTrackerSimConfig:
    """The part of the pose tracker's parameters the in-process runner needs (its simulated tracker)."""
    noise: TrackerNoiseConfig = field(default_factory=TrackerNoiseConfig)



# --- the nodes that take no SharedConfig (they declare these with declare_dataclass, prefix "") ---
# Their names, types and defaults are the ones each node declared by hand before (a name here is a
# name in config/*.yaml and the launch overrides: never rename one). A field with
# metadata={"default_from": f} gets its default from the fields declared before it
# (resrl.ros.params.declare_dataclass); its static default is that value at the other defaults.

@dataclass
class SimRobotNodeConfig:
    """``sim_robot``: the simulated Franka (MuJoCo) behind the real drivers' topics."""
    lockstep: bool = True               # step only when the command for the published stamp arrived
    lockstep_timeout_s: float = 2.0     # lockstep: re-send observation t after this long without a command (wall s)
    frame_id: str = "fr3_link0"         # robot base frame of poses and tracked objects
    camera_frame: str = "camera_color_optical_frame"
    seed: int = 0                       # the sim's seed (first reset, scripted expert)
    obs_mode: str = "object"            # object | image; only decides render's default here
    # Render colour + depth. Default: obs_mode == "image" (the value of obs_mode this node got); a
    # BOOL parameter as before, so render:=true / false overrides the derived default.
    render: bool = field(default=False, metadata={"default_from": lambda v: v["obs_mode"] == "image"})
    camera_size: int = 96               # rendered image width = height (px)
    task: str = "pick_place"            # config/tasks/<task>.yaml
    control_rate_hz: float = 10.0       # physics steps one control period per command
    scripted_expert: bool = True        # plays the teleoperator in "demo" episodes


def _session_topics() -> Tuple[str, ...]:
    # Imported here: rosbags loads only when the default is asked for.
    from resrl.bags.schema import SESSION_TOPICS
    return tuple(SESSION_TOPICS)


@dataclass
class FrankaSimNodeConfig:
    """``franka_sim``: a simulated Franka cell behind franka_ros2's, FoundationPose's and
    realsense2_camera's topics and actions (rehearsal: franka_vgm.launch.py sim_cell:=true)."""
    task: str = "pick_place"            # config/tasks/<task>.yaml: the scene
    seed: int = 0                       # first scene; each error recovery puts the next one
    control_rate_hz: float = 15.0       # the Cartesian controller steps the physics one period per tick
    frame_id: str = "fr3_link0"
    camera_frame: str = "camera_color_optical_frame"
    render: bool = False                # colour + aligned depth on the camera topics (image mode)
    camera_size: int = 96
    detection_topic: str = topics.FOUNDATIONPOSE_OUTPUT   # vision_msgs/Detection3DArray, camera frame
    franka: FrankaConfig = field(default_factory=FrankaConfig)   # the same names the bridge drives


@dataclass
class BagRecorderNodeConfig:
    """``bag_recorder``: the session bag."""
    run_dir: str = "runs/latest"        # the bag goes to <run_dir>/bag (bag_1, bag_2, ... when taken)
    bag_path: str = ""                  # explicit bag folder instead ("" = under run_dir)
    storage: str = "mcap"               # mcap | sqlite3
    flush_period_s: float = 1.0         # a killed session loses at most this much of the bag (wall s)
    topics: Tuple[str, ...] = field(default_factory=_session_topics)   # a subset of resrl.bags.schema.SESSION_TOPICS


@dataclass
class ClassifierParams:
    model_path: str = ""                # python -m resrl.reward_classifier --out ...; required
    threshold: float = -1.0             # P(success) that calls success; < 0: the model's own
    consecutive: int = 0                # frames above threshold in a row; <= 0: the model's own
    override_window_s: float = 0.5      # a key (or any other source) within this long wins (wall s)


@dataclass
class ClassifierObservation:
    """``model.*`` the classifier's observation needs (the same names as ModelConfig's, in /**)."""
    num_objects: int = 1                # tracked object slots; must match the model's features
    conf_threshold: float = 0.5         # below this a tracked pose counts as lost (zeros)


@dataclass
class RewardClassifierNodeConfig:
    """``reward_classifier``: the learned success detector, a second reward source."""
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    model: ClassifierObservation = field(default_factory=ClassifierObservation)
    max_skew_ms: float = 0.0            # observation parts may differ this much in stamp


@dataclass
class DetectionParams:
    """``tracker.detection.*`` (backends detection3d and foundationpose): resrl.perception.pose_tracking.DetectionTrackerConfig + the input topic."""
    topic: str = topics.FOUNDATIONPOSE_OUTPUT    # detection3d: the vision_msgs/Detection3DArray topic
    object_ids: Tuple[str, ...] = ()             # class ids in object-slot order; empty: arrival order (a STRING_ARRAY)
    camera_pose_in_base: Tuple[float, ...] = IDENTITY_POSE   # [x y z qx qy qz qw] of the camera in the base frame
    base_frame: str = "fr3_link0"


@dataclass
class FoundationPoseParams:
    """``tracker.foundationpose.*`` (backend foundationpose, in-process FoundationPose + SAM2)."""
    repo_dir: str = ""                  # the FoundationPose checkout
    mesh_file: str = ""                 # the object's mesh
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_s.yaml"
    sam2_checkpoint: str = ""
    prompt_box: Tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)   # SAM2 box prompt [x0 y0 x1 y1] px
    depth_scale: float = 0.001          # sensor depth units -> m


@dataclass
class TrackerParams:
    backend: str = "sim"                # sim | passthrough | detection3d | foundationpose
    input_topic: str = topics.OBJECT_POSES_GT    # sim / passthrough: TrackedObjects in
    noise: TrackerNoiseConfig = field(default_factory=TrackerNoiseConfig)   # sim backend
    detection: DetectionParams = field(default_factory=DetectionParams)
    foundationpose: FoundationPoseParams = field(default_factory=FoundationPoseParams)


@dataclass
class PoseTrackerNodeConfig:
    """``pose_tracker``: object poses with confidence. Every backend's knobs are declared; each
    backend reads its own."""
    tracker: TrackerParams = field(default_factory=TrackerParams)
    seed: int = 0                       # the session seed (the sim tracker's: resrl.control.session_seeds)
    max_skew_ms: float = 20.0           # foundationpose: colour and depth stamps may differ this much


@dataclass
class KeyboardNodeConfig:
    """``keyboard``: the operator console. The per-device mappings (``spacemouse.*``, ``gamepad.*``:
    resrl.teleop.DEVICES) are declared by the node for the devices it opens."""
    control_rate_hz: float = 15.0       # device takeover: Interventions at this rate
    devices: Tuple[str, ...] = ("spacemouse", "gamepad")   # takeover devices to open (resrl.teleop.DEVICES)
    spacemouse_twist_topic: str = "/spacenav/twist"
    spacemouse_joy_topic: str = "/spacenav/joy"
    gamepad_joy_topic: str = "/joy"
    console: bool = True                # false: no keys even on a terminal
    teleop: TeleopConfig = field(default_factory=TeleopConfig)


@dataclass
class RobotBridgeNodeConfig:
    """``robot_bridge``: the real arm's driver behind resrl's topics. The driver's own
    (``franka.*`` / ``ur.*``: resrl.robots) are declared for the robot it drives."""
    robot: str = "franka"               # franka | ur
    control_rate_hz: float = 15.0       # one state snapshot per control period
    require_gripper_state: bool = True  # a stale gripper state stops the arm, as a stale pose does
    bridge: BridgeConfig = field(default_factory=BridgeConfig)

# Node name -> the dataclasses its parameters fill (prefix "" = top level): the nodes that also
# take SharedConfig, whose YAML the in-process runner loads (split / load_graph). The nodes not
# listed here declare their own dataclass (CameraNodeConfig, VLANodeConfig, SimRobotNodeConfig, ...)
# and no SharedConfig; test/unit/test_config_tree.py checks their keys against the names they
# declare, read from the node's source.
NODE_CONFIGS: Dict[str, Dict[str, type]] = {
    "vgm_arbiter": {"": ArbiterNodeConfig},
    "residual_policy": {"": ResidualNodeConfig},
    "replay_learner": {"": LearnerNodeConfig},
}
SHARED_NODES = tuple(NODE_CONFIGS)   # the nodes that declare SharedConfig


def flatten(data: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested mappings -> dotted keys (ROS parameter names)."""
    out: Dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def graph_yaml(path: str | Path) -> Dict[str, Dict[str, Any]]:
    """A ROS parameter YAML -> {node name or '/**': flat params}. Only ros__parameters sections."""
    data = load_yaml(path)
    out = {}
    for node, body in data.items():
        if not isinstance(body, Mapping) or set(body) != {"ros__parameters"}:
            raise ConfigError(f"{path}: section {node!r} must hold exactly 'ros__parameters'")
        out[str(node).lstrip("/") if node != "/**" else "/**"] = flatten(body["ros__parameters"] or {})
    return out


def node_params(path: str | Path, node: str, *more: str | Path) -> Dict[str, Any]:
    """The flat parameters ``node`` gets from the YAML files (later files win), as ROS applies them."""
    merged: Dict[str, Any] = {}
    for p in (path, *more):
        sections = graph_yaml(p)
        merged.update(sections.get("/**", {}))
        merged.update(sections.get(node, {}))
    return merged


def unflatten(flat: Mapping[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        cur = out
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
            if not isinstance(cur, dict):
                raise ConfigError(f"parameter {key!r} conflicts with a scalar parameter {part!r}")
        cur[parts[-1]] = value
    return out


def field_names(cls: type, prefix: str = "") -> Dict[str, Any]:
    """Every parameter name ``declare_dataclass(node, cls, prefix)`` declares -> its default."""
    hints = typing.get_type_hints(cls)
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = f"{prefix}.{f.name}" if prefix else f.name
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out.update(field_names(hint, name))
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if isinstance(default, dict):   # one parameter per key (none for an empty mapping)
            out.update({f"{name}.{k}": v for k, v in default.items()})
        else:
            out[name] = default
    return out


def build(cls: Type[T], flat: Mapping[str, Any], where: str = "", strict: bool = True) -> T:
    """Dataclass ``cls`` from flat params (the keys it owns); ``strict``: any other key is an error."""
    owned = {}
    names = field_names(cls)
    for key, value in flat.items():
        top = key.split(".")[0]
        if key in names or any(n.startswith(key + ".") for n in names) or _is_mapping_field(cls, top):
            owned[key] = value
        elif strict:
            raise ConfigError(f"{where or cls.__name__}: unknown parameter {key!r}")
    return from_dict(cls, unflatten(owned), where or cls.__name__)


def _is_mapping_field(cls: type, name: str) -> bool:
    hints = typing.get_type_hints(cls)
    return name in hints and typing.get_origin(hints[name]) in (dict, Dict)


def split(flat: Mapping[str, Any], node: str) -> tuple[SharedConfig, Any]:
    """(SharedConfig, the node's own config) from one node's flat params; unknown keys are an error."""
    own_cls = NODE_CONFIGS[node][""]
    shared_names = field_names(SharedConfig)
    shared = {k: v for k, v in flat.items() if k in shared_names or k.split(".")[0] in ("model", "safety")}
    rest = {k: v for k, v in flat.items() if k not in shared}
    rest.pop("use_sim_time", None)
    rest.pop("task", None)   # the sim task: config/tasks/<task>.yaml (resrl.sim.load_task_config)
    return build(SharedConfig, shared, "/**"), build(own_cls, rest, node)


def sim_graph_yaml() -> Path:
    """config/sim_vgm.yaml of the installed package, else of the source tree."""
    try:
        from resrl.launch_runner import package_share
        path = package_share() / "config" / "sim_vgm.yaml"
        if path.is_file():
            return path
    except Exception:   # not built: the source tree
        pass
    return REPO / "config" / "sim_vgm.yaml"


@dataclass
class GraphConfig:
    """Every node config the in-process runner composes, read from one graph YAML."""
    shared: SharedConfig
    arbiter: ArbiterNodeConfig
    residual: ResidualNodeConfig
    learner: LearnerNodeConfig
    tracker: TrackerNoiseConfig
    vla: VLASourceConfig


def load_graph(path: Optional[str | Path] = None, *more: str | Path) -> GraphConfig:
    path = path or sim_graph_yaml()
    shared, arbiter = split(node_params(path, "vgm_arbiter", *more), "vgm_arbiter")
    _, residual = split(node_params(path, "residual_policy", *more), "residual_policy")
    _, learner = split(node_params(path, "replay_learner", *more), "replay_learner")
    tracker_flat = {k[len("tracker.noise."):]: v for k, v in node_params(path, "pose_tracker", *more).items()
                    if k.startswith("tracker.noise.")}
    vla_flat = {k[len("vla."):]: v for k, v in node_params(path, "vla_chunk_provider", *more).items()
                if k.startswith("vla.")}
    return GraphConfig(shared, arbiter, residual, learner, build(TrackerNoiseConfig, tracker_flat, "tracker.noise"),
                       build(VLASourceConfig, vla_flat, "vla"))


def make_buffers(spec: dict, cfg: ReplayConfig, run_dir: Optional[str | Path] = None):
    """(online, demos) replay buffers; with ``run_dir`` on disk under <run_dir>/replay (reloaded if there)."""
    from resrl.replay import ReplayBuffer
    where = (lambda name: Path(run_dir) / "replay" / name) if run_dir is not None else (lambda name: None)
    return (ReplayBuffer(spec, cfg.capacity, where("online"), cfg.gamma, cfg.n_step, "online"),
            ReplayBuffer(spec, cfg.capacity, where("demos"), cfg.gamma, cfg.n_step, "demos"))


def learner_overrides(cfg: LearnerNodeConfig) -> Dict[str, Any]:
    """The ``learner.*`` parameters that override config/learner.yaml's ``learner:`` section
    (``learner.enabled`` is the node's own switch); an unknown name is an error."""
    from resrl.algos.learner import LearnerConfig
    known = {f.name for f in dataclasses.fields(LearnerConfig)}
    over = {k: v for k, v in cfg.learner.items() if k != "enabled"}
    unknown = sorted(set(over) - known)
    if unknown:
        raise ConfigError(f"replay_learner: unknown parameters {['learner.' + k for k in unknown]}")
    return over
