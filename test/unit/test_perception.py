"""Relative depth from sensor depth, resizing, and the simulated pose tracker (ROS-free)."""
import numpy as np
import pytest

from resrl.geometry import quat_to_rotvec, rotvec_to_quat
from resrl.perception.depth import SensorRelativeDepth, make_depth_source, resize_area, resize_nearest
from resrl.perception.pose_tracking import SimulatedTracker, TrackerNoiseConfig


def test_sensor_relative_depth_from_realsense_millimetres():
    mm = np.array([[500, 1000], [0, 2000]], dtype=np.uint16)   # 0 = no return
    rel = SensorRelativeDepth(depth_scale=0.001)(np.zeros((2, 2, 3), np.uint8), mm)
    assert rel.dtype == np.uint8
    assert rel[0, 0] == 255 and rel[1, 1] == 0 and rel[1, 0] == 0   # near bright, far dark, invalid 0
    assert rel[0, 0] > rel[0, 1] > rel[1, 1]
    with pytest.raises(ValueError):
        SensorRelativeDepth()(np.zeros((2, 2, 3), np.uint8), None)
    with pytest.raises(ValueError):
        make_depth_source("lidar")


def test_resizing():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    np.testing.assert_array_equal(resize_nearest(img, 2), [[0, 2], [8, 10]])
    np.testing.assert_array_equal(resize_area(img, 2), [[2, 4], [10, 12]])   # block means, rounded
    rgb = np.zeros((6, 6, 3), np.uint8)
    assert resize_area(rgb, 3).shape == (3, 3, 3) and resize_nearest(rgb, 4).shape == (4, 4, 3)


def test_rotation_helpers_round_trip():
    for rv in ([0.0, 0.0, 0.0], [0.1, -0.2, 0.3], [0.0, 0.0, 3.0]):
        np.testing.assert_allclose(quat_to_rotvec(rotvec_to_quat(rv)), rv, atol=1e-9)
    with pytest.raises(ValueError):
        quat_to_rotvec([0, 0, 0, 0])


def test_simulated_tracker_noise_is_bounded_and_dropouts_report_low_confidence():
    gt = np.array([0.5, 0.1, 0.02, 0, 0, 0, 1.0])
    tracker = SimulatedTracker(TrackerNoiseConfig(max_pos_noise_m=0.004, dropout_prob=0.0), seed=1)
    for _ in range(50):
        pose, conf, valid = tracker.track(gt)
        assert valid and 0.5 <= conf <= 1.0
        assert np.all(np.abs(pose[:3] - gt[:3]) <= tracker.pos_scale + 1e-9) and tracker.pos_scale <= 0.004
    lossy = SimulatedTracker(TrackerNoiseConfig(dropout_prob=1.0, dropout_steps=2, lost_confidence=0.1), seed=0)
    pose, conf, valid = lossy.track(gt)
    assert not valid and conf == pytest.approx(0.1) and not pose.any()
