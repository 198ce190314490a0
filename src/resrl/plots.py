"""Plots of a run folder's metrics.json: learning curve and lambda / gate traces (PNG)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_run(metrics_path: Path, out_dir: Path) -> list:
    data = json.loads(Path(metrics_path).read_text())
    out_dir = Path(out_dir)
    written = []
    eps = [e for e in data["episodes"] if e["kind"] != "demo"]
    fig, ax = plt.subplots(figsize=(7, 4))
    train = [e for e in eps if e["kind"] == "train"]
    if train:
        x = [e["env_steps_total"] for e in train]
        s = np.array([e["success"] for e in train], dtype=float)
        k = min(20, len(s))
        ax.plot(x, np.convolve(s, np.ones(k) / k, mode="full")[:len(s)], label=f"train success (last {k})")
    if data.get("eval_blocks"):
        ex, es, en = zip(*data["eval_blocks"])
        ax.plot(ex, np.array(es) / np.array(en), "o-", label="evaluation: successes / attempted (a block stops at its first failure)")
    ax.set_xlabel("env steps (online)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{data.get('arbiter_mode')} / {data.get('obs_mode')} / {data.get('algo')}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "learning_curve.png", dpi=100)
    plt.close(fig)
    written.append(out_dir / "learning_curve.png")

    traces = data.get("gate_traces") or {}
    if traces:
        fig, axes = plt.subplots(len(traces), 1, figsize=(8, 2.2 * len(traces)), squeeze=False)
        for ax, (name, trace) in zip(axes[:, 0], traces.items()):
            tr = np.asarray(trace, dtype=float).reshape(-1, 5)
            for i, label in enumerate(["lambda", "g_greedy", "g_regress", "g_escape", "V"]):
                ax.plot(tr[:, i], label=label)
            ax.set_title(name, fontsize=9)
            ax.set_ylim(-0.05, 1.6)
        axes[0, 0].legend(ncol=5, fontsize=7)
        axes[-1, 0].set_xlabel("step")
        fig.tight_layout()
        fig.savefig(out_dir / "gate_traces.png", dpi=100)
        plt.close(fig)
        written.append(out_dir / "gate_traces.png")
    return written
