"""Human interventions (HiL-ResRL): storage fields, buffer routing and the BC term.

When the operator takes over, the robot executes the human action ``a_human``. The step is
stored like any other transition (the critic learns from it: ``action`` = what was executed),
and its residual target is ``a_human - a_VLA`` -- the correction the residual should have
produced. With ``lambda = 1`` for intervention steps, every stored step satisfies
``action == base_action + lambda * residual``.

Intervention transitions go to BOTH the online buffer (ordinary RL data) and the
demo/intervention buffer (sampled at ``offline_ratio`` like the demos, and used by the BC term).
Demonstrations recorded by teleoperation are interventions for their whole length: store them
with ``intervention=True`` so the actors' BC term applies to them too.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from resrl.actions import as_action

ONLINE = "online"
DEMO = "demo"  # the demo/intervention buffer (offline half of the symmetric sampling)


def residual_target(a_human, a_vla) -> np.ndarray:
    """The residual that would have turned a_VLA into the human's action: a_human - a_VLA."""
    return as_action(a_human, name="a_human") - as_action(a_vla, name="a_vla")


def transition_fields(a_vla, a_res, lam: float, a_human=None) -> dict:
    """Per-step fields for the replay (``action``, ``residual``, ``lambda``, ``intervention``).

    Policy step: executed ``a_VLA + lam * a_res``; ``residual`` = the actor's residual a_res.
    Intervention (``a_human`` given): executed ``a_human``; ``residual = a_human - a_VLA``;
    ``lambda = 1``."""
    a_vla = as_action(a_vla, name="a_vla")
    if a_human is not None:
        a_human = as_action(a_human, name="a_human")
        return {"action": a_human, "residual": a_human - a_vla, "lambda": np.float32(1.0),
                "intervention": True}
    a_res = as_action(a_res, name="a_res")
    lam = np.float32(lam)
    return {"action": (a_vla + lam * a_res).astype(np.float32), "residual": a_res, "lambda": lam,
            "intervention": False}


def route(intervention: bool) -> tuple[str, ...]:
    """Which buffers a transition goes to: interventions to both, everything else online."""
    return (ONLINE, DEMO) if intervention else (ONLINE,)


def bc_loss(pred_residual: Tensor, target_residual: Tensor, mask: Tensor,
            limit: Tensor | None = None) -> Tensor:
    """Masked MSE between the actor's residual and the residual target, averaged over the masked
    samples (0 when none). ``limit`` (xi) clamps the target into the actor's reachable range so a
    large human correction saturates the residual instead of fighting tanh, and measures the error
    in units of xi: raw metres (errors ~1e-2, squared ~1e-4) would vanish next to Q ~ 1."""
    target, err_scale = target_residual, 1.0
    if limit is not None:
        target = torch.maximum(torch.minimum(target, limit), -limit)
        err_scale = limit.clamp(min=1e-6)
    mask = mask.to(pred_residual.dtype)
    per_sample = ((pred_residual - target) / err_scale).pow(2).mean(dim=-1)
    return (per_sample * mask).sum() / mask.sum().clamp(min=1.0)
