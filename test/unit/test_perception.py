"""Relative depth from sensor depth, resizing, and the simulated pose tracker (ROS-free)."""
import numpy as np
import pytest

from resrl.geometry import quat_to_rotvec, rotvec_to_quat
from resrl.perception.depth import SensorRelativeDepth, make_depth_source, resize_area, resize_nearest
from resrl.perception.pose_tracking import SimulatedTracker, SimulatedTrackers, TrackerNoiseConfig


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


def test_simulated_trackers_keep_an_independent_track_per_object():
    cube, zone = np.array([0.5, 0.1, 0.02, 0, 0, 0, 1.0]), np.array([0.45, -0.1, 0.0, 0, 0, 0, 1.0])
    cfg = TrackerNoiseConfig(max_pos_noise_m=0.004, dropout_prob=0.3, dropout_steps=2)
    trackers = SimulatedTrackers(cfg, seed=11)
    alone = SimulatedTracker(cfg, seed=11)       # the first object keeps the single tracker's stream
    for _ in range(30):
        a, b = trackers.track("cube", cube), alone.track(cube)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]
        pose, conf, valid = trackers.track("target_zone", zone)
        assert not valid or np.all(np.abs(pose[:3] - zone[:3]) <= 0.004 + 1e-9)
    assert set(trackers.by_id) == {"cube", "target_zone"}
    assert trackers.by_id["cube"].pos_scale != trackers.by_id["target_zone"].pos_scale   # own noise level


def tiny_depth_anything_config():
    from transformers import DepthAnythingConfig, Dinov2Config
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                               fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative")


def save_tiny_depth_anything(path):
    import torch
    from transformers import DepthAnythingForDepthEstimation
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(tiny_depth_anything_config()).save_pretrained(str(path))
    return path


def test_depth_anything_v2_loads_a_saved_checkpoint_and_reproduces_its_output(tmp_path):
    import torch
    from resrl.perception.depth import DepthAnythingV2
    ckpt = save_tiny_depth_anything(tmp_path / "da_tiny")
    loaded = make_depth_source("depth_anything_v2", str(ckpt), input_size=56)
    rgb = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)
    rel = loaded(rgb, None)
    assert rel.dtype == np.uint8 and rel.shape == (112, 112)
    assert rel.max() == 255 and rel.min() == 0            # per-frame normalised relative depth
    # same weights in memory -> same prediction: the checkpoint was really loaded, not re-initialised
    reference = DepthAnythingV2(config=tiny_depth_anything_config(), input_size=56)
    reference.model.load_state_dict(loaded.model.state_dict())
    np.testing.assert_array_equal(reference(rgb), rel)
    fresh = DepthAnythingV2(config=tiny_depth_anything_config(), input_size=56)
    assert any(not torch.equal(a, b) for a, b in zip(fresh.model.state_dict().values(),
                                                     loaded.model.state_dict().values()))
    # a non-square camera frame yields the model-resolution map (the node resizes it)
    assert loaded(rgb[:, :100], None).shape == (56, 56)
    with pytest.raises(FileNotFoundError, match="config.json"):
        make_depth_source("depth_anything_v2", str(tmp_path / "missing"))


def test_pose_transforms_round_trip():
    from resrl.perception.transforms import matrix_to_pose, pose_to_matrix
    pose = np.concatenate([[0.1, -0.2, 0.3], rotvec_to_quat([0.3, -1.2, 2.9])])
    np.testing.assert_allclose(matrix_to_pose(pose_to_matrix(pose)), pose, atol=1e-12)
    t = pose_to_matrix(pose)
    np.testing.assert_allclose(t[:3, :3] @ t[:3, :3].T, np.eye(3), atol=1e-12)
    with pytest.raises(ValueError):
        pose_to_matrix([0, 0, 0, 0, 0, 0, 0])


def test_detections_map_to_object_slots_in_the_base_frame():
    from resrl.perception.pose_tracking import DetectionTrackerConfig, detections_to_objects
    # camera 1 m above the base, looking straight down (optical z = -base z, x kept)
    cam = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0)
    cfg = DetectionTrackerConfig(object_ids=("cube", "bowl", "mug"), camera_pose_in_base=cam)
    dets = [("0", [("cube", 0.4, [0.1, 0.2, 0.9, 0, 0, 0, 1]), ("cube", 0.9, [0.1, 0.2, 0.8, 0, 0, 0, 1])]),
            ("1", [("bowl", 0.3, [0.0, 0.0, 0.7, 0, 0, 0, 1])]),
            ("2", [("spoon", 1.0, [0.0, 0.0, 0.5, 0, 0, 0, 1])])]
    out = detections_to_objects(dets, cfg)
    assert [o[0] for o in out] == ["cube", "bowl", "mug"]
    cube, bowl, mug = out
    np.testing.assert_allclose(cube[1][:3], [0.1, -0.2, 0.2], atol=1e-6)   # best score (0.9) wins
    assert cube[2] == pytest.approx(0.9) and cube[3]
    np.testing.assert_allclose(np.abs(cube[1][3:]), [1, 0, 0, 0], atol=1e-6)  # object axes as seen from above
    assert bowl[2] == pytest.approx(0.3) and bowl[3]                   # consumers zero it below threshold
    assert not mug[3] and mug[2] == 0.0 and not mug[1].any()           # not detected: invalid, zero pose
    # no configured ids: the detections in arrival order; a bad quaternion is invalid, not a crash
    free = detections_to_objects([("7", [("", 0.8, [0, 0, 0.5, 0, 0, 0, 0])])], DetectionTrackerConfig())
    assert free[0][0] == "7" and not free[0][3]
    with pytest.raises(ValueError):
        DetectionTrackerConfig(camera_pose_in_base=(0, 0, 0))


def test_foundationpose_backend_names_what_is_missing(tmp_path):
    from resrl.perception.foundationpose import FoundationPoseSAM2
    repo, mesh, sam2 = tmp_path / "FoundationPose", tmp_path / "cube.obj", tmp_path / "sam2.1_hiera_small.pt"
    repo.mkdir()

    def build():
        return FoundationPoseSAM2(str(repo), str(mesh), "configs/sam2.1/sam2.1_hiera_s.yaml", str(sam2),
                                  prompt_box=[100, 80, 220, 200])
    with pytest.raises(FileNotFoundError, match="estimater.py"):
        build()
    (repo / "estimater.py").write_text("raise ImportError('no CUDA here')\n")
    with pytest.raises(FileNotFoundError, match="weights missing"):
        build()
    (repo / "weights" / "2023-10-28-18-33-37").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="object mesh"):
        build()
    mesh.write_text("v 0 0 0\n")
    with pytest.raises(FileNotFoundError, match="SAM2 checkpoint"):
        build()
    sam2.write_bytes(b"\0")
    with pytest.raises(ImportError, match="FoundationPose could not be imported"):
        build()
