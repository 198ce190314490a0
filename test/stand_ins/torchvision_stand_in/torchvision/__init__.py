"""Stand-in for torchvision in test_export_lerobot only (never on the default path).

lerobot's dataset code imports torchvision at module level but, for a LeRobotDataset without
image transforms, uses only ``transforms.ToTensor``. PyPI's torchvision wheels for torch 2.13 are
CUDA builds whose operators do not load beside the CPU torch, and the CPU wheel lives on the
PyTorch index this machine cannot reach; so the loader test supplies this.
"""
from . import transforms  # noqa: F401
