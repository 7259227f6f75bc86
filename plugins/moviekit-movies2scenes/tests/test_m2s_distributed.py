"""Movies2Scenes' MoCo under torchrun: 2 gloo processes equal 1 process with the same global batch.

1. MoCo steps through ``moviekit.train_loop`` over unequal shards (global batches of 5: shares of 2
   and 3) and a last batch of 1 that every rank computes whole: each step's loss, the summed
   gradients, the key encoder and the queue (its keys and pointer) equal one process's to 1e-5, and
   are bit-identical on the two ranks.
2. A tiny Movies2Scenes recipe (E_shot, E_movie, scene pairs, scene encoder, with augmentation) run
   by ``torchrun`` gives the 1-process metrics and models (see below), and a 2-process run SIGKILLed
   after a scene-encoder checkpoint resumes in one process to the same result (the keys waiting to be
   enqueued are in the checkpoint).

Tolerances: the ranks sum floats in another order than one process, so results agree to rounding,
amplified a little over the training steps: 1e-5 over a few steps; over a run of 4 tasks 1e-4 for
metrics and SGD-trained weights, 1e-3 for the AdamW-trained scene encoder's outputs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

#: Run by torchrun (and, for the reference, in this process): MoCo steps through train_loop, recording
#: every step's summed gradients, key encoder and queue.
STEPS = """
import json, sys
import torch
from moviekit import distributed as d, train_loop
from moviekit_movies2scenes.moco import MoCo

N, BATCH = 11, 5  # global batches 5, 5, 1 per epoch: shares of 2 and 3, then 1 computed whole on both ranks


def run():
    torch.manual_seed(0)
    x, aug = torch.randn(N, 6), torch.randn(N, 6)
    moco = MoCo(torch.nn.Linear(6, 4), dim=4, queue_size=8, momentum=0.6, temperature=0.2)
    opt = torch.optim.SGD(moco.encoder.parameters(), lr=0.5, momentum=0.9)
    record = []

    def state(grads):
        record.append({"grads": [p.grad.tolist() for p in moco.encoder.parameters()] if grads else None,
                       "key_encoder": [p.tolist() for p in moco.key_encoder.parameters()],
                       "queue": moco.queue.keys.tolist(), "ptr": int(moco.queue.ptr), "filled": int(moco.queue.filled)})

    def step(idx):
        grads = moco.encoder.weight.grad is not None  # the previous step's, summed over ranks
        moco.after_step()
        state(grads)
        return moco.loss(x[idx], x[idx] + 0.3 * aug[idx])

    hist = train_loop(moco, step, N, opt, epochs=2, batch_size=BATCH, seed=1)
    moco.after_step()
    state(True)
    return {"step_loss": hist["step_loss"], "steps": record}


if __name__ == "__main__":
    d.init_from_env("cpu")
    json.dump(run(), open(f"{sys.argv[1]}/rank{d.rank()}.json", "w"))
    d.shutdown()
"""

#: Runs the moviekit CLI with ``training.epoch_done`` replaced: rank 0 SIGKILLs itself right after epoch
#: MK_DIE_EPOCH of the training tagged MK_DIE_TAG (checkpointed by then); torchrun then stops the other rank.
KILLING_CLI = """
import os, signal
from moviekit import training
from moviekit.cli import main


def die(tag, epoch, history):
    if tag == os.environ["MK_DIE_TAG"] and epoch == int(os.environ["MK_DIE_EPOCH"]) and os.environ.get("RANK", "0") == "0":
        os.kill(os.getpid(), signal.SIGKILL)


