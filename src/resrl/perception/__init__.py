"""Perception for the residual: relative depth (Depth-Anything-V2 or sensor), pose tracking."""
