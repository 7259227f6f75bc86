"""Movies2Scenes on the embedded synthetic movies over several seeds: place P@1 of the learnt scene
embeddings against the frame-average and random baselines, and SBD AP against random.

    python benchmarks/m2s_seeds.py [--seeds 0 1 2] [--data-seed-too] [--fresh] [--out runs/m2s_seeds] [--set k=v ...]

Each seed is a full run of recipes/movies2scenes.yaml with `run.seed=<seed>` (training randomness);
with --data-seed-too the synthetic dataset is drawn with `dataset.seed=<seed>` as well (then every
seed also decodes its own movies); with --fresh each seed gets an empty artifact cache of its own under
<out> (so its seconds include keyframe extraction, as a first run's do).  Prints a table per seed, the
mean and standard deviation over seeds, the seconds of each stage, and writes it all to <out>/seeds.json.
Not a test: it takes a few minutes per seed on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from moviekit import load_recipe, run_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "movies2scenes.yaml"
COLUMNS = [
    ("place P@1 learned", "m2s_place_retrieval", "learned_p@1"),
    ("P@1 frame-avg", "m2s_place_retrieval", "frame_average_p@1"),
    ("P@1 random", "m2s_place_retrieval", "random_p@1"),
    ("place P@10 learned", "m2s_place_retrieval", "learned_p@10"),
    ("P@10 frame-avg", "m2s_place_retrieval", "frame_average_p@10"),
    ("SBD AP learned", "m2s_sbd", "learned_ap"),
    ("SBD AP frame-avg", "m2s_sbd", "frame_average_ap"),
    ("SBD AP random", "m2s_sbd", "random_ap"),
    ("pairs same place", "m2s_scene_pairs", "same_place_share"),
    ("appearance pairs", "m2s_scene_pairs", "same_place_share_appearance"),
]


def metric(summary: dict, task: str, key: str) -> float | None:
    for name, m in summary["tasks"].items():
        if name.split(":", 1)[1] == task and key in m:
            return m[key]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data-seed-too", action="store_true", help="also draw the synthetic movies with each seed")
    ap.add_argument("--fresh", action="store_true", help="an empty artifact cache per seed (first-run seconds)")
    ap.add_argument("--out", type=Path, default=Path("runs/m2s_seeds"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe override k=v")
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        over = [f"run.seed={seed}", *([f"dataset.seed={seed}"] if args.data_seed_too else []), *args.overrides]
        if args.fresh:
            cache = args.out / f"cache-seed{seed}-{time.strftime('%Y%m%d%H%M%S')}"
            over.append(f"run.cache_dir={cache.resolve()}")
        t0 = time.perf_counter()
        summary = run_recipe(load_recipe(RECIPE, over), output=args.out / f"seed{seed}")
        row = {"seed": seed, "seconds": round(time.perf_counter() - t0, 1)}
        row.update({label: metric(summary, task, key) for label, task, key in COLUMNS})
        row["stage_seconds"] = {k: round(v["seconds"], 1) for k, v in summary.get("stages", {}).items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    labels = [c[0] for c in COLUMNS]
    print("| seed | " + " | ".join(labels) + " | seconds |")
    print("|" + " --- |" * (len(labels) + 2))
    for r in rows:
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in labels]
        print(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['seconds']} |")
    stats = {}
    for k in labels:
        vals = [r[k] for r in rows if isinstance(r[k], (int, float))]
        if vals:
            stats[k] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
    print("| mean ± std | " + " | ".join(f"{stats[k][0]:.3f} ± {stats[k][1]:.3f}" if k in stats else "-" for k in labels) + " | |")
    print("stage seconds per seed: " + "; ".join(f"seed {r['seed']}: {r['stage_seconds']}" for r in rows))
    (args.out / "seeds.json").write_text(json.dumps({"rows": rows, "mean_std": stats}, indent=1))
    wins = sum(1 for r in rows if (r["place P@1 learned"] or 0) > max(r["P@1 frame-avg"] or 0, r["P@1 random"] or 0))
    sbd = sum(1 for r in rows if (r["SBD AP learned"] or 0) > (r["SBD AP random"] or 0))
    print(f"learned P@1 above both baselines in {wins}/{len(rows)} seeds; SBD AP above random in {sbd}/{len(rows)}")


if __name__ == "__main__":
    main()
