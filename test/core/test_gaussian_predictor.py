"""Learned Gaussian predictor: crop geometry, output shapes and world placement, checkpoint round trip and
clear load errors, plug-in through predictors.load_gaussian_predictor."""
import numpy as np
import pytest
import torch

from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.models import gaussian_predictor as gp
from reconphys_ros.core.models.checkpoint import CheckpointError, save_checkpoint
from reconphys_ros.core.models.object_depth import DepthPrior
from reconphys_ros.core.models.predictors import MaskInflationPredictor, load_gaussian_predictor
from reconphys_ros.core.pipeline import PipelineConfig, ReconstructionPipeline
from reconphys_ros.core.render import dataset_views, render

SMALL = gp.GaussianNetConfig(input_size=32, output_size=16, width=8, layers=2)
CENTRE = np.array([0.1, -0.05, 0.6])
RADIUS = 0.25


def _ball_scene(size: int = 64):
    """A ball of Gaussians at CENTRE seen by the first dataset view: image uint8, mask, camera, true depth."""
    cloud = GaussianCloud(*_ball_cloud_tensors())
    camera = dataset_views(width=size, image_height=size)[0]
    out = render(cloud, camera, backend="torch")
    image = (out.rgb.detach().numpy() * 255).round().astype(np.uint8)
    mask = (out.alpha.detach().numpy() >= 0.5).astype(np.uint8)
    cam_centre = camera.world_to_cam[:3, :3].double().numpy() @ CENTRE + camera.world_to_cam[:3, 3].double().numpy()
    return image, mask, camera, float(cam_centre[2])


def _predictor(seed: int = 0) -> gp.LearnedGaussianPredictor:
    torch.manual_seed(seed)
    return gp.LearnedGaussianPredictor(gp.GaussianNet(SMALL))


def test_crop_window_maps_crop_pixels_back_to_the_source_bbox():
    rgb = np.zeros((40, 50, 3), np.float32)
    mask = np.zeros((40, 50), bool)
    mask[10:20, 15:35] = True  # 20 wide, 10 high: centre (25, 15) in continuous pixel coordinates
    rgb[mask] = (1.0, 0.5, 0.0)
    inp, crop_mask, window = gp.crop_inputs(rgb, mask, 32)
    assert inp.shape == (6, 32, 32) and crop_mask.shape == (32, 32) and inp.dtype == np.float32
    assert window.side == pytest.approx(gp.CROP_MARGIN * 20 + 2.0)
    assert window.x0 + window.side / 2 == pytest.approx(25.0)
    assert window.y0 + window.side / 2 == pytest.approx(15.0)
    # Object cells of the crop map back inside the source rectangle, and cover its extent.
    ys, xs = np.nonzero(crop_mask >= 0.5)
    step = window.side / 32
    u, v = window.x0 + (xs + 0.5) * step, window.y0 + (ys + 0.5) * step
    assert u.min() >= 15 - 0.5 and u.max() <= 35 + 0.5 and v.min() >= 10 - 0.5 and v.max() <= 20 + 0.5
    assert u.max() - u.min() > 17 and v.max() - v.min() > 7
    inner_y, inner_x = np.nonzero(crop_mask > 0.999)  # fully inside: the colour is the object's
    assert len(inner_y) > 0.5 * len(ys)
    np.testing.assert_allclose(inp[:3, inner_y, inner_x].T, np.tile([1.0, 0.5, 0.0], (len(inner_y), 1)), atol=1e-3)


def test_prediction_shapes_and_world_placement():
    image, mask, camera, depth = _ball_scene()
    predictor = _predictor()
    predictor.detail = False  # the net's own cloud
    cloud = predictor.predict(image, mask, camera, DepthPrior(depth=depth))
    inp, crop_mask, _ = gp.crop_inputs(image / 255.0, mask > 0, SMALL.input_size)
    kept = int(gp.keep_cells(torch.from_numpy(crop_mask), SMALL.output_size).sum())
    assert cloud.num_gaussians == SMALL.layers * kept > 0
    assert cloud.means.dtype == torch.float32 and cloud.quats.shape == (cloud.num_gaussians, 4)
    assert torch.allclose(cloud.quats.norm(dim=1), torch.ones(cloud.num_gaussians))
    assert float(cloud.colors.min()) >= 0.0 and float(cloud.colors.max()) <= 1.0
    # Centres project onto the silhouette and sit near the true depth / centre (untrained: a slab at the prior).
    uv, z = camera.project(cloud.means)
    ys, xs = np.nonzero(mask)
    assert float(uv[:, 0].min()) >= xs.min() - 1 and float(uv[:, 0].max()) <= xs.max() + 2
    assert float(uv[:, 1].min()) >= ys.min() - 1 and float(uv[:, 1].max()) <= ys.max() + 2
    assert abs(float(z.mean()) - depth) < 0.5 * RADIUS
    assert np.linalg.norm(cloud.means.mean(0).numpy() - CENTRE) < 0.5 * RADIUS


