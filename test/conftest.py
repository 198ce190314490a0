"""Test-wide environment: DDS stays on loopback, each pytest process gets a ROS domain of its own."""
import fcntl
import os
import random

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")

# Fast DDS on Linux: domains 0-101 keep their ports below the ephemeral range. 0 is everyone's
# default and 42 is scripts/env.sh's, so a developer's running graph never meets the tests.
_DOMAIN_CANDIDATES = [d for d in range(1, 102) if d != 42]
_domain_lock = None  # held open for the life of this process: the domain is ours until we exit


def _claim_domain() -> int:
    """Claim a domain no other pytest process on this machine holds (an flock per domain id)."""
    global _domain_lock
    order = list(_DOMAIN_CANDIDATES)
    random.Random(os.getpid()).shuffle(order)
    for domain in order:
        fd = os.open(f"/tmp/resrl-ros-domain-{domain}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _domain_lock = fd
        return domain
    raise RuntimeError("every ROS domain 1-101 is held by another test process on this machine")


if "RESRL_TEST_DOMAIN_FIXED" not in os.environ:
    os.environ["ROS_DOMAIN_ID"] = str(_claim_domain())
os.environ.setdefault("MUJOCO_GL", "osmesa")
