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
