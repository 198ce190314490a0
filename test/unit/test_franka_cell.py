"""The simulated Franka cell (resrl.sim.franka_cell): the conventions a real cell shows resrl."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from resrl.perception.pose_tracking import DetectionTrackerConfig, detections_to_objects
from resrl.sim.franka_cell import FrankaCell, FrankaCellConfig, scene_camera_pose
from resrl.sim.franka_env import tracked_objects


@pytest.fixture
def cell():
    c = FrankaCell(FrankaCellConfig(task="pick_place", seed=3, control_rate_hz=15.0))
    yield c
    c.env.close()


def test_pose_is_franka_ros2s_hand_pointing_down(cell):
    pose = cell.ee_pose()
    # fr3_hand_tcp pointing down: z along the fingers = base -z (qx = +-1 in franka_ros2's state).
    z_axis = Rotation.from_quat(pose[3:]).apply([0.0, 0.0, 1.0])
    np.testing.assert_allclose(z_axis, [0.0, 0.0, -1.0], atol=1e-3)
    np.testing.assert_allclose(pose[:3], cell.obs["ee_pos"])
    assert cell.finger_positions() == pytest.approx([cell.obs["gripper_width"][0] / 2] * 2)


def test_follows_targets_and_holds_without_one(cell):
    start = cell.ee_pose()
    for _ in range(5):
        cell.step()   # no target yet: it stays where it is
    np.testing.assert_allclose(cell.ee_pose()[:3], start[:3], atol=2e-3)
    goal = start.copy()
    goal[0] += 0.04
    cell.set_target(goal)   # the target, as resrl's bridge sends it in the franka_ros2 convention
    for _ in range(15):
        cell.step()
    np.testing.assert_allclose(cell.ee_pose()[:3], goal[:3], atol=5e-3)
    # The orientation round-trips: the hand still points down, not flipped by the tool offset.
    assert abs(Rotation.from_quat(cell.ee_pose()[3:]).apply([0, 0, 1.0])[2] + 1.0) < 1e-2


def test_gripper_goals_and_scene_reset(cell):
    cell.grasp()
    for _ in range(10):
        cell.step()
    closed = cell.finger_positions()[0]
    cell.move(0.08)
    for _ in range(10):
        cell.step()
    assert cell.finger_positions()[0] > closed + 0.01
    cube = cell.obs["object_poses"].copy()
    seed = cell.reset_scene()
    assert seed == 3001 and cell.target is None and cell.closing == 0.0
    assert not np.allclose(cube[:2], cell.obs["object_poses"][:2])   # the object is placed again


def test_detections_are_in_the_camera_frame_and_the_extrinsic_brings_them_back(cell):
    dets = cell.detections()
    assert [d[0] for d in dets] == ["cube", "target_zone"]
    truth = dict(tracked_objects("pick_place", cell.obs))
    # In the camera's optical frame the cube is in front of the lens (z > 0), not at its base pose.
    assert dets[0][2][2] > 0.3 and not np.allclose(dets[0][2][:3], truth["cube"][:3], atol=0.05)
    cfg = DetectionTrackerConfig(object_ids=("cube",), camera_pose_in_base=scene_camera_pose("pick_place"))
    (object_id, pose, conf, valid), = detections_to_objects([(d[0], [(d[0], d[1], d[2])]) for d in dets], cfg)
    assert (object_id, valid) == ("cube", True) and conf == pytest.approx(0.95)
    np.testing.assert_allclose(pose[:3], truth["cube"][:3], atol=1e-5)


def test_bad_targets_are_refused_and_change_nothing(cell):
    for bad in ([0.5, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0], [np.nan] * 7, [0.5, 0.0, 0.3]):
        with pytest.raises(ValueError, match="7 finite values"):
            cell.set_target(bad)
    assert cell.target is None
    with pytest.raises(ValueError, match="control_rate_hz"):
        FrankaCell(FrankaCellConfig(control_rate_hz=0.0))
