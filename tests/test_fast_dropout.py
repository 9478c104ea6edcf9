"""The CPU fast-dropout path: same distribution as torch's dropout, no change to the saved model."""

from __future__ import annotations

import pytest
import torch

from hf_crossenc.fast_dropout import FastDropout, fast_dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_mask_rate_and_word_positions(p):
    torch.manual_seed(0)
    mask = keep_mask((300_000,), p)
    assert mask.dtype == torch.bool and mask.shape == (300_000,)
    # Kept with probability 1 - p: 5 standard deviations of a Binomial(300k) rate is ~0.005.
    assert mask.float().mean().item() == pytest.approx(1 - p, abs=0.005)
    # Each of the three 16-bit words drawn from one 64-bit number is uniform (no biased sign bit).
    for position in range(3):
        assert mask[position::3].float().mean().item() == pytest.approx(1 - p, abs=0.008)


def test_keep_mask_follows_torch_seed_and_rejects_bad_p():
    torch.manual_seed(7)
    first = keep_mask((4, 5, 6), 0.1)
    torch.manual_seed(7)
    assert torch.equal(first, keep_mask((4, 5, 6), 0.1))
    with pytest.raises(ValueError, match="dropout probability"):
        keep_mask((3,), 1.0)


def test_fast_dropout_scales_kept_values_and_gradients():
    x = torch.ones(10_000, requires_grad=True)
    y = fast_dropout(x, 0.2)
    kept = y != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1.25))
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() * 1.25)  # d(out)/d(x) = mask / (1 - p)
    assert fast_dropout(x, 0.2, training=False) is x
    module = FastDropout(0.2).eval()
    assert module(x) is x
