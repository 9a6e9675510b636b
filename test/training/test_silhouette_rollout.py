"""The training loss (training/rollout.py) and the test-time estimation (physics_by_simulation) roll out through one
module (core/models/silhouette_rollout.py): on the same clip, lattice, camera size and Gaussians they give the
same silhouette loss and gradient."""
import numpy as np
import pytest
import torch

from reconphys_ros.core.models.physics_by_simulation import RefineConfig, _SilhouetteLoss
from reconphys_ros.core.physics import LatticeConfig, PhysicsParams, sample_anchors
from reconphys_ros.testing.synthetic_drop import make_drop_clip
from training.rollout import RolloutConfig, prepare_scene, rollout_loss

OBJECT_ID = "synthetic_ellipsoid"
PARAMS = [[1.0, 200.0, 1.0, 0.5], [1.0, 60.0, 0.5, 0.3]]


@pytest.fixture(scope="module")
def clip():
    torch.set_num_threads(1)
    return make_drop_clip(PhysicsParams(1.0, 200.0, 1.0, 0.5), num_frames=8, num_gaussians=600)


def _training_item(clip):
    """The clip as a single-view data set item: frame-0 anchors = the Gaussian centres (the estimator samples
    its lattice from them too), binary alpha, no spin."""
    g = clip.gaussians
    frames = torch.as_tensor(clip.frames).permute(0, 3, 1, 2).float() / 255.0
    item = {"rgb": frames, "alpha": torch.as_tensor(clip.masks > 0).float()[:, None],
            "anchors": g.means[None], "gaussian_means": g.means[None],
            "gaussians": {"log_scales": g.log_scales, "quats": g.quats, "colors": g.colors,
                          "opacity_logits": g.opacity_logits},
            "K": clip.camera.K, "world_to_cam": clip.camera.world_to_cam}
    meta = {"object_id": OBJECT_ID,
            "initial_state": {"velocity": clip.initial_velocity.tolist(), "angular_velocity": [0.0, 0.0, 0.0]}}
    return item, meta


def _both(clip, max_gaussians: int, render_size: int):
    lattice = LatticeConfig(96, 12, name="training")
    train_cfg = RolloutConfig(num_anchors=lattice.num_anchors, k_neighbors=lattice.k_neighbors,
                              render_size=render_size, max_gaussians=max_gaussians, substeps=10, rgb_weight=0.0)
    scene = prepare_scene(*_training_item(clip), train_cfg)
    refine_cfg = RefineConfig(render_size=render_size, max_render_gaussians=max_gaussians, frame_stride=1,
                              min_substeps=10, estimation_lattice=lattice).validate()
    anchors = sample_anchors(clip.gaussians.means.numpy(), lattice.num_anchors, OBJECT_ID)
    estimator = _SilhouetteLoss(clip.gaussians, anchors, clip.masks, clip.camera, clip.initial_velocity, clip.fps,
                                refine_cfg, OBJECT_ID, "cpu", seed=0)
    return scene, train_cfg, estimator


def test_training_and_estimation_give_the_same_loss_and_gradient(clip):
    # the image size itself: both resize their targets by the identity (torch vs OpenCV area averaging otherwise)
    scene, train_cfg, estimator = _both(clip, max_gaussians=1000, render_size=clip.camera.width)
    np.testing.assert_array_equal(scene.rollout.anchors, estimator.object.anchors)
    assert torch.equal(scene.target_alpha, estimator.target)
    for row in PARAMS:
        p_train = torch.tensor([row], requires_grad=True)
        p_est = torch.tensor([row], requires_grad=True)
        loss_train, _, _ = rollout_loss([scene], p_train, train_cfg)
        loss_est = estimator(p_est, truncated=True)
        assert float(loss_train[0].detach()) > 0
        torch.testing.assert_close(loss_train, loss_est, rtol=1e-6, atol=0)
        loss_train.sum().backward()
        loss_est.sum().backward()
        torch.testing.assert_close(p_train.grad, p_est.grad, rtol=1e-5, atol=1e-12)
    # a batch of candidates (one replicated model, one render) agrees with one clip at a time
    batch = estimator(torch.tensor(PARAMS), truncated=False)
    single = torch.cat([rollout_loss([scene], torch.tensor([row]), train_cfg)[0] for row in PARAMS]).detach()
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=0)


def test_both_render_the_same_gaussian_subset(clip):
    """Fewer Gaussians than the clip has: the same random subset; training widens it by the full
    log((n/k)^(1/3)), the estimator by the share of that which best fits the first mask (an explicit option)."""
    scene, _, estimator = _both(clip, max_gaussians=150, render_size=48)
    train_proxy, est_proxy = scene.rollout.proxy, estimator.object.proxy
    assert train_proxy.num_gaussians == est_proxy.num_gaussians == 150
    assert torch.equal(train_proxy.means, est_proxy.means)
    full = np.log((clip.gaussians.num_gaussians / 150) ** (1 / 3))
    widen_train = train_proxy.log_scales.mean() - clip.gaussians.log_scales.mean()
    widen_est = est_proxy.log_scales.mean() - clip.gaussians.log_scales.mean()
    assert float(widen_train) == pytest.approx(full, abs=1e-5)
    assert -1e-5 <= float(widen_est) <= full + 1e-5
