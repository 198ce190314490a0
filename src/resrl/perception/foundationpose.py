"""FoundationPose + SAM2 in-process: model-based 6-D pose of one object from RGB-D.

SAM2 segments the object from a box prompt on the first frame (and after ``reset``), FoundationPose
registers the object mesh in that mask, then tracks it frame to frame (``track_one``), as in
FoundationPose's ``run_demo.py``. Neither is a pip package with weights: FoundationPose is its
repository checkout (``estimater.py`` + ``weights/``, CUDA, nvdiffrast, trimesh) and SAM2 is the
``sam2`` package with a checkpoint file. Everything is imported when the tracker is built, and a
missing piece raises an error that names it; no part is replaced by anything else.

Confidence: SAM2's predicted IoU of the registration mask (FoundationPose's tracker reports no
score of its own); a mask smaller than ``min_mask_pixels`` is reported invalid and registration is
retried on the next frame.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

from resrl.perception.transforms import matrix_to_pose


class FoundationPoseSAM2:
    def __init__(self, foundationpose_dir: str, mesh_file: str, sam2_config: str, sam2_checkpoint: str,
                 prompt_box: Sequence[float], register_iterations: int = 5, track_iterations: int = 2,
                 min_mask_pixels: int = 100, device: str = "cuda"):
        repo = Path(foundationpose_dir)
        if not (repo / "estimater.py").is_file():
            raise FileNotFoundError(f"FoundationPose checkout '{repo}' has no estimater.py "
                                    "(clone NVlabs/FoundationPose and pass its directory)")
        if not (repo / "weights").is_dir() or not any((repo / "weights").iterdir()):
            raise FileNotFoundError(f"FoundationPose weights missing: '{repo / 'weights'}' must hold the "
                                    "refiner and scorer checkpoints (see FoundationPose's README)")
        for what, path in (("object mesh", mesh_file), ("SAM2 checkpoint", sam2_checkpoint)):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{what} '{path}' not found")
        if len(prompt_box) != 4:
            raise ValueError(f"prompt_box must be [x0, y0, x1, y1] pixels, got {list(prompt_box)}")
        sys.path.insert(0, str(repo))
        try:
            import nvdiffrast.torch as dr
            import trimesh
            from estimater import FoundationPose, PoseRefinePredictor, ScorePredictor
        except ImportError as exc:
            raise ImportError(f"FoundationPose could not be imported from '{repo}' ({exc}); it needs CUDA, "
                              "nvdiffrast and the packages of its requirements.txt") from exc
        try:
            from sam2.build_sam import build_sam2
            from sam2.sam2_image_predictor import SAM2ImagePredictor
        except ImportError as exc:
            raise ImportError(f"SAM2 is not installed ({exc}): pip install from facebookresearch/sam2") from exc
        mesh = trimesh.load(mesh_file)
        self.estimator = FoundationPose(model_pts=mesh.vertices, model_normals=mesh.vertex_normals, mesh=mesh,
                                        scorer=ScorePredictor(), refiner=PoseRefinePredictor(),
                                        glctx=dr.RasterizeCudaContext(), debug=0,
                                        debug_dir=tempfile.mkdtemp(prefix="foundationpose-"))
        self.segmenter = SAM2ImagePredictor(build_sam2(sam2_config, sam2_checkpoint, device=device))
        self.prompt_box = np.asarray(prompt_box, dtype=np.float32)
        self.register_iterations, self.track_iterations = register_iterations, track_iterations
        self.min_mask_pixels = min_mask_pixels
        self.reset()

    def reset(self) -> None:
        """Segment and register again on the next frame (new episode, or the track was lost)."""
        self.registered = False
        self.confidence = 0.0

    def track(self, rgb: np.ndarray, depth_m: np.ndarray, k: np.ndarray) -> Tuple[np.ndarray, float, bool]:
        """RGB (H, W, 3) uint8, metric depth (H, W) in m (0 / NaN = no return), intrinsics 3x3 ->
        (object pose [x y z qx qy qz qw] in the camera frame, confidence, valid)."""
        depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float32), nan=0.0)
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        if not self.registered:
            self.segmenter.set_image(rgb)
            masks, scores, _ = self.segmenter.predict(box=self.prompt_box, multimask_output=False)
            mask = np.asarray(masks[0]).astype(bool)
            if mask.sum() < self.min_mask_pixels:
                return np.zeros(7, dtype=np.float32), 0.0, False
            pose = self.estimator.register(K=k, rgb=rgb, depth=depth, ob_mask=mask,
                                           iteration=self.register_iterations)
            self.registered, self.confidence = True, float(np.clip(scores[0], 0.0, 1.0))
        else:
            pose = self.estimator.track_one(rgb=rgb, depth=depth, K=k, iteration=self.track_iterations)
        pose = np.asarray(pose, dtype=np.float64).reshape(4, 4)
        if not np.all(np.isfinite(pose)):
            self.reset()
            return np.zeros(7, dtype=np.float32), 0.0, False
        return matrix_to_pose(pose).astype(np.float32), self.confidence, True
