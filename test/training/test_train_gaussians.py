"""Gaussian predictor training: a few steps reduce the render loss on a tiny batch, metrics against independent
references, config validation."""
import numpy as np
import pytest
import torch

from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.models import gaussian_predictor as gp
from reconphys_ros.core.render import dataset_views, render_views
from training.train_gaussians import FrameBank, chamfer_loss, hull_volume, load_config, object_depth, train_step, view_metrics

SIZE = 32


def _ellipsoid(n: int = 400) -> GaussianCloud:
    gen = torch.Generator().manual_seed(1)
    dirs = torch.randn(n, 3, generator=gen)
    pts = dirs / dirs.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=gen) ** (1 / 3)
    pts = pts * torch.tensor([0.35, 0.2, 0.25]) + torch.tensor([0.0, 0.0, 0.5])
    colors = torch.stack([0.5 + 0.4 * torch.sign(pts[:, 0]), torch.full((n,), 0.3), torch.full((n,), 0.6)], 1)
    return GaussianCloud(means=pts, log_scales=torch.full((n, 3), float(np.log(0.04))),
                         quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), colors=colors,
                         opacity_logits=torch.full((n,), 3.0))


def _bank() -> tuple[FrameBank, GaussianCloud]:
    cloud = _ellipsoid()
    cams = dataset_views(width=SIZE, image_height=SIZE, distance=2.5)
    with torch.no_grad():
        out = render_views(cloud, cams, background=(0.9, 0.9, 0.9), backend="torch")
    rgb = out.rgb[None, None]  # (1, 1, V, H, W, 3)
    alpha = out.alpha[None, None]  # (1, 1, V, H, W)
    return FrameBank(rgb, alpha, [cams], [cloud.means[None]]), cloud


def test_a_few_steps_reduce_the_render_loss():
    torch.manual_seed(0)
    bank, _ = _bank()
    net = gp.GaussianNet(gp.GaussianNetConfig(input_size=32, output_size=16, width=8, layers=2))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    picks = [(0, 0, 0), (0, 0, 1)]
    losses = []
    for _ in range(15):
        loss = train_step(net, bank, picks, alpha_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert min(losses[-3:]) < 0.7 * losses[0], losses


def test_view_metrics_and_hull_volume_against_references():
    bank, cloud = _bank()
    cams = bank.cameras[0]
    background = torch.full((len(cams), SIZE, SIZE, 3), 0.9)
    iou, psnr = view_metrics(cloud, cams, bank.rgb[0, 0], bank.alpha[0, 0], background)
    assert iou == pytest.approx(1.0) and psnr > 60  # the ground truth reproduces itself
    shifted = GaussianCloud(cloud.means + torch.tensor([0.0, 0.0, 0.3]), cloud.log_scales, cloud.quats, cloud.colors,
                            cloud.opacity_logits)
    iou_shifted, psnr_shifted = view_metrics(shifted, cams, bank.rgb[0, 0], bank.alpha[0, 0], background)
    assert iou_shifted < 0.8 and psnr_shifted < psnr
    cube = np.array([[x, y, z] for x in (0, 2) for y in (0, 1) for z in (0, 0.5)], dtype=np.float32)
    assert hull_volume(cube) == pytest.approx(1.0)
    # Camera depth of the centre: the first dataset view looks along -x from x = 2.5 at the centre's height.
    assert object_depth(torch.tensor([[0.0, 0.0, 0.5]]), dataset_views(distance=2.5, height=0.5,
                                                                      target=(0, 0, 0.5))[0]) == pytest.approx(2.5)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="steps"):
        load_config(None, {"steps": 0})
    assert load_config(None, {"net": {"width": 8}})["net"]["layers"] == 2
    with pytest.raises(ValueError, match="FrameBank needs"):
        FrameBank(torch.zeros(1, 1, 4, 8, 8, 3), torch.zeros(1, 1, 4, 8, 9), [[]], [None])


def test_chamfer_loss_is_zero_on_the_truth_and_scale_free():
    gen = torch.Generator().manual_seed(2)
    true = torch.rand(200, 3, generator=gen)
    assert float(chamfer_loss(true, true)) == pytest.approx(0.0, abs=1e-6)
    shifted = true + torch.tensor([0.1, 0.0, 0.0])
    loss = float(chamfer_loss(shifted, true))
    assert 0.0 < loss < 2 * 0.1 ** 2 / float((true.max(0).values - true.min(0).values).max()) ** 2
    assert float(chamfer_loss(10 * shifted, 10 * true)) == pytest.approx(loss, rel=1e-4)
    # Brute-force reference for a small case.
    a, b = torch.rand(5, 3, generator=gen), torch.rand(7, 3, generator=gen)
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    ref = (d2.min(1).values.mean() + d2.min(0).values.mean()) / (b.max(0).values - b.min(0).values).max() ** 2
    assert float(chamfer_loss(a, b)) == pytest.approx(float(ref), rel=1e-4)
