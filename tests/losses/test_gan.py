"""The adversarial loss and CycleGAN's image pool."""

from __future__ import annotations

import pytest
import torch

from facesketch.losses.gan import ImagePool, gan_loss

def test_gan_loss_and_pool():
    pred = torch.full((2, 1, 3, 3), 0.5)
    assert gan_loss(pred, True).item() == pytest.approx(0.25)
    assert gan_loss(pred, False).item() == pytest.approx(0.25)
    pool = ImagePool(2, seed=0)
    a = torch.ones(2, 3, 4, 4)
    assert torch.equal(pool.query(a), a)  # filling: returns the inputs
    outs = [pool.query(torch.full((1, 3, 4, 4), float(i))).mean().item() for i in range(2, 400)]
    # CycleGAN's rule, replayed with the pool's own seeded RNG: with probability 1/2 a stored image comes back and the
    # new one takes its slot, else the new one passes through
    import random

    rng, stored, want = random.Random(0), [1.0, 1.0], []
    for i in range(2, 400):
        if rng.random() > 0.5:
            j = rng.randint(0, 1)
            want.append(stored[j])
            stored[j] = float(i)
        else:
            want.append(float(i))
    assert outs == want
    old = sum(o < i for o, i in zip(outs, range(2, 400)))
    assert abs(old / len(outs) - 0.5) < 0.1  # about half the time an older image comes back
    st = pool.state_dict()
    clone = ImagePool(0)
    clone.load_state_dict(st)
    x = torch.full((1, 3, 4, 4), 99.0)
    assert torch.equal(pool.query(x), clone.query(x))
