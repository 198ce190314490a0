"""Probe: why does the warm-up residual stop short of the correction? Measures, on frozen
evaluation blocks, how much of the oracle correction (the scripted VLA's -bias, what the demos add)
the residual actually outputs in the place phase, and the success at static lambda 1 and 1.25.

One warm-up per (seed, variant); a variant changes the model (e.g. the residual bound xi) or the
simulated tracker's noise for the demos, the warm-up and the evaluation alike.

    python benchmarks/results/suite/probes/residual_shortfall.py pick_place_stagnation 0,1,2,3,4 \
        default "model.xi=0.05,0.05,0.03,0.05,0.05,0.05,1.0" "model.pose_dropout=0" \
        "tracker.max_pos_noise_m=0;tracker.max_rot_noise_rad=0"

Per (seed, variant) one JSON row: successes per arm, and for static-1's place-phase steps
(|correction| >= 1 cm) the ratio a_res . c / |c|^2 (1 = the whole correction), its spread, and
the share of those steps whose correction needs more than 90 % of the bound xi, and the ratio
where every axis of the correction is below 70 % of xi (where tanh is far from saturating).
"""
import json
import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
import suite  # noqa: E402
from resrl.sim.inprocess import InProcessSession  # noqa: E402
from resrl.sim.scripted import PHASE_PLACE  # noqa: E402


def variant_kwargs(text: str) -> dict:
    """"default" or "section.key=value;section.key=value" (sections of InProcessConfig: model,
    tracker, algo, learner; a comma-separated value is a list)."""
    if text == "default":
        return {}
    out = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not (section and name and value):
            raise ValueError(f"variant {text!r}: default | section.key=value;... (e.g. model.pose_dropout=0)")
        parsed = [float(v) for v in value.split(",")]
        out.setdefault(section, {})[name] = parsed if len(parsed) > 1 else parsed[0]
    return out


def watch_labels(sess: InProcessSession, labels: list):
    """Record (stored residual label = a_human - a_VLA, the expert's oracle correction) at every
    place-phase demo step."""
    act, decide, last = sess.expert.act, sess.control.decide, {}

    def act_hook(raw, info=None):
        step = act(raw, info)
        last["step"] = step
        return step

    def decide_hook(state, obs, a_vla, a_res, human=None):
        d = decide(state, obs, a_vla, a_res, human)
        step = last.pop("step", None)
        if human is not None and step is not None and step.phase == PHASE_PLACE:
            labels.append((np.asarray(d.record.residual[:2]).copy(), step.correction[:2].copy(),
                           {k: np.array(v, copy=True) for k, v in obs.items()}))
        return d
    sess.expert.act, sess.control.decide = act_hook, decide_hook


def projection_ratio(pairs: list) -> np.ndarray:
    """a . c / |c|^2 over the pairs whose correction is at least 1 cm."""
    a, c = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    keep = np.linalg.norm(c, axis=1) >= 0.01
    return np.sum(a[keep] * c[keep], axis=1) / np.sum(c[keep] ** 2, axis=1)


def watch_residual(sess: InProcessSession, steps: list):
    """Record (a_res, oracle correction) at every place-phase step the residual acts in."""
    last = {}
    observe, residual = sess._observe, sess._residual

    def observe_hook(raw, a_vla=None):
        last["raw"] = raw
        return observe(raw, a_vla)

    def residual_hook(obs, explore):
        a_res = residual(obs, explore)
        vla = sess.expert.vla
        xy = np.asarray(obs["state"][:2], np.float64)
        moved = float(np.linalg.norm(xy - last.get("xy", xy)))   # EE travel since the last step
        last["xy"] = xy
        if vla.phase(last["raw"]) == PHASE_PLACE:
            steps.append((a_res[:2].copy(), vla.oracle_correction(last["raw"])[:2], moved))
        return a_res
    sess._observe, sess._residual = observe_hook, residual_hook


task, seeds, variants = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3:]
for variant in variants:
    kwargs = variant_kwargs(variant)
    for seed in seeds:
        t0 = time.monotonic()
        labels = []
        sess = suite._warmed_up(task, seed, prepare=lambda s: watch_labels(s, labels), **kwargs)
        sess.expert.act, sess.control.decide = type(sess.expert).act.__get__(sess.expert), \
            type(sess.control).decide.__get__(sess.control)
        xi = np.asarray(sess.model_cfg.xi[:2])
        label_ratio = projection_ratio(labels)
        # The warmed-up residual on the demos' own place-phase states: fit (1) or not, where it was taught.
        fit_ratio = projection_ratio([(sess._residual(obs, False)[:2], c) for _, c, obs in labels])
        row = {"task": task, "seed": seed, "variant": variant, "warmup_s": round(time.monotonic() - t0),
               "demo_label_ratio": round(float(label_ratio.mean()), 3),
               "demo_label_ratio_p10_p90": [round(float(q), 3) for q in np.percentile(label_ratio, [10, 90])],
               "ratio_on_demo_states": round(float(fit_ratio.mean()), 3),
               "ratio_on_demo_states_p10_p90": [round(float(q), 3) for q in np.percentile(fit_ratio, [10, 90])]}
        for arm in ("static-1", "static-1.25"):
            steps = []
            watch_residual(sess, steps)
            suite._configure(sess, task, arm, seed)
            row[arm] = suite._block(sess, seed, keep_trace=False)["successes"]
            sess._observe, sess._residual = type(sess)._observe.__get__(sess), type(sess)._residual.__get__(sess)
            a, c = np.array([s[0] for s in steps]), np.array([s[1] for s in steps])
            keep = np.linalg.norm(c, axis=1) >= 0.01
            a, c, moved = a[keep], c[keep], np.array([s[2] for s in steps])[keep]
            ratio = projection_ratio(list(zip(a, c)))
            still = moved < 0.001   # the arm hovering (< 1 mm per step): where a stalled episode spends its time
            if arm == "static-1.25":   # the states a residual scaled up visits: nearer the demos' own
                row["ratio_mean_at_1.25"] = round(float(ratio.mean()), 3)
                row["hovering_share_at_1.25"] = round(float(still.mean()), 3)
                continue
            row.update(place_steps=int(keep.sum()), ratio_mean=round(float(ratio.mean()), 3),
                       ratio_p10_p90=[round(float(q), 3) for q in np.percentile(ratio, [10, 90])],
                       near_bound_share=round(float(np.mean(np.any(np.abs(c) > 0.9 * xi, axis=1))), 3),
                       ratio_far_from_bound=round(float(ratio[np.all(np.abs(c) < 0.7 * xi, axis=1)].mean()), 3),
                       shortfall_mm=round(1000 * float(np.mean(np.linalg.norm(c - a, axis=1))), 2),
                       hovering_share=round(float(still.mean()), 3),
                       ratio_hovering=round(float(ratio[still].mean()), 3) if still.any() else None,
                       ratio_moving=round(float(ratio[~still].mean()), 3) if (~still).any() else None)
        row["wall_s"] = round(time.monotonic() - t0)
        print(json.dumps(row), flush=True)
