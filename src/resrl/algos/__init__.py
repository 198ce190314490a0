"""Residual RL algorithms (ROS-free): Cal-QL warm-up, RLPD-style and TD3 online updates, human
interventions, and the ``Learner`` facade used by the learner node.

One file per algorithm; each ``update`` returns a dict of float metrics.
"""
from resrl.algos.calql import CalQL, CalQLConfig
from resrl.algos.common import AgentConfig, random_shift, soft_update, to_torch
from resrl.algos.intervention import DEMO, ONLINE, bc_loss, residual_target, route, transition_fields
from resrl.algos.learner import ALGORITHMS, Learner, LearnerConfig, load_configs, make_agent
from resrl.algos.rlpd import RLPD, RLPDConfig
from resrl.algos.td3 import TD3, TD3Config

__all__ = [
    "ALGORITHMS", "AgentConfig", "CalQL", "CalQLConfig", "DEMO", "Learner", "LearnerConfig",
    "ONLINE", "RLPD", "RLPDConfig", "TD3", "TD3Config", "bc_loss", "load_configs", "make_agent",
    "random_shift", "residual_target", "route", "soft_update", "to_torch",
    "transition_fields",
]