def test_detail_split_takes_the_input_texture_and_stays_on_the_object():
    image, mask, camera, depth = _ball_scene()
    image = image.copy()
    image[:, : image.shape[1] // 2] = (250, 10, 10)  # a two-colour object: left half red
    predictor = _predictor()
    predictor.detail = False
    coarse = predictor.predict(image, mask, camera, DepthPrior(depth=depth))
    predictor.detail = True
    fine = predictor.predict(image, mask, camera, DepthPrior(depth=depth))
    k = len(gp.SPLIT_OFFSETS)
    assert fine.num_gaussians == k * coarse.num_gaussians
    torch.testing.assert_close(fine.log_scales, (coarse.log_scales + np.log(gp.SPLIT_SCALE)).repeat_interleave(k, 0))
    # Children over the object carry the colour of the pixel they project to ...
    uv, _ = camera.project(fine.means)
    col, row = uv[:, 0].floor().long().numpy(), uv[:, 1].floor().long().numpy()
    inside = mask[row.clip(0, 63), col.clip(0, 63)] > 0
    assert inside.mean() > 0.9
    np.testing.assert_allclose(fine.colors.numpy()[inside], image[row[inside], col[inside]] / 255.0, atol=2e-3)
    # ... and spread around their parent's centre (mean offset 0), except those whose spot was off the silhouette:
    # they stay at the parent's centre.
    parents = coarse.means.repeat_interleave(k, 0)
    stayed = (fine.means == parents).all(1).reshape(-1, k)  # (N, k)
    assert 0 < stayed.float().mean() < 0.5
    spread = ~stayed.any(1)
    torch.testing.assert_close(fine.means.reshape(-1, k, 3).mean(1)[spread], coarse.means[spread], atol=1e-4, rtol=0)
    uv_spot, _ = camera.project(fine.means[~stayed.reshape(-1)])
    assert (mask[uv_spot[:, 1].floor().long().numpy(), uv_spot[:, 0].floor().long().numpy()] > 0).all()


def test_depth_prior_sets_the_metric_scale():
    image, mask, camera, depth = _ball_scene()
    predictor = _predictor()
    near = predictor.predict(image, mask, camera, DepthPrior(depth=depth))
    far = predictor.predict(image, mask, camera, DepthPrior(depth=2 * depth))
    cam_pos = camera.center
    # Same rays, twice the distance: positions relative to the camera and Gaussian sizes double.
    torch.testing.assert_close(far.means - cam_pos, 2 * (near.means - cam_pos), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(far.log_scales, near.log_scales + np.log(2.0), atol=1e-4, rtol=1e-4)


def test_bad_inputs_raise_clear_errors():
    image, mask, camera, depth = _ball_scene()
    predictor = _predictor()
    with pytest.raises(ValueError, match="empty"):
        predictor.predict(image, np.zeros_like(mask), camera, DepthPrior(depth=depth))
    with pytest.raises(ValueError, match="RGB"):
        predictor.predict(image[..., 0], mask, camera, DepthPrior(depth=depth))
    with pytest.raises(ValueError, match="positive"):
        DepthPrior(depth=float("nan"))
    with pytest.raises(ValueError, match="input must be"):
        predictor.net(torch.zeros(1, 3, SMALL.input_size, SMALL.input_size))
    with pytest.raises(ValueError, match="output_size"):
        gp.GaussianNetConfig(input_size=64, output_size=8).validate()


def test_checkpoint_round_trip_and_plugin(tmp_path):
    image, mask, camera, depth = _ball_scene()
    predictor = _predictor(seed=3)
    path = tmp_path / "gaussian_predictor.pt"
    gp.save(str(path), predictor.net, step=7)
    loaded = gp.load(str(path))
    a = predictor.predict(image, mask, camera, DepthPrior(depth=depth))
    b = loaded.predict(image, mask, camera, DepthPrior(depth=depth))
    torch.testing.assert_close(a.means, b.means)
    torch.testing.assert_close(a.opacity_logits, b.opacity_logits)
    # predictors.py picks the learned model when the weights file exists, mask inflation otherwise.
    assert isinstance(load_gaussian_predictor(str(tmp_path)), gp.LearnedGaussianPredictor)
    assert isinstance(load_gaussian_predictor(str(tmp_path / "none")), MaskInflationPredictor)
    # The pipeline's gaussian_model choice: inflation even with weights; learned without weights is an error.
    assert isinstance(load_gaussian_predictor(str(tmp_path), learned=False), MaskInflationPredictor)
    assert isinstance(load_gaussian_predictor(str(tmp_path), learned=True), gp.LearnedGaussianPredictor)
    with pytest.raises(ValueError, match="needs its weights"):
        load_gaussian_predictor(str(tmp_path / "none"), learned=True)
    with pytest.raises(ValueError, match="gaussian_model"):
        PipelineConfig(gaussian_model="splat").validate()
    pipeline = ReconstructionPipeline(PipelineConfig(weights_dir=str(tmp_path), gaussian_model="inflation"))
    assert isinstance(pipeline.gaussian_predictor, MaskInflationPredictor)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        gp.load(str(tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch file"):
        gp.load(str(junk))
    other = tmp_path / "other.pt"
    save_checkpoint(str(other), "physics_predictor", 1, {}, {})
    with pytest.raises(ValueError, match="expected 'gaussian_predictor'"):
        gp.load(str(other))
    wrong_version = tmp_path / "v0.pt"
    save_checkpoint(str(wrong_version), gp.CHECKPOINT_KIND, 0, {}, {})
    with pytest.raises(ValueError, match="version"):
        gp.load(str(wrong_version))
    bad_config = tmp_path / "bad_config.pt"
    save_checkpoint(str(bad_config), gp.CHECKPOINT_KIND, gp.CHECKPOINT_VERSION, {"input_size": 30}, {})
    with pytest.raises(ValueError, match="network config"):
        gp.load(str(bad_config))
    mismatch = tmp_path / "mismatch.pt"
    net = gp.GaussianNet(SMALL)
    state = net.state_dict()
    state["head.bias"] = torch.zeros(3)
    save_checkpoint(str(mismatch), gp.CHECKPOINT_KIND, gp.CHECKPOINT_VERSION, SMALL.__dict__, state)
    with pytest.raises(ValueError, match="does not match the network"):
        gp.load(str(mismatch))


def _silhouette_iou(cloud, camera, mask) -> float:
    alpha = render(cloud, camera, backend="torch").alpha.detach().numpy()
    pred, true = alpha >= 0.5, mask > 0
    return float((pred & true).sum() / (pred | true).sum())


def test_shipped_weights_reconstruct_an_unseen_ball():
    predictor = load_gaussian_predictor()
    if not isinstance(predictor, gp.LearnedGaussianPredictor):
        pytest.skip("no gaussian_predictor.pt shipped in reconphys_ros/weights/")
    image, mask, camera, depth = _ball_scene()
    cloud = predictor.predict(image, mask, camera, DepthPrior(depth=depth))
    assert np.linalg.norm(cloud.means.mean(0).numpy() - CENTRE) < 0.3 * RADIUS
    assert _silhouette_iou(cloud, camera, mask) > 0.7
    # From the side the ball still looks round: the predicted depth extent is object-like, not a flat card.
    side = dataset_views(width=64, image_height=64)[1]
    truth = render(GaussianCloud(*_ball_cloud_tensors()), side, backend="torch").alpha.detach().numpy() >= 0.5
    assert _silhouette_iou(cloud, side, truth.astype(np.uint8)) > 0.5


def _ball_cloud_tensors():
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(600, 3, generator=gen)
    pts = dirs / dirs.norm(dim=1, keepdim=True) * torch.rand(600, 1, generator=gen) ** (1 / 3) * RADIUS
    pts = pts + torch.tensor(CENTRE, dtype=torch.float32)
    return (pts, torch.full((600, 3), float(np.log(0.03))), torch.tensor([[1.0, 0, 0, 0]]).repeat(600, 1),
            torch.tensor([[0.8, 0.3, 0.2]]).repeat(600, 1), torch.full((600,), 3.0))


@pytest.mark.gpu
def test_cuda_prediction_matches_cpu():
    image, mask, camera, depth = _ball_scene()
    cpu = _predictor(seed=5)
    gpu = gp.LearnedGaussianPredictor(cpu.net, device="cuda")
    a = _predictor(seed=5).predict(image, mask, camera, DepthPrior(depth=depth))
    b = gpu.predict(image, mask, camera, DepthPrior(depth=depth))
    assert b.device.type == "cuda"
    torch.testing.assert_close(b.means.cpu(), a.means, atol=1e-4, rtol=1e-4)
