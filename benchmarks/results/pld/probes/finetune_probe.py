"""Why PLD distillation hurt the 39/100 base: re-run the seed-0 fine-tuning with (a) the base's own
normaliser stats and (b) also the rollouts' gripper labels snapped to 0/1 (BENCHMARKS.md, "PLD closed in sim").

    python benchmarks/results/pld/probes/finetune_probe.py --pld-out /tmp/pld/b4k_s0 \\
        --base-run /tmp/pld/d50_s4000 --probe base_stats|snapped_gripper --out /tmp/pld/probe_X --json FILE

--pld-out: the ``resrl.base_policy.pld`` run folder (its dataset/); --base-run: the
``resrl.base_policy.train`` run folder of the base (dataset/ for its stats, train/ for its checkpoint).
The dataset's first ``--base-demos`` episodes are the base's demos; the rest are the rollouts.
"""
import argparse
import glob
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from resrl.base_policy.train import TrainOptions, evaluate, train

ap = argparse.ArgumentParser()
ap.add_argument("--pld-out", required=True)
ap.add_argument("--base-run", required=True)
ap.add_argument("--probe", choices=("base_stats", "snapped_gripper"), required=True)
ap.add_argument("--base-demos", type=int, default=50)
ap.add_argument("--out", required=True)
ap.add_argument("--json", required=True)
args = ap.parse_args()

dataset = Path(args.out) / "dataset"
shutil.copytree(Path(args.pld_out) / "dataset", dataset)
# (a) the base's training-dataset stats: lerobot_train --policy.path then keeps the base's normalisation
shutil.copy(Path(args.base_run) / "dataset" / "meta" / "stats.json", dataset / "meta" / "stats.json")
if args.probe == "snapped_gripper":   # (b) also: the rollouts' gripper command as the demos' open / close
    f = glob.glob(str(dataset / "data" / "chunk-000" / "*.parquet"))[0]
    t = pq.read_table(f)
    act = np.stack(t.column("action").to_pylist()).astype(np.float32)
    rollouts = np.asarray(t.column("episode_index").to_pylist()) >= args.base_demos
    act[rollouts, 6] = (act[rollouts, 6] >= 0.5).astype(np.float32)
    field = t.schema.field("action")
    t = t.set_column(t.schema.get_field_index("action"), field, pa.array(list(act), type=field.type))
    pq.write_table(t, f)
base = Path(args.base_run) / "train" / "checkpoints" / "last" / "pretrained_model"
ckpt, secs, _ = train(dataset, Path(args.out) / "finetune",
                      TrainOptions(steps=1000, lr=1e-4, n_action_steps=8, torch_threads=1), init_from=base)
result = {k: v for k, v in evaluate(ckpt, "pick_place", 100, 8, horizon=16).items() if k != "outcomes"}
result.update(train_seconds=secs, probe=args.probe)
Path(args.json).write_text(json.dumps(result, indent=1))
print(json.dumps({k: result[k] for k in ("success_rate", "failures", "median_final_xy_error_m")}))
