"""The learner node's bag mode: ``offline_bags`` rebuilds rosbag2 sessions into its replay at start."""
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from resrl.replay import ReplayBuffer
from rosutil import install_prefix, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_bags import Session  # noqa: E402  (the synthetic session with known transitions)


def test_learner_loads_bags_into_its_replay(tmp_path):
    session = Session(seed=3)
    session.write(tmp_path / "bag").close()
    run_dir = tmp_path / "run"
    share = install_prefix() / "share" / "resrl"
    cmd = [str(install_prefix() / "lib" / "resrl" / "learner_node"), "--ros-args",
           "--params-file", str(share / "config" / "sim_vgm.yaml"),
           "-p", f"run_dir:={run_dir}", "-p", "session:=manual", "-p", "replay.n_step:=1",
           "-p", f"offline_bags:={tmp_path / 'bag'},{tmp_path / 'missing_bag'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        # The bags are ingested while the node is built; "learner up" comes after.
        assert wait_for(lambda: any("learner up" in line for line in lines) or proc.poll() is not None, 60), \
            "".join(lines)
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)   # final checkpoint + plots; slow when a loaded 2-core box is busy
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "offline bag skipped" in out and "missing_bag" in out      # a bad path is named, the rest loads
    online = ReplayBuffer.load(run_dir / "replay" / "online", 1000)
    demos = ReplayBuffer.load(run_dir / "replay" / "demos", 1000)
    assert sorted(ep.meta["episode_id"] for ep in online.episodes()) == [2, 5]   # eval 3 is not stored
    assert sorted(ep.meta["episode_id"] for ep in demos.episodes()) == [1, 2, 5]
    truth = session.truth[2]
    ep = next(ep for ep in online.episodes() if ep.meta["episode_id"] == 2)
    np.testing.assert_array_equal(ep.action, np.stack(truth["action"]))
