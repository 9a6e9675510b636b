"""CPU rasterizer against an independent brute-force reference, finite differences and analytic cases."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.render import Camera, look_at, render, render_sequence, render_views, resolve_backend
from reconphys_ros.core.render.projection import covariances_3d, project_gaussians


def random_cloud(n, seed, dtype=torch.float32, spread=0.5, opacity_scale=2.0):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * spread
    log_scales = torch.log(torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.08 + 0.02)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g, dtype=torch.float64), dim=1)
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64)
    logits = torch.randn(n, generator=g, dtype=torch.float64) * opacity_scale
    return GaussianCloud(means, log_scales, quats, colors, logits).to(dtype=dtype)


def small_camera(width=24, height=20, fx=30.0, fy=34.0, cx=None, cy=None):
    return look_at((1.6, 0.3, 0.4), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), fx, fy, width, height, cx, cy)


def reference_render(cloud: GaussianCloud, cam: Camera, background):
    """Per-pixel loop in float64 numpy following gsplat's rules; written independently of the package."""
    means = cloud.means.detach().double().numpy()
    scales = cloud.log_scales.detach().double().exp().numpy()
    q = cloud.quats.detach().double().numpy()
    rots = Rotation.from_quat(np.concatenate([q[:, 1:], q[:, :1]], axis=1)).as_matrix()  # scipy is xyzw
    colors = cloud.colors.detach().double().numpy()
    opac = 1.0 / (1.0 + np.exp(-cloud.opacity_logits.detach().double().numpy()))
    K = cam.K.double().numpy()
    w2c = cam.world_to_cam.double().numpy()
    W, H = cam.width, cam.height
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    entries = []
    for i in range(len(means)):
        t = w2c[:3, :3] @ means[i] + w2c[:3, 3]
        if t[2] <= 0.01 or opac[i] < 1 / 255:
            continue
        cov = w2c[:3, :3] @ rots[i] @ np.diag(scales[i] ** 2) @ rots[i].T @ w2c[:3, :3].T
        limx_p, limx_n = (W - cx) / fx + 0.15 * W / fx, cx / fx + 0.15 * W / fx
        limy_p, limy_n = (H - cy) / fy + 0.15 * H / fy, cy / fy + 0.15 * H / fy
        jx = t[2] * np.clip(t[0] / t[2], -limx_n, limx_p)
        jy = t[2] * np.clip(t[1] / t[2], -limy_n, limy_p)
        J = np.array([[fx / t[2], 0, -fx * jx / t[2] ** 2], [0, fy / t[2], -fy * jy / t[2] ** 2]])
        cov2 = J @ cov @ J.T + 0.3 * np.eye(2)
        if np.linalg.det(cov2) <= 0:
            continue
        mean2 = np.array([fx * t[0] / t[2] + cx, fy * t[1] / t[2] + cy])
        entries.append((t[2], i, mean2, np.linalg.inv(cov2)))
    entries.sort(key=lambda e: e[0])
    rgb = np.zeros((H, W, 3))
    alpha = np.zeros((H, W))
    depth = np.zeros((H, W))
    for v in range(H):
        for u in range(W):
            T = 1.0
            for z, i, mean2, prec in entries:
                d = mean2 - np.array([u + 0.5, v + 0.5])
                sigma = 0.5 * d @ prec @ d
                a = min(0.999, opac[i] * math.exp(-sigma))
                if sigma < 0 or a < 1 / 255:
                    continue
                if T * (1 - a) <= 1e-4:
                    break
                rgb[v, u] += colors[i] * a * T
                alpha[v, u] += a * T
                depth[v, u] += z * a * T
                T *= 1 - a
    rgb += (1 - alpha)[..., None] * np.asarray(background)
    depth = np.where(alpha > 0, depth / np.maximum(alpha, 1e-10), 0.0)
    return rgb, alpha, depth


@pytest.mark.parametrize("seed,max_pairs", [(0, None), (1, None), (2, None), (3, None), (3, 50)])
def test_matches_bruteforce_reference(seed, max_pairs):
    # Overlapping, some off-screen and some behind the camera (spread 4 around a camera 1.6 away);
    # seed 3 is a dense near-opaque stack, so alpha clamping and early termination happen.
    cloud = random_cloud(40, seed, spread=1.2 if seed < 2 else 4.0)
    if seed == 3:
        cloud = random_cloud(60, seed, spread=0.4)
        cloud.opacity_logits = cloud.opacity_logits.abs() + 7.0
    cam = small_camera(cx=11.0, cy=9.5) if seed == 1 else small_camera()
    bg = (0.2, 0.5, 0.9)
    # max_pairs=50 splits the dense scene into many depth chunks: termination must carry across them.
    out = render(cloud, cam, background=bg, backend="torch", **({"max_pairs": max_pairs} if max_pairs else {}))
    rgb, alpha, depth = reference_render(cloud, cam, bg)
    assert out.rgb.shape == (20, 24, 3) and out.alpha.shape == (20, 24) and out.depth.shape == (20, 24)
    assert out.alpha.max() > 0.5  # the scene really covers pixels
    np.testing.assert_allclose(out.rgb.numpy(), rgb, atol=1e-4)
    np.testing.assert_allclose(out.alpha.numpy(), alpha, atol=1e-4)
    covered = alpha > 1e-2  # expected depth is ill-conditioned where almost nothing is visible
    np.testing.assert_allclose(out.depth.numpy()[covered], depth[covered], rtol=1e-4, atol=1e-4)


