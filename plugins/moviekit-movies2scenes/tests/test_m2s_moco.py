"""The MoCo queue, momentum update and loss against small independent computations."""

import numpy as np
import torch

from moviekit_movies2scenes.moco import KeyQueue, MoCo, info_nce, momentum_update


def test_queue_fifo_with_short_batches():
    q = KeyQueue(dim=2, size=5)
    ref = [row for row in q.keys.clone().numpy()]  # a plain-python ring buffer as the reference
    ptr = 0
    for b in (2, 2, 3, 1, 7):  # short and over-long batches, wrapping around the end
        keys = torch.randn(b, 2)
        q.enqueue(keys)
        for row in keys.numpy()[-5:]:
            ref[ptr] = row
            ptr = (ptr + 1) % 5
        np.testing.assert_allclose(q.keys.numpy(), np.stack(ref))
        assert int(q.ptr) == ptr
    assert int(q.filled) == 5


def test_momentum_update():
    online, target = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    momentum_update(online, target, 0.9)
    for k, v in target.state_dict().items():
        torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * online.state_dict()[k])


def test_info_nce_matches_hand_computation():
    torch.manual_seed(0)
    q, k, queue = torch.randn(3, 4), torch.randn(3, 4), torch.randn(6, 4)
    n = lambda x: x / x.norm(dim=1, keepdim=True)  # noqa: E731
    qn, kn, Qn = n(q), n(k), n(queue)
    losses = []
    for i in range(3):
        logits = torch.cat([(qn[i] @ kn[i]).view(1), Qn @ qn[i]]) / 0.07
        losses.append(-torch.log_softmax(logits, 0)[0])
    torch.testing.assert_close(info_nce(q, k, queue, 0.07), torch.stack(losses).mean())


def test_moco_single_process_with_short_last_batch():
    torch.manual_seed(0)
    enc = torch.nn.Linear(4, 3)
    moco = MoCo(enc, dim=3, queue_size=8, momentum=0.5, temperature=0.1)
    opt = torch.optim.SGD(moco.encoder.parameters(), lr=0.1)
    x = torch.randn(11, 4)
    key_w = moco.key_encoder.weight.clone()
    for s in range(0, 11, 4):  # batches of 4, 4, 3
        xb = x[s : s + 4]
        loss = moco.loss(xb, xb + 0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        expected_keys = torch.nn.functional.normalize(
            torch.nn.functional.linear(xb + 0.01, moco.key_encoder.weight, moco.key_encoder.bias), dim=1
        )
        moco.after_step()
        key_w = 0.5 * key_w + 0.5 * moco.encoder.weight.detach()
        torch.testing.assert_close(moco.key_encoder.weight, key_w)
        end = int(moco.queue.ptr)
        got = moco.queue.keys[(torch.arange(len(xb)) + end - len(xb)) % 8]
        torch.testing.assert_close(got, expected_keys)
    assert int(moco.queue.filled) == 8 and int(moco.queue.ptr) == 11 % 8
    assert not any(p.requires_grad for p in moco.key_encoder.parameters())
