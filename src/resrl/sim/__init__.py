"""MuJoCo table-top simulation for resrl (ROS-free): a Franka-Panda-like arm, pick_lift /
pick_place tasks, a scripted VLA stand-in with last-mile biases, its oracle correction, a
scripted expert, and depth helpers. Importing this package needs ``mujoco``; rendering needs an
OpenGL backend (``MUJOCO_GL=osmesa`` headless, or ``egl``).
"""
from resrl.perception.depth import metric_to_relative_depth, sensor_depth_to_uint16_mm
from resrl.sim.franka_env import JOINT_NAMES, TASKS, FrankaTableEnv, SimConfig, check_success, tracked_objects
from resrl.sim.scripted import (ChunkRunner, ExpertConfig, ExpertStep, ScriptedExpert, ScriptedVLA,
                                ScriptedVLAConfig, TaskConfig, load_task_config, oracle_correction, run_episode,
                                success_rate)

__all__ = [
    "FrankaTableEnv", "SimConfig", "TASKS", "JOINT_NAMES", "check_success", "tracked_objects",
    "ScriptedVLA", "ScriptedVLAConfig", "ScriptedExpert", "ExpertConfig", "ExpertStep",
    "TaskConfig", "load_task_config", "oracle_correction", "run_episode", "success_rate", "ChunkRunner",
    "metric_to_relative_depth", "sensor_depth_to_uint16_mm",
]