def test_early_termination_is_exclusive_like_gsplat():
    # 5 coincident opaque Gaussians: the first takes alpha 0.999 (T = 1e-3); the second would bring
    # T to 1e-6 <= 1e-4, so compositing stops before it.
    n = 5
    cloud = GaussianCloud(
        means=torch.tensor([[0.0, 0.0, 2.0 + 0.1 * i] for i in range(n)]),
        log_scales=torch.full((n, 3), math.log(0.3)),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]] * n),
        colors=torch.tensor([[1.0, 0.0, 0.0]] + [[0.0, 1.0, 0.0]] * (n - 1)),
        opacity_logits=torch.full((n,), 12.0),
    )
    cam = Camera(torch.tensor([[20.0, 0, 8.5], [0, 20.0, 8.5], [0, 0, 1]]), torch.eye(4), 16, 16)  # centre pixel hits the means
    out = render(cloud, cam, background=(0.0, 0.0, 1.0))
    centre = out.rgb[8, 8]
    torch.testing.assert_close(out.alpha[8, 8], torch.tensor(0.999), atol=1e-6, rtol=0)
    torch.testing.assert_close(centre, torch.tensor([0.999, 0.0, 0.001]), atol=1e-6, rtol=0)


def test_projection_matches_gsplat_pure_torch():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    cloud = random_cloud(200, 3, spread=2.0)
    cam = small_camera(64, 48, 50.0, 55.0, 30.0, 25.0)
    covars = covariances_3d(cloud.quats, cloud.log_scales)
    ref_cov, _ = _quat_scale_to_covar_preci(cloud.quats, cloud.scales, compute_preci=False)
    torch.testing.assert_close(covars, ref_cov, atol=1e-6, rtol=1e-5)
    proj = project_gaussians(cloud.means, covars, torch.ones(200) * 0.9999, cam.world_to_cam[None], cam.K[None], 64, 48)
    radii, means2d, depths, conics, _ = _fully_fused_projection(
        cloud.means, ref_cov, cam.world_to_cam[None], cam.K[None], 64, 48
    )
    ok = (radii > 0).all(-1) & (proj.radii > 0).all(-1)
    assert ok.sum() > 50
    torch.testing.assert_close(proj.means2d[ok], means2d[ok], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(proj.conics[ok], conics[ok], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(proj.depths, depths)
    # Near-opaque: the opacity-aware extent is 3.33 sigma, as in gsplat's reference.
    assert ((radii > 0).all(-1) == (proj.radii > 0).all(-1)).all()


@pytest.mark.parametrize("max_pairs", [None, 20])
def test_gradients_match_finite_differences(max_pairs):
    cloud = random_cloud(6, 4, dtype=torch.float64, spread=0.4, opacity_scale=0.5)
    cam = Camera(*[t.double() for t in (small_camera(10, 8, 12.0, 12.0).K, small_camera().world_to_cam)], 10, 8)
    bg = torch.tensor([0.3, 0.6, 0.1], dtype=torch.float64)
    weights = torch.rand(8, 10, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def loss(means, log_scales, quats, colors, logits):
        c = GaussianCloud(means, log_scales, quats / quats.norm(dim=1, keepdim=True), colors, logits)
        out = render(c, cam, background=bg, **({"max_pairs": max_pairs} if max_pairs else {}))
        stacked = torch.cat([out.rgb, out.alpha[..., None], out.depth[..., None]], -1)
        return (stacked * weights).sum()

    inputs = [t.detach().clone().requires_grad_(True) for t in (cloud.means, cloud.log_scales, cloud.quats, cloud.colors, cloud.opacity_logits)]
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
    grads = torch.autograd.grad(loss(*inputs), inputs)
    assert all(g.abs().sum() > 0 for g in grads)  # every parameter really receives gradient


def test_isotropic_gaussian_footprint_is_analytic():
    sigma_w, z, f, o = 0.05, 2.0, 100.0, 0.8
    cloud = GaussianCloud(
        means=torch.tensor([[0.0, 0.0, z]]),
        log_scales=torch.full((1, 3), math.log(sigma_w)),
        quats=torch.tensor([[0.6, 0.0, 0.8, 0.0]]),  # rotation must not matter for a sphere
        colors=torch.tensor([[1.0, 1.0, 1.0]]),
        opacity_logits=torch.logit(torch.tensor([o])),
    )
    size = 48
    cam = Camera(torch.tensor([[f, 0, 24.0], [0, f, 24.0], [0, 0, 1]]), torch.eye(4), size, size)
    out = render(cloud, cam, background=(0.0, 0.0, 0.0))
    var_px = (f * sigma_w / z) ** 2 + 0.3  # EWA at the optical axis plus the 0.3 px^2 dilation
    uu, vv = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="xy")
    expected = o * torch.exp(-0.5 * ((uu - 24.0) ** 2 + (vv - 24.0) ** 2) / var_px)
    expected = torch.where(expected >= 1 / 255, expected, torch.zeros_like(expected))
    torch.testing.assert_close(out.alpha, expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(out.rgb[..., 0], expected, atol=2e-6, rtol=0)
    assert (out.depth[expected > 0] - z).abs().max() < 1e-5


def _two_blobs(front_red: bool):
    z_red, z_blue = (2.0, 3.0) if front_red else (3.0, 2.0)
    return GaussianCloud(
        means=torch.tensor([[0.0, 0.0, z_red], [0.0, 0.0, z_blue]]),
        log_scales=torch.full((2, 3), math.log(0.2)),
        quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 2),
        colors=torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        opacity_logits=torch.full((2,), 8.0),
    )


@pytest.mark.parametrize("front_red", [True, False])
def test_occlusion_order(front_red):
    # Put the blob listed second in front too: order must come from depth, not from the index.
    cam = Camera(torch.tensor([[40.0, 0, 16.5], [0, 40.0, 16.5], [0, 0, 1]]), torch.eye(4), 32, 32)
    out = render(_two_blobs(front_red), cam, background=(0.0, 0.0, 0.0))
    centre = out.rgb[16, 16]
    front, back = (0, 2) if front_red else (2, 0)
    assert centre[front] > 0.99 and centre[back] < 0.01
    assert abs(float(out.depth[16, 16]) - 2.0) < 0.03


def test_empty_scene_and_scene_behind_camera_give_background():
    cam = small_camera()
    bg = torch.tensor([0.1, 0.7, 0.4])
    empty = GaussianCloud(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0))
    behind = random_cloud(10, 0).with_means(torch.tensor([[3.0, 0.6, 0.8]]).expand(10, 3) + 0.01 * torch.randn(10, 3))
    for cloud in (empty, behind):
        out = render(cloud, cam, background=bg)
        assert torch.equal(out.rgb, bg.expand(20, 24, 3))
        assert torch.equal(out.alpha, torch.zeros(20, 24)) and torch.equal(out.depth, torch.zeros(20, 24))


def test_chunking_does_not_change_images_or_gradients():
    cloud = random_cloud(60, 5, spread=1.0)
    cam = small_camera(32, 28, 40.0, 40.0)
    results = []
    for max_pairs in (4_000_000, 37):
        means = cloud.means.clone().requires_grad_(True)
        colors = cloud.colors.clone().requires_grad_(True)
        out = render(GaussianCloud(means, cloud.log_scales, cloud.quats, colors, cloud.opacity_logits), cam, max_pairs=max_pairs)
        (out.rgb.square().sum() + out.depth.sum()).backward()
        results.append((out.rgb, out.alpha, means.grad, colors.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_render_sequence_matches_single_renders_and_views():
    cloud = random_cloud(30, 6, spread=0.8)
    offsets = torch.tensor([0.0, 0.05, -0.1])[:, None, None] * torch.tensor([1.0, 0.5, -1.0])
    means_seq = (cloud.means[None] + offsets).requires_grad_(True)  # (3, N, 3)
    cams = [small_camera(), look_at((0.2, -1.8, 0.5), (0, 0, 0), fx=30.0, width=24, height=20)]
    seq = render_sequence(cloud, means_seq, cams[0])
    assert seq.rgb.shape == (3, 20, 24, 3) and seq.alpha.shape == (3, 20, 24)
    multi = render_sequence(cloud, means_seq, cams)
    assert multi.rgb.shape == (3, 2, 20, 24, 3)
    for t in range(3):
        single = render(cloud.with_means(means_seq[t].detach()), cams[0])
        torch.testing.assert_close(seq.rgb[t], single.rgb, atol=1e-6, rtol=0)
        torch.testing.assert_close(multi.rgb[t, 0], single.rgb, atol=1e-6, rtol=0)
        views = render_views(cloud.with_means(means_seq[t].detach()), cams)
        torch.testing.assert_close(multi.depth[t], views.depth, atol=1e-5, rtol=0)
    multi.rgb.sum().backward()
    assert means_seq.grad.abs().sum(dim=(1, 2)).min() > 0  # every frame gets gradient


def test_backend_selection_and_errors():
    cloud = random_cloud(5, 0)
    cam = small_camera()
    assert resolve_backend("auto", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="CUDA"):
        render(cloud, cam, backend="gsplat")
    with pytest.raises(ValueError, match="unknown render backend"):
        render(cloud, cam, backend="opengl")


def test_bad_inputs_raise_clear_errors():
    cloud = random_cloud(5, 0)
    cam = small_camera()
    bad = cloud.clone()
    bad.means[2, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        render(bad, cam)
    with pytest.raises(ValueError, match="background"):
        render(cloud, cam, background=(1.0, 1.0))
    with pytest.raises(ValueError, match="means_seq"):
        render_sequence(cloud, torch.zeros(2, 4, 3), cam)
    with pytest.raises(ValueError, match="one image size"):
        render_views(cloud, [cam, small_camera(width=30)])
    with pytest.raises(ValueError, match="GaussianCloud"):
        render(cloud.means, cam)


def _scene_for_gsplat(device):
    cloud = random_cloud(3000, 7, spread=0.6).to(device)
    cam = look_at((1.5, 0.4, 0.5), (0, 0, 0), fx=110.0, width=96, height=80).to(device)
    return cloud, cam


@pytest.mark.gpu
def test_torch_and_gsplat_images_agree():
    cloud, cam = _scene_for_gsplat("cuda")
    ours = render(cloud, cam, backend="torch", background=(0.3, 0.3, 0.3))
    theirs = render(cloud, cam, backend="gsplat", background=(0.3, 0.3, 0.3))
    mse = (ours.rgb - theirs.rgb).square().mean()
    assert float(-10 * torch.log10(mse)) >= 40.0
    assert (ours.alpha - theirs.alpha).abs().mean() < 1e-3


@pytest.mark.gpu
def test_torch_and_gsplat_gradients_agree():
    cloud, cam = _scene_for_gsplat("cuda")
    grads = {}
    target = torch.rand(80, 96, 3, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    for backend in ("torch", "gsplat"):
        params = [t.detach().clone().requires_grad_(True) for t in (cloud.means, cloud.log_scales, cloud.quats, cloud.colors, cloud.opacity_logits)]
        out = render(GaussianCloud(*params), cam, backend=backend)
        (out.rgb - target).square().mean().backward()
        grads[backend] = [p.grad.flatten() for p in params]
    for ours, theirs in zip(grads["torch"], grads["gsplat"]):
        cosine = torch.nn.functional.cosine_similarity(ours, theirs, dim=0)
        assert cosine > 0.99, float(cosine)
        assert (ours.norm() / theirs.norm() - 1).abs() < 0.05


def test_image_groups_give_the_same_sequence(monkeypatch):
    import reconphys_ros.core.render.rasterize_torch as rasterize_torch

    cloud = random_cloud(30, 8, spread=0.8)
    means_seq = (cloud.means[None] + torch.randn(4, 30, 3, generator=torch.Generator().manual_seed(1)) * 0.05).requires_grad_(True)
    whole = render_sequence(cloud, means_seq, small_camera())
    (grad_whole,) = torch.autograd.grad(whole.rgb.sum(), means_seq)
    monkeypatch.setattr(rasterize_torch, "MAX_GAUSSIAN_IMAGES_PER_GROUP", 30)  # one image per group
    grouped = render_sequence(cloud, means_seq, small_camera())
    (grad_grouped,) = torch.autograd.grad(grouped.rgb.sum(), means_seq)
    torch.testing.assert_close(grouped.rgb, whole.rgb)
    torch.testing.assert_close(grad_grouped, grad_whole)


def test_gradients_stay_finite_with_gaussians_behind_and_beside_the_camera():
    cloud = random_cloud(80, 9, spread=4.0)  # camera 1.6 from the origin: some behind, some at z ~ 0
    cloud.means[0] = small_camera().center + torch.tensor([0.0, 0.0, 1e-7])  # practically at the eye
    params = [t.clone().requires_grad_(True) for t in (cloud.means, cloud.log_scales, cloud.quats, cloud.colors, cloud.opacity_logits)]
    out = render(GaussianCloud(*params), small_camera())
    (out.rgb.sum() + out.depth.sum()).backward()
    assert out.alpha.max() > 0.1
    assert all(torch.isfinite(p.grad).all() for p in params)
