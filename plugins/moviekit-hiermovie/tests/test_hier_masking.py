import pytest
import torch

from moviekit_hiermovie.masking import apply_mask, bert_mask, masked_loss


def test_mask_ratio_and_replacement_shares():
    g = torch.Generator().manual_seed(0)
    valid = torch.ones(4000, 5, dtype=torch.bool)
    plan = bert_mask(valid, 0.15, g, min_masked=0)
    m = plan["masked"]
    assert abs(m.float().mean().item() - 0.15) < 0.01
    n = m.sum().item()
    assert abs(plan["to_mask_token"].sum().item() / n - 0.8) < 0.02
    assert abs(plan["to_random"].sum().item() / n - 0.1) < 0.02
    assert not (plan["to_mask_token"] & plan["to_random"]).any()
    assert not ((plan["to_mask_token"] | plan["to_random"]) & ~m).any()


def test_mask_only_real_tokens_and_min_masked():
    g = torch.Generator().manual_seed(1)
    valid = torch.zeros(300, 6, dtype=torch.bool)
    lengths = torch.randint(0, 7, (300,), generator=g)
    for i, n in enumerate(lengths):
        valid[i, :n] = True
    plan = bert_mask(valid, 0.15, g, min_masked=2)
    m = plan["masked"]
    assert not (m & ~valid).any()
    assert torch.equal(m.sum(1) >= torch.clamp(lengths, max=2), torch.ones(300, dtype=torch.bool))


def test_apply_mask_replaces_only_planned_positions():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, 4)
    plan = {k: torch.zeros(3, 5, dtype=torch.bool) for k in ("masked", "to_mask_token", "to_random")}
    plan["masked"][0, 1] = plan["to_mask_token"][0, 1] = True
    plan["masked"][2, 4] = plan["to_random"][2, 4] = True
    plan["masked"][1, 0] = True  # kept unchanged
    token = torch.full((4,), 7.0)
    out = apply_mask(x, plan, token, g)
    assert torch.equal(out[0, 1], token)
    rows = x.reshape(-1, 4)
    assert any(torch.equal(out[2, 4], r) for r in rows)
    same = torch.ones(3, 5, dtype=torch.bool)
    same[0, 1] = same[2, 4] = False
    assert torch.equal(out[same], x[same])


@pytest.mark.parametrize("kind", ["regression", "cosine", "contrastive"])
def test_loss_only_at_masked_positions(kind):
    torch.manual_seed(0)
    pred = torch.randn(2, 5, 8, requires_grad=True)
    target = torch.randn(2, 5, 8)
    masked = torch.zeros(2, 5, dtype=torch.bool)
    masked[0, 2] = masked[1, 0] = masked[1, 4] = True
    loss = masked_loss(pred, target, masked, kind)
    loss.backward()
    assert pred.grad[~masked].abs().sum() == 0
    assert pred.grad[masked].abs().sum() > 0
    changed = pred.detach().clone()
    changed[~masked] += 100.0
    assert torch.isclose(masked_loss(changed, target, masked, kind), loss.detach())


def test_regression_is_mse_of_masked_rows():
    pred, target = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    masked = torch.zeros(2, 5, dtype=torch.bool)
    masked[1, 3] = True
    expected = ((pred[1, 3] - target[1, 3]) ** 2).mean()
    assert torch.isclose(masked_loss(pred, target, masked, "regression"), expected)
