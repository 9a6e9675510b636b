"""Physics-only (oracle) evaluation: metrics on constructed cases against hand-computed values, a run on --tiny."""
import json
import math

import numpy as np
import pytest

from reconphys_ros.core.metrics import PSNR_CAP
from reconphys_ros.core.physics.params import ratios_from_paper
from training.eval_metrics import interval_coverage, window_metrics
from training.evaluate_physics import evaluate, markdown_table


def test_identical_frames_give_capped_psnr_and_unit_ssim():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    mask = np.zeros((3, 16, 16), bool)
    mask[:, 4:10, 4:10] = True
    pts = rng.uniform(0, 1, (3, 50, 3))
    out = window_metrics(rgb, rgb, mask, mask, pts, pts)
    assert out["psnr"] == PSNR_CAP and out["psnr_object"] == PSNR_CAP
    assert out["ssim"] == pytest.approx(1.0, abs=1e-6)
    assert out["cd"] < 1e-12 and out["emd"] == 0.0


def test_known_offsets_give_known_psnr_and_chamfer():
    rgb = np.full((2, 16, 16, 3), 0.5, np.float32)
    pred = rgb.copy()
    mask = np.zeros((2, 16, 16), bool)
    mask[:, :4, :4] = True  # 16 of 256 pixels
    pred[:, :4, :4] += 0.1  # error only inside the mask
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3)  # spacing 1
    shift = 0.1
    out = window_metrics(pred, rgb, mask, mask, grid[None] + [shift, 0, 0], grid[None])
    assert out["psnr_object"] == pytest.approx(10 * math.log10(1 / 0.01), abs=1e-3)  # 20 dB
    assert out["psnr"] == pytest.approx(10 * math.log10(1 / (0.01 * 16 / 256)), abs=1e-3)  # 32.04 dB
    assert out["cd"] == pytest.approx(2 * shift**2, rel=1e-6)  # each point's nearest is its own shifted copy
    assert out["emd"] == pytest.approx(shift, rel=1e-6)


def test_window_metrics_rejects_bad_input():
    a = np.zeros((2, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="shape mismatch"):
        window_metrics(a, a[:1], np.zeros((2, 16, 16), bool), np.zeros((2, 16, 16), bool))


def test_interval_coverage_by_hand():
    mean = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    sigma = np.array([[1.0, 0.1], [1.0, 0.1], [1.0, 0.1]])
    truth = np.array([[1.0, 1.0], [1.7, 0.1], [-1.6, 0.0]])  # 1.645 sigma bound
    np.testing.assert_allclose(interval_coverage(mean, sigma, truth), [2 / 3, 2 / 3])
    np.testing.assert_allclose(ratios_from_paper((2.0, 200.0, 1.0, 0.3)), [math.log(100), math.log(0.5), 0.3])


def test_evaluate_runs_on_tiny_with_baselines(tiny_data, tmp_path):
    from reconphys_ros.core.models.checkpoint import save_checkpoint
    from reconphys_ros.core.models.physics_predictor import (PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION,
                                                             PhysicsNet, PhysicsNetConfig, net_config_dict)

    net = PhysicsNet(PhysicsNetConfig(image_size=32, width=8, embed=32, heads=2, layers=1))
    weights = tmp_path / "w.pt"
    save_checkpoint(str(weights), PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION, net_config_dict(net),
                    net.state_dict())
    out = tmp_path / "eval"
    summary = evaluate(tiny_data, str(out), str(weights), train_root=tiny_data, per_scene_samples=1,
                       per_scene_budget_s=0.3, refine_budget_s=0.1)
    methods = summary["methods"]
    for name in ("learned", "learned+refine", "learned+check", "per-scene", "const-mean", "truth-params",
                 "hold-last-frame", "first-frame"):
        assert name in methods, name
    # the truth params reproduce the clip through the generator's own path: far above any prediction
    assert methods["truth-params"]["future_psnr"] > 45
    assert methods["truth-params"]["future_cd"] < 1e-6
    assert "recon_psnr" not in methods["hold-last-frame"]  # observed frames are not a prediction
    assert set(summary["calibration_90"]) == {"ln_k_per_m", "ln_d_per_m", "friction"}
    for name in ("results.md", "results.json", "psnr_per_frame.png", "param_scatter.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text())["samples"] == 1
    assert "| learned |" in markdown_table(summary)
    # the paired comparison on the per-scene clips (here the one test clip)
    assert methods["learned"]["future_psnr_per_scene_clips"] == pytest.approx(methods["learned"]["future_psnr"])
    assert "On the per-scene baseline's 1 clips (paired)" in markdown_table(summary)


def test_chamfer_matches_by_hand_on_coincident_points():
    from reconphys_ros.core.metrics import chamfer_distance as dense_chamfer

    a = np.zeros((300, 3))  # a fully collapsed object: every anchor at one point
    b = np.array([[0.0, 0.0, 0.1], [0.0, 0.0, -0.1]])
    assert dense_chamfer(a, b) == pytest.approx(0.01 + 0.01)
    with pytest.raises(ValueError, match="NaN"):
        dense_chamfer(a, np.full((2, 3), np.nan))
