"""CUDA check of the shared training paths: the MMX gated encoder trained with ``fit_multilabel`` at fp32,
bf16 and fp16 (autocast, gradient scaler), a killed training resumed from its checkpoint on the GPU, and the
NT-Xent loss under autocast.  Prints figures; exits 1 if a check fails.  Falls back to the CPU (and says so)
when no GPU is present.

    python benchmarks/cuda_check.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins" / "moviekit-mmx")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

import moviekit.training as training  # noqa: E402
from moviekit import TrainConfig, embed_items, fit_multilabel, multi_hot, predict_scores  # noqa: E402
from moviekit.default_plugins.generic import MLPHead  # noqa: E402
from moviekit.testing import make_context, tiny_items  # noqa: E402
from moviekit_mmx.model import GatedTrailerEncoder, nt_xent  # noqa: E402

DIMS = {"visual": (32,), "audio": (6, 8), "motion": (12,)}


def separation(scores: np.ndarray, y: np.ndarray) -> float:
    """Mean score of the true labels minus mean score of the others (> 0 when the model learned)."""
    return float(scores[y == 1].mean() - scores[y == 0].mean())


def context(tmp: str, precision: str, device: torch.device):
    items = tiny_items(n=96, vocabulary=tuple("abcdef"), modalities=DIMS, n_clips=12, seed=1)
    enc = GatedTrailerEncoder(
        expert_dim=64,
        gating_hidden=64,
        clip_dim=32,
        clips_per_sequence=3,
        sequence_hidden=64,
        sequence_dim=32,
        max_sequences=4,
        bottleneck_hidden=128,
        output_dim=128,
    )
    ctx = make_context(tmp, items, encoder=enc, head=MLPHead(hidden=[64]))
    ctx.device, ctx.precision = device, precision
    return ctx


def train(ctx, epochs: int, checkpoint_every: int = 100, tag: str = "fit"):
    torch.manual_seed(0)
    encoder = ctx.encoder.build({m: s for m, s in DIMS.items()}).to(ctx.device)
    head = ctx.head.build(ctx.encoder.output_dim(), len(ctx.vocabulary)).to(ctx.device)
    cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=16, select_on_val=False, checkpoint_every=checkpoint_every)
    hist = fit_multilabel(ctx, encoder, head, ctx.split("train"), [], cfg, tag=tag)
    return encoder, head, hist


def main() -> int:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    print(f"torch {torch.__version__}; device: {torch.cuda.get_device_name(0) if cuda else 'CPU (no GPU present)'}")
    ok = True
    for precision in ("fp32", "bf16", "fp16"):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = context(tmp, precision, device)
            t0 = time.perf_counter()
            encoder, head, hist = train(ctx, epochs=25)
            seconds = time.perf_counter() - t0
            test = ctx.split("test")
            y = multi_hot([it.video.labels for it in test], ctx.vocabulary)
            sep = separation(predict_scores(encoder, head, test, ctx), y)
            emb = embed_items(encoder, test, ctx)
            finite = bool(np.isfinite(emb).all()) and all(np.isfinite(hist["train_loss"]))
            good = finite and hist["train_loss"][-1] < hist["train_loss"][0] and sep > 0.1
            ok &= good
            print(
                f"{precision}: {seconds:.1f} s for 25 epochs; loss {hist['train_loss'][0]:.3f} -> {hist['train_loss'][-1]:.3f}; "
                f"test score separation {sep:+.3f}; embeddings {emb.shape} finite={finite} -> {'ok' if good else 'FAIL'}"
            )

    # resume: kill after epoch 5 (checkpoints every 2 epochs), run again, compare with an uninterrupted run
    for precision in ("fp32", "fp16"):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = context(tmp, precision, device)
            real = training.epoch_done

            def dying(tag, epoch, history):
                if tag == "resume" and epoch == 5:
                    raise KeyboardInterrupt("killed after epoch 5")

            training.epoch_done = dying
            try:
                train(ctx, epochs=8, checkpoint_every=2, tag="resume")
            except KeyboardInterrupt:
                pass
            finally:
                training.epoch_done = real
            saved = ctx.checkpoint_path("resume").exists()
            _, _, resumed = train(ctx, epochs=8, checkpoint_every=2, tag="resume")
            _, _, straight = train(ctx, epochs=8, checkpoint_every=2, tag="straight")
            diff = float(np.max(np.abs(np.array(resumed["train_loss"]) - np.array(straight["train_loss"]))))
            good = saved and len(resumed["train_loss"]) == 8 and diff < 1e-2 and not ctx.checkpoint_path("resume").exists()
            ok &= good
            print(
                f"resume ({precision}): checkpoint written={saved}; resumed run has {len(resumed['train_loss'])} epochs; "
                f"max |loss difference| vs uninterrupted {diff:.2e} -> {'ok' if good else 'FAIL'}"
            )

    z1, z2 = torch.randn(8, 128, device=device), torch.randn(8, 128, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        loss_amp = nt_xent(z1, z2)
    loss = nt_xent(z1, z2)
    good = abs(float(loss_amp) - float(loss)) < 2e-2
    ok &= good
    print(f"nt_xent: fp32 {float(loss):.4f}, bf16 autocast {float(loss_amp):.4f} -> {'ok' if good else 'FAIL'}")
    print("all ok" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
