"""Control-loop latency through the running node graph (real-time mode); prints one JSON object.

    python benchmarks/bench_latency.py [--rate 30] [--seconds 40] [--obs-mode object|image|both] [--compose [NODES]]
        [--executor events|single_threaded|multi_threaded]

Starts the sim_vgm graph with the sim robot on a wall-clock timer (``lockstep: false``) at
``--rate`` Hz, no demos (the residual runs from its zero-initialised weights: the cost of a
forward pass does not depend on the weights), and observes the topics from this process. Every
message of one control step carries the observation's stamp, so per step we take the DDS source
timestamp (the publisher's clock at publish time, same host) of

    obs      the EE pose of step t (what every node waits for)            /franka_robot_state_broadcaster/current_pose
    gt       the sim's object poses of step t (the tracker's input)       /sim/object_poses_gt
    poses    the tracked object poses of step t                           /resrl/object_poses
    color    the camera frame of step t                                   /camera/camera/color/image_raw
    depth    the model-resolution RGB + relative depth of step t (image)  /resrl/obs/depth_relative
    residual the residual action of step t                                /resrl/residual
    command  the arbiter's CommandedAction of step t                      /resrl/command

and reports p50/p99 of: pose tracker (poses - gt), depth node (depth - color), residual node (residual - max(obs, depth)),
arbiter (command - max(obs, residual)) and end to end (command - obs). Source timestamps keep this
observer's own queueing out of the numbers. The learner runs beside the graph in object mode
(it competes for the 2 cores, as in a session); in image mode it is disabled (image learning is
for a GPU machine). Excluded by construction: the depth model (``depth.source: sensor``) and the VLA
(scripted, prefetched); ``--depth-anything`` also times Depth-Anything-V2 (Small architecture,
random weights, built from config) at 224 px in-process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

NODES = ("sim_robot", "camera_depth", "pose_tracker", "vla_chunk_provider", "residual_policy",
         "vgm_arbiter", "replay_learner", "bag_recorder")
# --compose without a value: the nodes a real cell would host in one process (issue 16)
CONTROL_PATH = "camera_depth,pose_tracker,residual_policy,vgm_arbiter"


def _percentiles(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float) * 1e3
    if not len(v):
        return {"n": 0}
    return {"n": int(len(v)), "p50_ms": round(float(np.percentile(v, 50)), 2),
            "p99_ms": round(float(np.percentile(v, 99)), 2), "max_ms": round(float(v.max()), 2)}


def graph_latency(obs_mode: str, rate: float, seconds: float, domain_id: int, train: bool = True,
                  compose: str = "", train_nice: int = 0, train_cpus: str = "", node_executor: str = "events") -> dict:
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image

    from resrl import topics
    from resrl.msg import CommandedAction, EpisodeEvent, ResidualAction, TrackedObjects
    from resrl.ros import qos
    from resrl.ros.convert import stamp_to_ns
    from resrl.ros.spin_thread import SpinThread

    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id))
    params = {n: {"ros__parameters": {"control_rate_hz": float(rate)}} for n in NODES}
    params["sim_robot"]["ros__parameters"].update(lockstep=False)
    params["replay_learner"]["ros__parameters"].update({"session_plan.num_demos": 0,
                                                        "learner.enabled": train and obs_mode == "object",
                                                        "train_nice": train_nice, "train_cpus": train_cpus})
    import yaml
    tmp = Path(tempfile.mkdtemp(prefix="resrl-latency-"))
    extra = tmp / "latency_params.yaml"
    extra.write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "resrl.launch_runner", "sim_vgm", f"obs_mode:={obs_mode}",
           f"run_dir:={tmp / 'run'}", f"extra_params:={extra}", f"compose:={compose}",
           f"executor:={node_executor}"]
    log = open(tmp / "graph.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    seen = defaultdict(dict)          # stamp_ns -> {part: wall receive time}
    lock = threading.Lock()
    rclpy.init()
    node = rclpy.create_node("latency_observer")

    def mark(part):
        def cb(msg, info):   # rclpy passes MessageInfo to two-argument callbacks
            with lock:
                seen[stamp_to_ns(msg.header.stamp)].setdefault(part, info["source_timestamp"] * 1e-9)
        return cb

    sensor = qos.RELIABLE_SENSOR   # sim_vgm.yaml: reliable sensors
    node.create_subscription(PoseStamped, topics.EE_POSE, mark("obs"), sensor)
    node.create_subscription(TrackedObjects, topics.OBJECT_POSES_GT, mark("gt"), sensor)
    node.create_subscription(TrackedObjects, topics.OBJECT_POSES, mark("poses"), sensor)
    node.create_subscription(Image, topics.COLOR_IMAGE, mark("color"), sensor)
    node.create_subscription(Image, topics.OBS_DEPTH, mark("depth"), sensor)
    node.create_subscription(ResidualAction, topics.RESIDUAL, mark("residual"), qos.CONTROL)
    node.create_subscription(CommandedAction, topics.COMMAND, mark("command"), qos.RECORDED)
    terminal = set()   # stamps of episodes' last observations: no action follows them, nothing to command

    def on_event(msg):
        if msg.event in (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.TIMEOUT, EpisodeEvent.ABORT):
            with lock:
                terminal.add(stamp_to_ns(msg.header.stamp))

    node.create_subscription(EpisodeEvent, topics.EPISODE_EVENTS, on_event, qos.EVENTS)
    executor = rclpy.executors.MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = SpinThread(executor).start()
    # Let the graph come up and the first episodes start before measuring.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with lock:
            ready = sum(1 for v in seen.values() if "command" in v) > 10
        if ready:
            break
        time.sleep(0.5)
    with lock:
        seen.clear()
    time.sleep(seconds)
    with lock:
        steps = dict(seen)
        last_steps = set(terminal)
    spinner.stop()
    node.destroy_node()
    rclpy.try_shutdown()
    proc.send_signal(2)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()

    per = defaultdict(list)
    for parts in steps.values():
        obs, cmd_t = parts.get("obs"), parts.get("command")
        if obs is None or cmd_t is None:
            continue
        ready = obs
        if "gt" in parts and "poses" in parts:
            per["pose_tracker_node"].append(parts["poses"] - parts["gt"])
        if obs_mode == "object":
            ready = max(obs, parts.get("poses", obs))
        if obs_mode == "image":
            if "depth" in parts and "color" in parts:
                per["depth_node"].append(parts["depth"] - parts["color"])
            ready = max(obs, parts.get("depth", obs))
        if "residual" in parts:
            per["residual_node"].append(parts["residual"] - ready)
            per["arbiter_node"].append(cmd_t - max(ready, parts["residual"]))
        per["end_to_end"].append(cmd_t - obs)
    complete = sum(1 for p in steps.values() if "obs" in p and "command" in p)
    # Steps that need a command: an observation came, and it was not an episode's last one.
    needing = [t for t, p in steps.items() if "obs" in p and t not in last_steps]
    missed = sum(1 for t in needing if "command" not in steps[t])
    return {"obs_mode": obs_mode, "rate_hz": rate, "seconds": seconds, "compose": compose, "executor": node_executor,
            "train_nice": train_nice, "train_cpus": train_cpus, "steps_observed": len(steps),
            "steps_with_command": complete, "expected_steps": int(rate * seconds),
            "terminal_steps": sum(1 for t in steps if t in last_steps), "steps_needing_command": len(needing),
            "steps_needing_command_missed": missed,
            **{k: _percentiles(v) for k, v in per.items()}, "graph_log": str(tmp / "graph.log")}


def depth_anything_latency(iters: int, threads: int) -> dict:
    import torch
    from transformers import DepthAnythingConfig

    from resrl.perception.depth import DepthAnythingV2
    # Depth-Anything-V2-Small: ViT-S/14 DINOv2 backbone, DPT head (the HF config of
    # depth-anything/Depth-Anything-V2-Small-hf), random weights.
    cfg = DepthAnythingConfig(
        backbone_config={"model_type": "dinov2", "image_size": 518, "patch_size": 14, "hidden_size": 384,
                         "num_attention_heads": 6, "num_hidden_layers": 12, "out_features": ["stage3", "stage6", "stage9", "stage12"],
                         "reshape_hidden_states": False},
        fusion_hidden_size=64, neck_hidden_sizes=[48, 96, 192, 384], reassemble_factors=[4, 2, 1, 0.5],
        head_hidden_size=32, depth_estimation_type="relative")
    model = DepthAnythingV2(input_size=224, config=cfg, threads=threads)
    rgb = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
    for _ in range(3):
        model(rgb)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        model(rgb)
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.model.parameters())
    return {"model": "Depth-Anything-V2-Small architecture (random weights)", "input_px": 224,
            "threads": threads, "params_m": round(params / 1e6, 1), **_percentiles(times),
            "torch": torch.__version__}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--obs-mode", choices=("object", "image", "both"), default="both")
    ap.add_argument("--domain-id", type=int, default=62)
    ap.add_argument("--depth-anything", action="store_true")
    ap.add_argument("--da-iters", type=int, default=10)
    ap.add_argument("--no-training", action="store_true",
                    help="learner idle in object mode too (the loop alone; on a robot the learner has its own GPU host)")
    ap.add_argument("--compose", nargs="?", const=CONTROL_PATH, default="",
                    help=f"host these nodes in one resrl_container process (launch argument compose:=; "
                         f"without a value: {CONTROL_PATH}); default: one process per node")
    ap.add_argument("--train-nice", type=int, default=0,
                    help="the learner's training thread's nice value (parameter train_nice; 0: as the other threads)")
    ap.add_argument("--train-cpus", default="", help="CPUs the training thread may run on (parameter train_cpus)")
    ap.add_argument("--executor", default="events", choices=("events", "single_threaded", "multi_threaded"),
                    help="every node process's rclpy executor (launch argument executor:=; default: the graph's)")
    args = ap.parse_args(argv)
    out = {"cpu_count": os.cpu_count(), "load_avg_before": os.getloadavg()}
    modes = ("object", "image") if args.obs_mode == "both" else (args.obs_mode,)
    out["graph"] = [graph_latency(m, args.rate, args.seconds, args.domain_id + i, not args.no_training, args.compose,
                                  args.train_nice, args.train_cpus, args.executor)
                    for i, m in enumerate(modes)]
    out["learner_training"] = not args.no_training
    if args.depth_anything:
        out["depth_anything_v2"] = [depth_anything_latency(args.da_iters, t) for t in (1, 2)]
    out["load_avg_after"] = os.getloadavg()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
