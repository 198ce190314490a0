"""The config tree: every YAML key under config/ reaches a field the running code reads, one loader
for the nodes and the in-process runner, one name per setting."""
import ast
import dataclasses
import importlib
from pathlib import Path

import pytest
import yaml

from resrl.algos.learner import ALGORITHMS, LearnerConfig, load_configs
from resrl.configs import ConfigError
from resrl.launch_graph import GRAPHS, default_args
from resrl.node_config import (NODE_CONFIGS, SharedConfig, build, field_names, graph_yaml, learner_overrides,
                               load_graph, node_params, split)
from resrl.ros.params import declare_dataclass

ROOT = Path(__file__).resolve().parents[2]
GRAPH_YAMLS = sorted(p for p in (ROOT / "config").glob("*.yaml") if p.name != "learner.yaml")


def _declared_by_source(module_name: str) -> set:
    """Parameter names a node module declares: declare_parameter("x") / p("x") literals and
    declare_dataclass(self, Cls, "prefix") expanded through the dataclass."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if func in ("declare_parameter", "p") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(node.args[0].value)
        elif func == "declare_dataclass" and len(node.args) >= 2:
            cls = eval(compile(ast.Expression(node.args[1]), "<cls>", "eval"), vars(module))
            prefix = node.args[2].value if len(node.args) > 2 else ""
            names |= set(field_names(cls, prefix))
    if "qos" in vars(module):
        names.add("reliable_sensors")   # resrl.ros.qos.sensor() declares it
    return names


def _node_modules():
    """Node name -> module, from the graphs launch starts."""
    out = {}
    for graph, (make, _) in GRAPHS.items():
        for spec in make(**default_args(graph)):
            out[spec.name] = f"resrl.nodes.{spec.executable}"
    return out


def _reads(node: str, module: str) -> set:
    if node in NODE_CONFIGS:
        learner = {f"learner.{f.name}" for f in dataclasses.fields(LearnerConfig)} | {"learner.enabled"} \
            if node == "replay_learner" else set()
        return set(field_names(SharedConfig)) | set(field_names(NODE_CONFIGS[node][""])) | learner | \
            {"use_sim_time", "task"}
    return _declared_by_source(module)


@pytest.mark.parametrize("path", GRAPH_YAMLS, ids=lambda p: p.name)
def test_every_graph_yaml_key_reaches_a_field_a_node_reads(path):
    sections = graph_yaml(path)
    modules = _node_modules()
    launched = {spec.name for spec in GRAPHS[path.stem][0](**default_args(path.stem))}
    assert set(sections) - {"/**"} <= launched, f"{path.name}: sections for nodes the graph does not start"
    reads = {node: _reads(node, modules[node]) for node in launched}
    for key in sections.get("/**", {}):
        readers = [n for n in launched if key in reads[n]]
        assert readers, f"{path.name}: /** key {key!r} is read by no node"
    for node, params in sections.items():
        if node == "/**":
            continue
        unread = sorted(set(params) - reads[node])
        assert not unread, f"{path.name}: {node} keys that reach nothing: {unread}"
        if node in NODE_CONFIGS:   # and they build the typed config (types, ranges)
            shared, own = split(node_params(path, node), node)
            if node == "replay_learner":
                learner_overrides(own)


def test_learner_yaml_keys_are_fields_and_exploration_lives_in_one_place():
    learner_cfg, algo_cfgs = load_configs(ROOT / "config" / "learner.yaml")   # unknown keys raise
    raw = yaml.safe_load((ROOT / "config" / "learner.yaml").read_text())
    assert set(raw) == {"learner", *ALGORITHMS}
    # The nodes explore with the residual node's exploration_noise; agent.explore is unused there.
    for algo in ALGORITHMS:
        assert not {"explore_std", "explore_clip"} & set(raw[algo]), algo


def test_unknown_keys_are_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("vgm_arbiter:\n  ros__parameters:\n    vgm.kapa: 0.5\n")
    with pytest.raises(ConfigError, match="kapa"):
        split(node_params(bad, "vgm_arbiter"), "vgm_arbiter")
    bad.write_text("replay_learner:\n  ros__parameters:\n    learner.batchsize: 5\n")
    with pytest.raises(ConfigError, match="batchsize"):
        learner_overrides(split(node_params(bad, "replay_learner"), "replay_learner")[1])
    with pytest.raises(ConfigError, match="kappa"):
        build(SharedConfig, {"kappa": 1.0})


def test_one_name_per_setting():
    """The arbiter mode is vgm.mode only (the arbiter once declared `mode` and `vgm.mode`)."""
    from resrl.node_config import ArbiterNodeConfig, LearnerNodeConfig, ResidualNodeConfig
    for cls in (ArbiterNodeConfig, ResidualNodeConfig, LearnerNodeConfig):
        names = set(field_names(cls))
        assert not names & set(field_names(SharedConfig)), cls.__name__
        assert "mode" not in names
    for graph, (make, _) in GRAPHS.items():
        for spec in make(**default_args(graph)):
            assert "mode" not in spec.overrides, (graph, spec.name)
    assert not (ROOT / "config" / "arbiter.yaml").exists()   # loaded by nothing: gone


def test_one_gate_constant_reaches_both_runners(tmp_path):
    """Change one gate constant in one YAML file: the arbiter node and the in-process runner use it."""
    import rclpy

    from resrl.nodes.vgm_arbiter_node import VGMArbiterNode
    from resrl.sim.inprocess import InProcessConfig, InProcessSession
    data = yaml.safe_load((ROOT / "config" / "sim_vgm.yaml").read_text())
    data["vgm_arbiter"]["ros__parameters"]["vgm.kappa"] = 0.75
    data["/**"]["ros__parameters"]["safety"] = {"max_step_translation": 0.04}
    data["replay_learner"]["ros__parameters"]["replay.n_step"] = 2
    path = tmp_path / "sim_vgm.yaml"
    path.write_text(yaml.safe_dump(data))

    graph = load_graph(path)
    assert graph.arbiter.vgm.kappa == 0.75 and graph.shared.safety.max_step_translation == 0.04
    session = InProcessSession(InProcessConfig(graph_yaml=str(path), session={"num_demos": 0}), log=lambda s: None)
    assert session.control.vgm.config.kappa == 0.75
    assert session.control.safety.config.max_step_translation == 0.04
    assert session.online.n_step == 2 and session.offline.gamma == graph.learner.replay.gamma == 0.97

    rclpy.init(args=["--ros-args", "--params-file", str(path)])
    try:
        node = VGMArbiterNode()
        try:
            assert node.control.vgm.config.kappa == 0.75
            assert node.control.safety.config.max_step_translation == 0.04
            assert node.get_parameter("vgm.kappa").value == 0.75 and not node.has_parameter("mode")
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_declare_dataclass_and_the_loader_agree_on_names():
    """What a node declares (declare_dataclass) is exactly what the loader accepts (field_names)."""
    declared = []

    class Recorder:
        def declare_parameter(self, name, value):
            declared.append(name)
            return type("P", (), {"value": value})()

    for cls in (SharedConfig, *[c[""] for c in NODE_CONFIGS.values()]):
        declared.clear()
        declare_dataclass(Recorder(), cls)
        assert sorted(declared) == sorted(field_names(cls)), cls.__name__


# What each node declared by hand before it declared a dataclass from resrl.node_config (issue 12),
# copied literally from that code, plus the names it already took from a dataclass then (those
# dataclasses did not change). The conversion renamed nothing: the declared set is the same.
_TRACKER_NOISE = [f"tracker.noise.{f}" for f in
                  ("max_pos_noise_m", "max_rot_noise_rad", "dropout_prob", "dropout_steps", "lost_confidence")]
HAND_DECLARED = {
    "resrl.nodes.sim_robot_node": {
        "lockstep", "lockstep_timeout_s", "frame_id", "camera_frame", "seed", "obs_mode", "render",
        "camera_size", "task", "control_rate_hz", "scripted_expert"},
    "resrl.nodes.bag_recorder_node": {"run_dir", "bag_path", "storage", "flush_period_s", "topics"},
    "resrl.nodes.reward_classifier_node": {
        "classifier.model_path", "classifier.threshold", "classifier.consecutive", "classifier.override_window_s",
        "model.num_objects", "model.conf_threshold", "max_skew_ms"},
    "resrl.nodes.pose_tracker_node": {
        "tracker.backend", "tracker.input_topic", *_TRACKER_NOISE, "seed",
        "tracker.detection.topic", "tracker.detection.object_ids", "tracker.detection.camera_pose_in_base",
        "tracker.detection.base_frame",
        "tracker.foundationpose.repo_dir", "tracker.foundationpose.mesh_file", "tracker.foundationpose.sam2_config",
        "tracker.foundationpose.sam2_checkpoint", "tracker.foundationpose.prompt_box",
        "tracker.foundationpose.depth_scale", "max_skew_ms"},
    # (+ the per-device "<device>.<field>" names, still declared in a loop over the devices opened)
    "resrl.nodes.keyboard_node": {
        "control_rate_hz", "devices", "spacemouse_twist_topic", "spacemouse_joy_topic", "gamepad_joy_topic",
        "console", *[f"teleop.{f}" for f in ("step_m", "success_reward", "max_linear_speed", "max_angular_speed",
                                              "max_lead_m", "deadzone", "input_timeout_s", "operator_yaw_deg")]},
    "resrl.nodes.robot_bridge_node": {"robot", "control_rate_hz", "require_gripper_state"},
}


def _old_dataclass_names(module: str) -> set:
    if module != "resrl.nodes.robot_bridge_node":
        return set()
    from resrl.robots import franka, ur
    from resrl.robots.common import BridgeConfig
    return set(field_names(BridgeConfig, "bridge")) | set(field_names(franka.FrankaConfig, "franka")) | \
        set(field_names(ur.URConfig, "ur"))


def _literal_declarations(module_name: str) -> list:
    tree = ast.parse(Path(importlib.import_module(module_name).__file__).read_text())
    return [n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
            and isinstance(n.args[0], ast.Constant)
            and (n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")) in
            ("declare_parameter", "p")]


@pytest.mark.parametrize("module", sorted(HAND_DECLARED), ids=lambda m: m.rsplit(".", 1)[1])
def test_converted_nodes_declare_exactly_the_names_they_declared_by_hand(module):
    old = HAND_DECLARED[module] | _old_dataclass_names(module) | {"reliable_sensors"}   # qos.sensor()
    assert _declared_by_source(module) == old
    assert not _literal_declarations(module), "declared by hand again: put it in resrl.node_config"


def test_converted_node_configs_declare_their_names_types_and_derived_defaults():
    """Through rclpy: the names declare_dataclass declares are field_names', the types are the old
    ones (render stays BOOL with its obs_mode-derived default, an empty string list stays a
    STRING_ARRAY), and overrides still win."""
    import rclpy
    from rclpy.parameter import Parameter

    from resrl.node_config import (BagRecorderNodeConfig, KeyboardNodeConfig, PoseTrackerNodeConfig,
                                   RewardClassifierNodeConfig, RobotBridgeNodeConfig, SimRobotNodeConfig)
    classes = (SimRobotNodeConfig, BagRecorderNodeConfig, RewardClassifierNodeConfig, PoseTrackerNodeConfig,
               KeyboardNodeConfig, RobotBridgeNodeConfig)
    context = rclpy.Context()
    rclpy.init(context=context)
    made = []

    def declare(cls, **overrides):
        node = rclpy.create_node(f"config_tree_{len(made)}", context=context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        made.append(node)
        builtin = set(node._parameters)   # use_sim_time, start_type_description_service, ...
        cfg = declare_dataclass(node, cls)
        node.declared = set(node._parameters) - builtin
        return node, cfg

    try:
        for cls in classes:
            node, cfg = declare(cls)
            assert node.declared == set(field_names(cls)), cls.__name__
            assert cfg == cls(), cls.__name__    # unset: the dataclass defaults
        node, cfg = declare(SimRobotNodeConfig)
        assert cfg.render is False and node.get_parameter("render").type_ == Parameter.Type.BOOL
        assert declare(SimRobotNodeConfig, obs_mode="image")[1].render is True
        assert declare(SimRobotNodeConfig, obs_mode="image", render=False)[1].render is False
        assert declare(SimRobotNodeConfig, render=True)[1].render is True
        node, cfg = declare(PoseTrackerNodeConfig)
        assert cfg.tracker.detection.object_ids == ()
        assert node.describe_parameter("tracker.detection.object_ids").type == Parameter.Type.STRING_ARRAY.value
        node, cfg = declare(PoseTrackerNodeConfig, **{"tracker.detection.object_ids": ["cube", "target"]})
        assert cfg.tracker.detection.object_ids == ("cube", "target")
        node, cfg = declare(KeyboardNodeConfig, devices=["gamepad"])
        assert cfg.devices == ("gamepad",) and isinstance(cfg.teleop.step_m, float)
    finally:
        for node in made:
            node.destroy_node()
        rclpy.shutdown(context=context)
