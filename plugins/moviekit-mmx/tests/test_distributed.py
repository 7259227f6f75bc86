"""MMX training under torchrun: 2 gloo processes equal 1 process (same global batch and seed) within
a stated tolerance, and a run SIGKILLed mid-fine-tuning resumes under another world size.

Tolerance: the ranks' float sums are done in another order than one process's, so results agree to
rounding, amplified a little by the training steps: model weights to 1e-4 (absolute), metrics to 1e-4.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from moviekit.default_plugins.formats import write_features_dir
from moviekit.testing import tiny_items

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
TOL = 1e-4

#: Loaded by entry point in the runs below: SIGKILLs rank 0 right after the epoch MK_DIE_EPOCH of the
#: task tagged MK_DIE_TAG has been checkpointed (torchrun then stops the other rank).
KILLER = """
import os, signal
import moviekit
from moviekit import training

moviekit_api = "1.0"

def _die(tag, epoch, history):
    if tag == os.environ.get("MK_DIE_TAG") and epoch == int(os.environ.get("MK_DIE_EPOCH", "0")) and os.environ.get("RANK", "0") == "0":
        os.kill(os.getpid(), signal.SIGKILL)

training.epoch_done = _die

@moviekit.hookimpl
def register_components(register):
    pass
"""


def make_fake_plugin(root: Path, dist: str, module: str, source: str) -> Path:
    """An installed-looking distribution (dist-info + entry point) under ``root``, for PYTHONPATH."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (root / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[moviekit]\n{module} = {module}\n")
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    items = tiny_items(n=40, vocabulary=tuple("abcde"), modalities={"visual": (6,), "audio": (4,)}, n_clips=12, seed=3)
    write_features_dir(tmp / "features", items)
    site = make_fake_plugin(tmp / "site", "moviekit-test-killer", "mk_test_killer", KILLER)
    recipe = {
        "dataset": {"use": "features_dir", "root": str(tmp / "features")},
        "encoder": {"use": "mmx_gated", "expert_dim": 16, "gating_hidden": 16, "clip_dim": 8, "clips_per_sequence": 3,
                    "sequence_hidden": 16, "sequence_dim": 8, "max_sequences": 4, "bottleneck_hidden": 16, "output_dim": 16},
        "head": {"use": "mlp", "hidden": [16]},
        "tasks": [
            # batch 7 over 2 ranks: shares of 3 and 4; the last batch of 30 train trailers (2) one each
            {"use": "mmx_genre", "epochs": 3, "batch_size": 7, "lr": 0.003, "select_on_val": False},
            {"use": "mmx_finetune", "epochs": 4, "warmup_epochs": 1, "batch_size": 7, "lr": 0.001, "checkpoint_every": 1},
        ],
        "clips": {"min_clips": 2},
        "run": {"device": "cpu", "seed": 0},
    }  # fmt: skip
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return tmp, path, site


def launch(setup, name: str, nproc: int, **env_extra) -> subprocess.CompletedProcess:
    tmp, recipe, site = setup
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1", **env_extra)
    env["MOVIEKIT_LOAD_PLUGINS"] = "moviekit-mmx,moviekit-test-killer"
    args = ["run", str(recipe), "-o", str(tmp / name / "run"), "--set", f"run.cache_dir={tmp / name / 'cache'}"]
    if nproc == 1:
        cmd = [sys.executable, "-m", "moviekit", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "moviekit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


def flat(obj, prefix=""):
    """Numeric leaves of a JSON value by path."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flat(val, f"{prefix}/{key}").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in flat(val, f"{prefix}[{i}]").items()}
    return {prefix: obj} if isinstance(obj, (int, float)) and not isinstance(obj, bool) else {}


def assert_close_runs(a: Path, b: Path) -> None:
    from safetensors.numpy import load_file

    ma, mb = (flat(json.loads((d / "metrics.json").read_text())) for d in (a, b))
    assert ma.keys() == mb.keys() and ma
    for k in ma:
        assert mb[k] == pytest.approx(ma[k], abs=TOL), k
    for name in ("coarse", "fine"):
        ta, tb = load_file(a / "models" / f"{name}.safetensors"), load_file(b / "models" / f"{name}.safetensors")
        assert ta.keys() == tb.keys()
        for k in ta:
            np.testing.assert_allclose(tb[k], ta[k], atol=TOL, err_msg=f"{name}:{k}")
    np.testing.assert_allclose(
        np.load(b / "embeddings" / "fine.npz")["vectors"], np.load(a / "embeddings" / "fine.npz")["vectors"], atol=TOL
    )


@pytest.fixture(scope="module")
def one_process(setup):
    r = launch(setup, "one", 1)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return setup[0] / "one" / "run"


def test_two_gloo_processes_equal_one_process(setup, one_process):
    r = launch(setup, "two", 2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = setup[0] / "two" / "run"
    assert_close_runs(one_process, run)
    # only rank 0 wrote: one run folder, one summary, no leftover checkpoint
    assert json.loads((run / "summary.json").read_text())["items"] == 40
    assert not list((setup[0] / "two" / "cache").rglob("*.pt"))


def test_sigkilled_two_process_run_resumes_in_one_process(setup, one_process):
    r = launch(setup, "killed", 2, MK_DIE_TAG="mmx-finetune", MK_DIE_EPOCH="2")
    assert r.returncode != 0  # rank 0 was SIGKILLed after fine-tuning epoch 2
    cache = setup[0] / "killed" / "cache"
    assert len(list(cache.rglob("checkpoints/*mmx-finetune.pt"))) == 1
    r = launch(setup, "killed", 1)  # another world size
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed from the checkpoint at epoch 2" in r.stdout
    assert_close_runs(one_process, setup[0] / "killed" / "run")
