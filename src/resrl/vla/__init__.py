"""Base-policy (VLA) backends that produce action chunks: openpi, LeRobot, replay (and the sim
stand-in, resrl.sim.vla_stand_in). ``base``: errors, chunk checks, the registry of typed configs."""