training.epoch_done = die
main()
"""


def env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MOVIEKIT_DIST_TIMEOUT="120", MOVIEKIT_LOAD_PLUGINS="moviekit-movies2scenes")


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


def test_moco_steps_on_two_ranks_equal_one_process(tmp_path):
    (tmp_path / "steps.py").write_text(STEPS)
    r = subprocess.run(torchrun(2, str(tmp_path / "steps.py"), str(tmp_path)), capture_output=True, text=True, env=env(), timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0] == ranks[1]  # identical queues, key encoders, gradients and losses on every rank
    code = {"__name__": "m2s_steps"}
    exec(STEPS, code)
    one = code["run"]()
    got = ranks[0]
    assert len(got["steps"]) == len(one["steps"]) == 7  # 6 steps, the state before each and after the last
    np.testing.assert_allclose(got["step_loss"], one["step_loss"], atol=1e-5, rtol=0)
    for i, (a, b) in enumerate(zip(got["steps"], one["steps"])):
        assert (a["ptr"], a["filled"]) == (b["ptr"], b["filled"]), i
        np.testing.assert_allclose(a["queue"], b["queue"], atol=1e-5, rtol=0, err_msg=f"queue before step {i}")
        for p, q in zip(a["key_encoder"], b["key_encoder"]):
            np.testing.assert_allclose(p, q, atol=1e-5, rtol=0, err_msg=f"key encoder before step {i}")
        assert (a["grads"] is None) == (b["grads"] is None)
        for p, q in zip(a["grads"] or [], b["grads"] or []):
            np.testing.assert_allclose(p, q, atol=1e-5, rtol=0, err_msg=f"gradients of step {i - 1}")
    assert one["steps"][-1]["filled"] == 8 and one["steps"][-1]["ptr"] == 22 % 8  # 22 keys went through a queue of 8


def test_moco_resumed_between_a_step_and_its_enqueue_equals_a_fresh_run(tmp_path):
    """A checkpoint falls between a step and the enqueue of its keys (done at the next step): it keeps them."""
    from moviekit import train_loop, training
    from moviekit.testing import make_context
    from moviekit_movies2scenes.moco import MoCo

    def train(ctx, stop_after=None):
        torch.manual_seed(0)
        x = torch.randn(10, 6)
        moco = MoCo(torch.nn.Linear(6, 4), dim=4, queue_size=16, momentum=0.6, temperature=0.2)
        opt = torch.optim.SGD(moco.encoder.parameters(), lr=0.5)

        def step(idx):
            moco.after_step()
            return moco.loss(x[idx], x[idx].flip(1))

        def stop(tag, epoch, history):
            if epoch == stop_after:
                raise KeyboardInterrupt

        orig, training.epoch_done = training.epoch_done, stop
        try:
            train_loop(moco, step, 10, opt, 3, 4, ctx, tag="moco", checkpoint_every=1, extra_state=moco.pending)
        finally:
            training.epoch_done = orig
        moco.after_step()
        return moco

    fresh = train(make_context(tmp_path / "fresh"))
    ctx = make_context(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train(ctx, stop_after=2)
    resumed = train(ctx)
    assert int(resumed.queue.ptr) == int(fresh.queue.ptr) == 30 % 16
    torch.testing.assert_close(resumed.queue.keys, fresh.queue.keys, atol=0, rtol=0)
    torch.testing.assert_close(resumed.key_encoder.weight, fresh.key_encoder.weight, atol=0, rtol=0)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """A tiny Movies2Scenes recipe; batches of 9 split 4 + 5 over 2 ranks, every task has a short last batch,
    and both MoCo tasks draw augmentations (input noise, shot dropping) for the global batch."""
    tmp = tmp_path_factory.mktemp("m2s_ddp")
    (tmp / "killing_cli.py").write_text(KILLING_CLI)
    small = {"queue": 24, "momentum": 0.9, "batch_size": 9}
    spec = {
        "dataset": {"use": "synthetic_movies", "n": 8, "min_scenes": 3, "max_scenes": 3, "width": 32, "height": 32, "fps": 4,
                    "n_clusters": 2, "cowatch_in": 0.9, "root": str(tmp / "movies")},
        "segmenter": {"use": "m2s_annotated_shots"},
        "clips": {"trim_start": 0, "trim_end": 0, "min_clips": 1},
        "experts": {"keyframes": {"use": "m2s_keyframes", "backbone": "pixels", "size": [8, 8], "dtype": "float32"}},
        "tasks": [
            {"use": "m2s_shot_encoder", "dim": 16, "hidden": 32, "epochs": 2, "noise": 0.1, **small},
            {"use": "m2s_movie_encoder", "metadata": "cowatch", "max_shots": 16, "hidden": 16, "shot_dim": 8, "dim": 8, "epochs": 2,
             "batch_size": 9},
            {"use": "m2s_scene_pairs", "movie_model": "m2s_movie_cowatch", "window": 3},
            {"use": "m2s_scene_encoder", "metadata": "cowatch", "width": 16, "depth": 1, "heads": 2, "max_shots": 8, "dim": 8,
             "epochs": 4, "warmup_epochs": 1, "lr": 0.001, "checkpoint_every": 1, "shot_drop": 0.2, **small},
        ],
        "run": {"device": "cpu", "seed": 0},
    }  # fmt: skip
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(spec))
    return tmp


def launch(tmp: Path, name: str, nproc: int, **extra: str) -> subprocess.CompletedProcess:
    args = ["run", str(tmp / "recipe.yaml"), "-o", str(tmp / name / "run"), "--set", f"run.cache_dir={tmp / name / 'cache'}"]
    cmd = [sys.executable, "-m", "moviekit", *args] if nproc == 1 else torchrun(nproc, str(tmp / "killing_cli.py"), *args)
    r = subprocess.run(cmd, capture_output=True, text=True, env={**env(), "MK_DIE_TAG": "", "MK_DIE_EPOCH": "0", **extra}, timeout=300)
    return r


def scene_outputs(run: Path) -> list[np.ndarray]:
    """The trained scene encoder's representation and MoCo projection of fixed random scenes of 1 to 8 shots."""
    from moviekit import load_model
    from moviekit_movies2scenes.common import load_network

    net = load_network(load_model(run / "models" / "m2s_scene_cowatch.json"), "scene")
    x = torch.randn(4, 8, 16, generator=torch.Generator().manual_seed(0))
    mask = torch.arange(8) < torch.tensor([[8], [5], [3], [1]])
    with torch.no_grad():
        return [net.embed(x, mask).numpy(), net(x, mask).numpy()]


