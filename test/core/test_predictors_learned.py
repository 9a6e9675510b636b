"""Learned physics predictor: output ranges, mass handling, checkpoint checks, and the predictors.py hook."""
import math

import numpy as np
import pytest
import torch

from reconphys_ros.core.models.checkpoint import CheckpointError, save_checkpoint
from reconphys_ros.core.models.physics_predictor import (PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION,
                                                         LearnedPhysicsPredictor, PhysicsNet,
                                                         PhysicsNetConfig, estimate_from_prediction, load, load_net,
                                                         mask_statistics, net_config_dict, prepare_clip)
from reconphys_ros.core.models.predictors import load_physics_predictor
from reconphys_ros.core.physics.params import DENSITY_PRIOR, RATIO_RANGES, paper_from_ratios, ratios_from_paper

SMALL = PhysicsNetConfig(image_size=32, num_frames=8, width=8, embed=32, heads=2, layers=1)


def _clip(T=8, size=40):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (T, size, size, 3), dtype=np.uint8)
    masks = np.zeros((T, size, size), np.uint8)
    for t in range(T):
        masks[t, 5 + t:20 + t, 10:25] = 255
    return frames, masks


def _save(net, path):
    save_checkpoint(str(path), PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION, net_config_dict(net),
                    net.state_dict())


def test_outputs_stay_inside_the_ranges_even_for_extreme_weights():
    torch.manual_seed(0)
    net = PhysicsNet(SMALL)
    with torch.no_grad():
        for p in net.head.parameters():
            p.mul_(1000.0)  # saturate the heads
    frames, masks = torch.rand(3, 8, 3, 32, 32), torch.rand(3, 8, 1, 32, 32)
    mean, log_var = net(frames, masks)
    assert mean.shape == (3, 3) and log_var.shape == (3, 3)
    for q, (lo, hi) in enumerate(RATIO_RANGES.values()):
        assert ((mean[:, q] >= lo) & (mean[:, q] <= hi)).all()
    assert torch.isfinite(log_var).all() and (log_var > -8.01).all() and (log_var < 4.01).all()


def test_network_rejects_wrong_shapes():
    net = PhysicsNet(SMALL)
    with pytest.raises(ValueError, match="prepare_clip"):
        net(torch.rand(1, 8, 3, 16, 16), torch.rand(1, 8, 1, 16, 16))
    with pytest.raises(ValueError, match="frames"):
        net(torch.rand(1, 2, 3, 32, 32), torch.rand(1, 2, 1, 32, 32))
    with pytest.raises(ValueError, match="multiple of 16"):
        PhysicsNetConfig(image_size=20).validate()


def test_mask_statistics_by_hand():
    m = torch.zeros(1, 1, 1, 10, 10)
    m[..., 2:4, 6:8] = 1.0  # rows 2-3, columns 6-7
    cx, cy, area = mask_statistics(m)[0, 0, :3].tolist()
    assert cx == pytest.approx(0.7) and cy == pytest.approx(0.3) and area == pytest.approx(0.04)


def test_prepare_clip_validates_and_resizes():
    frames, masks = _clip()
    rgb, cov = prepare_clip(frames, masks, 32)
    assert rgb.shape == (8, 3, 32, 32) and cov.shape == (8, 1, 32, 32)
    assert 0 <= float(rgb.min()) and float(rgb.max()) <= 1 and float(cov.max()) == 1.0
    with pytest.raises(ValueError, match="same T"):
        prepare_clip(frames, masks[:-1], 32)
    bad = frames.astype(np.float32) / 255
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        prepare_clip(bad, masks, 32)


def test_mass_scales_stiffness_and_damping():
    mean = np.array([math.log(100.0), math.log(0.5), 0.3])
    sigma = np.array([0.2, 0.5, 0.1])
    # the prediction is size-independent (k/m at 1 m); a 25 cm object has 4x the k/m and 2x the d/m
    given = estimate_from_prediction(mean, sigma, 0.25, 0.004, known_mass=2.0)
    assert given.mass_given and given.total_mass == pytest.approx(2.0) and given.size == 0.25
    m = 2.0 / 2048  # paper convention: per anchor of the reference lattice
    assert given.params.stiffness == pytest.approx(400.0 * m) and given.params.damping == pytest.approx(1.0 * m)
    assert given.std["mass"] == 0.0 and given.std["stiffness_per_mass"] == pytest.approx(400.0 * 0.2)
    np.testing.assert_allclose(given.size_independent(), mean)
    prior = estimate_from_prediction(mean, sigma, 0.25, 0.004)
    assert not prior.mass_given and prior.std["mass"] > 0
    assert prior.total_mass == pytest.approx(DENSITY_PRIOR * 0.004)  # a density prior times the volume
    assert prior.params.stiffness_per_mass == pytest.approx(400.0)  # the identifiable ratio is kept
    for bad in (0.0, -2.0, float("nan"), 5000.0):
        with pytest.raises(ValueError, match="known_mass.*kg"):
            estimate_from_prediction(mean, sigma, 0.25, 0.004, known_mass=bad)
    p = paper_from_ratios(torch.tensor([[math.log(100.0), math.log(0.5), 0.3]]), 2.0)
    torch.testing.assert_close(p, torch.tensor([[2.0, 200.0, 1.0, 0.3]]))
    np.testing.assert_allclose(paper_from_ratios(np.array([math.log(100.0), math.log(0.5), 0.3]), 2.0),
                               [2.0, 200.0, 1.0, 0.3])
    torch.testing.assert_close(ratios_from_paper(p), torch.tensor([[math.log(100.0), math.log(0.5), 0.3]]))


