"""Base-policy (VLA) backends that produce action chunks: sim scripted, openpi, LeRobot, replay."""
