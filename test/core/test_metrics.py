"""Metrics on constructed cases with known answers."""
import math

import numpy as np
import pytest

from reconphys_ros.core.metrics import (PSNR_CAP, chamfer_distance, earth_movers_distance, mean_param_errors,
                                        param_errors, psnr, ssim)
from reconphys_ros.core.physics import PhysicsParams


def _image(seed=0, shape=(32, 32, 3)):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def test_psnr_identical_is_capped_and_known_offset_matches_formula():
    a = _image()
    assert psnr(a, a) == PSNR_CAP
    b = np.clip(a + 0.1, 0, 1)
    mse = float(np.mean((a - b) ** 2))
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)


def test_psnr_uint8_and_mask_only_counts_masked_pixels():
    a = (_image() * 255).astype(np.uint8)
    b = a.copy()
    b[:, :16] = 0  # differ only in the left half
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16:] = 1
    assert psnr(a, b, mask) == PSNR_CAP
    assert psnr(a, b) < 30
    with pytest.raises(ValueError, match="empty"):
        psnr(a, b, np.zeros((32, 32)))
    with pytest.raises(ValueError, match="shape"):
        psnr(a, b[:10])


def test_ssim_identical_is_one_and_noise_lowers_it():
    a = _image()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 0.2, a.shape), 0, 1).astype(np.float32)
    assert ssim(a, noisy) < 0.9


def test_chamfer_and_emd_of_a_known_shift():
    g = np.stack(np.meshgrid(*[np.arange(5) * 0.1] * 3, indexing="ij"), -1).reshape(-1, 3)
    shift = np.array([0.01, 0.0, 0.0])
    assert chamfer_distance(g, g) == 0.0
    assert chamfer_distance(g, g + shift) == pytest.approx(2 * 0.01**2, rel=1e-9)
    assert earth_movers_distance(g, g + shift) == pytest.approx(0.01, rel=1e-9)
    # EMD on a permuted copy is 0: the assignment finds the matching
    assert earth_movers_distance(g, g[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_point_metric_input_errors():
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(np.zeros((0, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        earth_movers_distance(np.full((3, 3), np.nan), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        chamfer_distance(np.zeros((3, 2)), np.zeros((3, 3)))


def test_param_errors():
    truth = PhysicsParams(1.0, 100.0, 1.0, 0.5)
    pred = PhysicsParams(2.0, 400.0, 1.0, 0.25)
    e = param_errors(pred, truth)
    assert (e["mass"], e["stiffness"], e["damping"], e["friction"]) == (1.0, 300.0, 0.0, 0.25)
    assert e["stiffness_per_mass"] == 100.0
    assert e["log_ratio_stiffness_per_mass"] == pytest.approx(math.log(2))
    mean = mean_param_errors([(pred, truth), (truth, truth)])
    assert mean["stiffness"] == 150.0


def test_chamfer_matches_brute_force_and_survives_coincident_points():
    """Chunked exact Chamfer equals the dense formula; a collapsed object (all points equal) is fine."""
    import numpy as np
    from reconphys_ros.core.metrics import chamfer_distance
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.normal(size=(170, 3))
    d2 = ((a[:, None] - b[None]) ** 2).sum(-1)
    expected = d2.min(1).mean() + d2.min(0).mean()
    assert abs(chamfer_distance(a, b, chunk=64) - expected) < 1e-9
    collapsed = np.zeros((5000, 3))
    assert chamfer_distance(collapsed, collapsed + [0.0, 0.0, 0.1]) == pytest.approx(2 * 0.01)
