"""Test-wide environment: DDS stays on loopback, each test session gets its own ROS domain."""
import os
import random

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
if "RESRL_TEST_DOMAIN_FIXED" not in os.environ:
    # Parallel CI jobs or a developer's running graph must not cross-talk with the tests.
    os.environ["ROS_DOMAIN_ID"] = str(random.Random(os.getpid()).randint(50, 99))
os.environ.setdefault("MUJOCO_GL", "osmesa")