def test_checkpoint_roundtrip_and_hook(tmp_path):
    torch.manual_seed(1)
    net = PhysicsNet(SMALL)
    _save(net, tmp_path / "physics_predictor.pt")
    predictor = load_physics_predictor(str(tmp_path))
    assert isinstance(predictor, LearnedPhysicsPredictor)
    frames, masks = _clip()
    estimate = predictor.predict_estimate(frames, masks, 0.2, 0.003, fps=30.0)
    for value, (lo, hi) in zip(estimate.size_independent(), RATIO_RANGES.values()):
        assert lo - 1e-9 <= value <= hi + 1e-9
    with torch.no_grad():
        rgb, cov = prepare_clip(frames, masks, 32)
        expected, _ = net(rgb[None], cov[None])
    np.testing.assert_allclose(predictor.predict_raw(frames, masks, 0.2, 30.0)[0], expected[0].numpy(), rtol=1e-5)
    assert load_physics_predictor(str(tmp_path / "empty")) is None  # no weights: the non-learned fallback


def test_checkpoint_mismatches_fail_clearly(tmp_path):
    net = PhysicsNet(SMALL)
    state = net.state_dict()
    state["head.3.weight"] = torch.zeros(5, 5)
    save_checkpoint(str(tmp_path / "shape.pt"), PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION,
                    net_config_dict(net), state)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_net(str(tmp_path / "shape.pt"))
    save_checkpoint(str(tmp_path / "ver.pt"), PHYSICS_CHECKPOINT_KIND, 99, net_config_dict(net), net.state_dict())
    with pytest.raises(CheckpointError, match="version 99"):
        load(str(tmp_path / "ver.pt"))
    save_checkpoint(str(tmp_path / "kind.pt"), "gaussian_predictor", 1, {}, {})
    with pytest.raises(CheckpointError, match="expected 'physics_predictor'"):
        load(str(tmp_path / "kind.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load(str(tmp_path / "junk.pt"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load(str(tmp_path / "missing.pt"))


def test_time_scale_input_is_required_and_used():
    """A v8 network reads ln tau = ln(sqrt(g / L) / fps): the same frames of a 5 cm and a 1 m object (or at 30 and
    120 fps) are different physics."""
    from reconphys_ros.core.models.physics_predictor import log_frame_interval
    torch.manual_seed(2)
    net = PhysicsNet(PhysicsNetConfig(image_size=32, num_frames=8, width=8, embed=32, heads=2, layers=1,
                                      time_scale_input=True))
    predictor = LearnedPhysicsPredictor(net)
    frames, masks = _clip()
    small, _ = predictor.predict_raw(frames, masks, 0.05, 30.0)
    large, _ = predictor.predict_raw(frames, masks, 1.0, 30.0)
    assert np.abs(small - large).max() > 1e-4
    assert log_frame_interval(1.0, 60.0) == pytest.approx(log_frame_interval(0.25, 120.0))  # the similarity law
    rgb, cov = prepare_clip(frames, masks, 32)
    with pytest.raises(ValueError, match="log_tau"):
        net(rgb[None], cov[None])


def test_motion_crop_fills_the_input_with_a_small_object():
    """crop_to_motion: a 6 px object moving 10 px fills the 32^2 input as a large one would; boxes reaching past the
    image edge are zero-padded, not shifted."""
    from reconphys_ros.core.models.physics_predictor import motion_crop_box
    T, H, W = 6, 120, 160
    frames = np.zeros((T, H, W, 3), np.uint8)
    masks = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        masks[t, 10 + 2 * t:16 + 2 * t, 150:156] = 255
        frames[t][masks[t] > 0] = 200
    top, left, side = motion_crop_box(masks)
    assert side >= 16 and left + side > W  # square around rows 10..25, cols 150..155, past the right edge
    _, whole = prepare_clip(frames, masks, 32)
    _, cropped = prepare_clip(frames, masks, 32, crop=True)
    assert cropped[0].sum() > 20 * whole[0].sum()  # the object covers far more of the input
    assert cropped.shape == whole.shape == (T, 1, 32, 32)
    with pytest.raises(ValueError, match="empty"):
        prepare_clip(frames, np.zeros_like(masks), 32, crop=True)
