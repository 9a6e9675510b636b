import numpy as np
import pytest
import torch

from reconphys_ros.core.binding import apply_binding, compute_binding, local_rotations


def setup(n=200, na=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g), torch.rand(na, 3, generator=g)


def test_weights_match_idw_formula():
    means, anchors = setup()
    b = compute_binding(means, anchors, n_neighbors=4, power=2.0)
    d = torch.cdist(means.double(), anchors.double())
    dist, idx = d.topk(4, largest=False)
    w = 1 / dist**2
    w = w / w.sum(1, keepdim=True)
    assert torch.equal(torch.sort(b.indices, 1).values, torch.sort(idx, 1).values)
    order = torch.argsort(b.indices, 1)
    assert torch.allclose(torch.gather(b.weights, 1, order).double(), torch.gather(w, 1, torch.argsort(idx, 1)), atol=1e-6)


def test_weights_unchanged_on_normal_inputs():
    """The overflow-safe form gives the weights of the former 1 / (d^p + 1e-12) formula on ordinary assets."""
    means, anchors = setup(n=2000, na=64, seed=3)
    means, anchors = means * 0.2, anchors * 0.2  # a 20 cm object
    for power in (1.0, 2.0):
        b = compute_binding(means, anchors, n_neighbors=8, power=power)
        dist = torch.gather(torch.cdist(means.double(), anchors.double()), 1, b.indices)
        former = 1.0 / (dist**power + 1e-12)
        former = former / former.sum(1, keepdim=True)
        torch.testing.assert_close(b.weights.double(), former, atol=1e-6, rtol=0)


def test_extreme_power_and_far_gaussians_give_finite_weights():
    """Issue 18.4: binding_power 1000 with Gaussians 3 m away overflowed d^p to inf, and the weights to 0/0 = NaN."""
    _, anchors = setup()
    means = torch.full((5, 3), 3.0) + torch.arange(5.0)[:, None] * 0.01
    b = compute_binding(means, anchors * 0.2, n_neighbors=8, power=1000.0)
    assert torch.isfinite(b.weights).all()
    torch.testing.assert_close(b.weights.sum(1), torch.ones(5))
    assert (b.weights[:, 0] == b.weights.max(1).values).all()  # the nearest anchor leads


def test_rigid_translation_and_rotation_followed():
    means, anchors = setup()
    b = compute_binding(means, anchors, 6, 2.0)
    shift = torch.tensor([0.3, -0.2, 1.0])
    moved = apply_binding(b, (anchors + shift)[None].repeat(5, 1, 1), anchors, means)
    assert moved.shape == (5, 200, 3)
    assert torch.allclose(moved, means + shift, atol=1e-5)
    c, s = np.cos(0.3), np.sin(0.3)
    rot = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float32)
    r = local_rotations(b, anchors @ rot.T, anchors, means)
    assert torch.allclose(r, rot.expand_as(r), atol=1e-4)


def test_gaussian_at_anchor_follows_it_exactly_and_grad_flows():
    means, anchors = setup()
    means[0] = anchors[3]
    b = compute_binding(means, anchors, 8, 3.0)
    pos = (anchors + torch.randn_like(anchors) * 0.1).requires_grad_(True)
    out = apply_binding(b, pos, anchors, means)
    assert torch.allclose(out[0], pos[3], atol=1e-5)
    out.sum().backward()
    assert torch.allclose(pos.grad.sum(), torch.tensor(3.0 * 200), rtol=1e-5)  # weights sum to one


def test_bad_binding_inputs():
    means, anchors = setup()
    with pytest.raises(ValueError):
        compute_binding(means[:, :2], anchors)
    with pytest.raises(ValueError):
        compute_binding(torch.full((3, 3), float("nan")), anchors)
    with pytest.raises(ValueError):
        compute_binding(means, anchors[:0])
    b = compute_binding(means, anchors)
    with pytest.raises(ValueError):
        apply_binding(b, anchors[:10], anchors, means)
