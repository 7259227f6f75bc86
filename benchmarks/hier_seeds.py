"""Hierarchical movie model on the embedded data over several seeds: does each pre-training help?

Runs ``recipes/hierarchical_movie.yaml`` once per seed (``run.seed``: the backbone's and the
contextualizer's initialisation and pre-training, the heads and the batch order; the data are
the same) with the ablation's rows {random-init, contrastive} x {none, mask prediction}, and
prints per seed and on average:

* verb Acc@1, contrastive vs random-init backbone (no contextualizer);
* verb Acc@1 on the context-dependent verbs (ambiguous from their own 2 s) and event-relation
  accuracies, mask-prediction contextualizer vs none (contrastive backbone);
* the wall time of each run.

    python benchmarks/hier_seeds.py                     # seeds 0 1 2, runs under runs/hier_seeds/
    python benchmarks/hier_seeds.py --seeds 0 --scratch # adds the scratch-contextualizer control row

The dataset and its frames are cached, so only the first run decodes.  Not a test: it trains.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, out: Path, scratch: bool) -> tuple[list[dict], float]:
    from moviekit import load_recipe, run_recipe

    kinds = ["none", "mask", "scratch"] if scratch else ["none", "mask"]
    overrides = [f"run.seed={seed}", f"tasks[5].seeds=[{seed}]", f"tasks[5].contextualizers={json.dumps(kinds)}"]
    resolved = load_recipe(ROOT / "recipes" / "hierarchical_movie.yaml", overrides)
    t0 = time.perf_counter()
    run_recipe(resolved, output=out / f"seed{seed}")
    rows = json.loads((out / f"seed{seed}" / "ablation.json").read_text())
    return rows, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "hier_seeds")
    ap.add_argument("--scratch", action="store_true", help="also the same transformer trained from scratch with the heads")
    args = ap.parse_args()
    keys = [("verb_acc1", "verb Acc@1"), ("verb_acc1_context_dependent", "Acc@1 ctx-dep"), ("verb_acc1_other", "Acc@1 other"),
            ("relation_top1", "rel top1"), ("relation_mean_class", "rel mean"), ("role_cider", "CIDEr")]  # fmt: skip
    table: dict[tuple[str, str], list[dict]] = {}
    for seed in args.seeds:
        rows, seconds = run_seed(seed, args.out, args.scratch)
        print(f"seed {seed}: {seconds:.0f} s")
        for r in rows:
            table.setdefault((r["pre-training"], r["contextualizer"]), []).append(r)
            print(
                "  "
                + f"{r['pre-training']:>12} / {r['contextualizer']:<8}"
                + "".join(f" {name} {r.get(k, float('nan')):5.1f}" for k, name in keys)
            )
    print(f"\nmean over seeds {args.seeds}:")
    mean = {}
    for (bb, ctx), rs in table.items():
        mean[(bb, ctx)] = {k: sum(r.get(k, float("nan")) for r in rs) / len(rs) for k, _ in keys}
        print("  " + f"{bb:>12} / {ctx:<8}" + "".join(f" {name} {mean[(bb, ctx)][k]:5.1f}" for k, name in keys))
    if ("contrastive", "none") in mean and ("random", "none") in mean:
        c, r = mean[("contrastive", "none")], mean[("random", "none")]
        print(
            f"\ncontrastive vs random-init backbone, verb Acc@1: {c['verb_acc1']:.1f} vs {r['verb_acc1']:.1f} ({c['verb_acc1'] - r['verb_acc1']:+.1f})"
        )
    if ("labels", "mask") in mean and ("labels", "none") in mean:
        m, n = mean[("labels", "mask")], mean[("labels", "none")]
        for k, name in keys[:5]:
            print(f"supervised-control backbone, mask prediction vs none, {name}: {m[k]:.1f} vs {n[k]:.1f} ({m[k] - n[k]:+.1f})")
    if ("contrastive", "mask") in mean and ("contrastive", "none") in mean:
        m, n = mean[("contrastive", "mask")], mean[("contrastive", "none")]
        for k, name in keys[1:5]:
            print(f"mask prediction vs none, {name}: {m[k]:.1f} vs {n[k]:.1f} ({m[k] - n[k]:+.1f})")


if __name__ == "__main__":
    main()
