"""Contrastive losses under DDP: with negatives gathered across 2 gloo ranks (``moviekit.gather_with_grad``),
MMX's NT-Xent and HierMovie's InfoNCE over unequal shards of a global batch of 7 give the 1-process loss
over the whole batch, and the same gradients (parameters and inputs), to float rounding (1e-6)."""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
TOL = 1e-6
BATCH = 7  # shards of 3 and 4 rows: unequal on purpose

#: Run by torchrun: every rank draws the same global batch, takes its share, and rank 0 writes the summed results.
SCRIPT = """
import json, sys
import torch
from moviekit import distributed as d
from moviekit_hiermovie.contrastive import info_nce
from moviekit_mmx.model import nt_xent

d.init_from_env("cpu")
out = {}
for name, loss_fn in (("nt_xent", lambda a, b: nt_xent(a, b, 0.5)), ("info_nce", lambda a, b: info_nce(a, b, 0.1))):
    torch.manual_seed(0)
    proj = torch.nn.Linear(8, 6)
    z1, z2 = torch.randn(BATCH, 8, requires_grad=True), torch.randn(BATCH, 8, requires_grad=True)
    idx, weight, replicated = d.shard(list(range(BATCH)))
    assert not replicated and len(idx) == (3, 4)[d.rank()]
    loss = loss_fn(proj(z1[idx]), proj(z2[idx])) * weight
    loss.backward()
    d.sum_gradients([*proj.parameters(), z1, z2])
    total = d.sum_value(float(loss))
    grads = [t.grad.tolist() for t in (*proj.parameters(), z1, z2)]
    if d.is_main():
        out[name] = {"loss": total, "grads": grads}
if d.is_main():
    json.dump(out, open(sys.argv[1], "w"))
d.shutdown()
""".replace("BATCH", str(BATCH))


def losses():
    pytest.importorskip("moviekit_mmx")
    pytest.importorskip("moviekit_hiermovie")
    from moviekit_hiermovie.contrastive import info_nce
    from moviekit_mmx.model import nt_xent

    return {"nt_xent": lambda a, b: nt_xent(a, b, 0.5), "info_nce": lambda a, b: info_nce(a, b, 0.1)}


def one_process(loss_fn, rows=None):
    """The loss and gradients over the whole batch (or, with ``rows``, the weighted sum over local-only shards)."""
    torch.manual_seed(0)
    proj = torch.nn.Linear(8, 6)
    z1, z2 = torch.randn(BATCH, 8, requires_grad=True), torch.randn(BATCH, 8, requires_grad=True)
    shards = rows or [list(range(BATCH))]
    loss = sum(loss_fn(proj(z1[r]), proj(z2[r])) * len(r) / BATCH for r in shards)
    loss.backward()
    return float(loss.detach()), [t.grad for t in (*proj.parameters(), z1, z2)]


def test_gathered_negatives_over_two_ranks_equal_one_process(tmp_path):
    fns = losses()
    (tmp_path / "ranks.py").write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", MOVIEKIT_DIST_TIMEOUT="120")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(tmp_path / "ranks.py"),
        str(tmp_path / "out.json"),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert got.keys() == fns.keys()
    for name, fn in fns.items():
        loss, grads = one_process(fn)
        assert got[name]["loss"] == pytest.approx(loss, abs=TOL), name
        assert len(got[name]["grads"]) == len(grads)
        for g, want in zip(got[name]["grads"], grads):
            torch.testing.assert_close(torch.tensor(g), want, atol=TOL, rtol=0, msg=name)
        # without gathering, each rank would see only its own negatives: a different loss (so the test can fail)
        local_only, _ = one_process(fn, rows=[[0, 1, 2], [3, 4, 5, 6]])
        assert abs(local_only - loss) > 1e-3, name