def assert_same_run(a: Path, b: Path, tol: float = 1e-4) -> None:
    from safetensors.numpy import load_file

    ta, tb = (json.loads((d / "summary.json").read_text())["tasks"] for d in (a, b))
    assert ta.keys() == tb.keys() and "3:m2s_scene_encoder" in ta
    for task in ta:  # the scene encoder's first and final epoch losses among them
        assert tb[task] == pytest.approx(ta[task], abs=tol), task
    for name in ("m2s_shot", "m2s_movie_cowatch"):  # SGD: weights follow the gradients' rounding
        wa, wb = load_file(a / "models" / f"{name}.safetensors"), load_file(b / "models" / f"{name}.safetensors")
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_allclose(wb[k], wa[k], atol=tol, rtol=0, err_msg=f"{name}:{k}")
    # AdamW turns a gradient that is only rounding (the attention keys' bias has none: softmax ignores it)
    # into lr-sized steps, so the scene encoder is compared by what it computes (values of about 1), to 1e-3
    for oa, ob in zip(scene_outputs(a), scene_outputs(b)):
        np.testing.assert_allclose(ob, oa, atol=1e-3, rtol=0)


@pytest.fixture(scope="module")
def one_process(recipe):
    r = launch(recipe, "one", 1)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return recipe / "one" / "run"


def test_recipe_on_two_gloo_processes_equals_one_process(recipe, one_process):
    r = launch(recipe, "two", 2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert_same_run(one_process, recipe / "two" / "run")


def test_sigkilled_two_process_run_resumes_to_the_same_result(recipe, one_process):
    r = launch(recipe, "killed", 2, MK_DIE_TAG="m2s_scene_cowatch", MK_DIE_EPOCH="2")
    assert r.returncode != 0  # rank 0 was SIGKILLed after the scene encoder's epoch 2
    assert len(list((recipe / "killed" / "cache").rglob("checkpoints/*m2s_scene_cowatch.pt"))) == 1
    r = launch(recipe, "killed", 1)  # another world size
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed from the checkpoint at epoch 2" in r.stdout
    assert_same_run(one_process, recipe / "killed" / "run")
