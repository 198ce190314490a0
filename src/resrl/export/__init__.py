"""Dataset exports of resrl data (LeRobotDataset for base-policy fine-tuning: ``resrl.export.lerobot``)."""
