"""Non-learned physics estimation on a synthetic drop with known parameters (k/m = 200 1/s^2)."""
import math

import numpy as np
import pytest
import torch

from reconphys_ros.core.models.initial_state import fit_initial_state
from reconphys_ros.core.models.physics_by_simulation import RefineConfig, _stiffest_near_minimum, estimate_physics
from reconphys_ros.testing.synthetic_drop import make_drop_clip
from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.physics.params import (DENSITY_PRIOR, RATIO_RANGES, REFERENCE_NUM_ANCHORS, object_size,
                                               object_volume)

TRUTH = PhysicsParams(1.0, 200.0, 1.0, 0.5)


@pytest.fixture(scope="module")
def clip():
    torch.set_num_threads(1)
    return make_drop_clip(TRUTH)


def test_stiffness_per_mass_within_factor_1_5_with_true_gaussians(clip):
    res = estimate_physics(clip.gaussians, clip.masks[:20], clip.camera, "ellipsoid", clip.initial_velocity,
                           known_mass=1.0)
    est = res.estimate
    # known_mass is the object's total mass in kg; the paper convention's m is per reference anchor
    assert est.mass_given and est.total_mass == pytest.approx(1.0) and est.std["mass"] == 0.0
    assert est.params.mass == pytest.approx(1.0 / REFERENCE_NUM_ANCHORS)
    ratio = res.stiffness_per_mass / TRUTH.stiffness_per_mass
    # measured 1.02 with the calibrated estimation lattice (0.79 before its correction)
    assert 1 / 1.25 < ratio < 1.25, (ratio, res.sweep_values, res.sweep_losses)
    # the sweep's loss has one interior minimum: softer and stiffer ends both fit worse
    best = int(np.argmin(res.sweep_losses))
    assert 0 < best < len(res.sweep_losses) - 1
    assert res.sweep_losses[0] > 1.3 * res.loss and res.sweep_losses[-1] > 3 * res.loss
    assert est.params.stiffness == pytest.approx(res.stiffness_per_mass / REFERENCE_NUM_ANCHORS)
    # the contact damping is the pipeline's own stage (estimate_contact_damping), not part of this estimate
    assert all(v > 0 for k, v in est.std.items() if k not in ("mass", "contact_damping"))


def test_unknown_mass_uses_prior_and_reports_spread(clip):
    res = estimate_physics(clip.gaussians, clip.masks[:20], clip.camera, "ellipsoid", clip.initial_velocity,
                           config=RefineConfig(budget_s=0.0))
    est = res.estimate
    # the prior is a density times the volume of the estimator's anchors (no size or volume given)
    assert not est.mass_given and 0.5 * DENSITY_PRIOR < est.total_mass / object_volume(clip.gaussians.means) < 1.5 * DENSITY_PRIOR
    assert est.std["mass"] > 0.5 * est.params.mass
    assert est.std["stiffness"] / est.params.stiffness > est.std["stiffness_per_mass"] / res.stiffness_per_mass
    assert 1 / 1.5 < res.stiffness_per_mass / TRUTH.stiffness_per_mass < 1.5
    assert est.size == pytest.approx(object_size(clip.gaussians.means), rel=0.05)
    for value, (lo, hi) in zip(est.size_independent(), RATIO_RANGES.values()):
        assert lo - 1e-6 <= value <= hi + 1e-6
    assert res.adam_steps == 0


def test_adam_refinement_never_worsens_the_sweep_result(clip):
    cfg = RefineConfig(budget_s=30.0, max_adam_steps=2)
    res = estimate_physics(clip.gaussians, clip.masks[:20], clip.camera, "ellipsoid", clip.initial_velocity,
                           known_mass=1.0, config=cfg)
    assert res.adam_steps == 2
    assert res.loss <= res.sweep_losses.min() + 1e-9


def test_initial_velocity_of_a_simulated_drop(clip):
    state = fit_initial_state(clip.gaussians.means.numpy(), clip.masks, clip.camera, clip.fps)
    assert np.abs(state.velocity - clip.initial_velocity).max() < 0.15, state.velocity
    assert abs(state.scale - 1.0) < 0.1, state.scale


def test_collapse_plateau_takes_the_stiffest_tie():
    losses = np.array([0.0100, 0.0101, 0.0102, 0.0100, 0.05])
    assert _stiffest_near_minimum(losses, 0.02) == 3
    assert _stiffest_near_minimum(np.array([0.05, 0.01, 0.03]), 0.02) == 1


def test_bad_inputs(clip):
    g, cam, v = clip.gaussians, clip.camera, clip.initial_velocity
    masks = clip.masks[:5].copy()
    masks[2] = 0
    with pytest.raises(ValueError, match="empty"):
        estimate_physics(g, masks, cam, "x", v)
    with pytest.raises(ValueError, match="camera"):
        estimate_physics(g, clip.masks[:5, :50], cam, "x", v)
    with pytest.raises(ValueError, match="initial_velocity"):
        estimate_physics(g, clip.masks[:5], cam, "x", (np.nan, 0, 0))
    for bad in (0.0, -1.0, float("nan"), 2000.0):
        with pytest.raises(ValueError, match="known_mass.*kg"):
            estimate_physics(g, clip.masks[:5], cam, "x", v, known_mass=bad)
    with pytest.raises(ValueError, match="sweep_points"):
        estimate_physics(g, clip.masks[:5], cam, "x", v, config=RefineConfig(sweep_points=1))
    with pytest.raises(ValueError, match="T >= 3"):
        estimate_physics(g, clip.masks[:2], cam, "x", v)


@pytest.mark.parametrize("stiffness_per_mass", [100.0, 600.0])
def test_stiffness_per_mass_within_factor_1_5_on_other_drops_with_true_gaussians(stiffness_per_mass):
    # measured ratios 0.75 / 0.90 (k/m 100 / 600); before the estimation-lattice correction 0.63 / 0.65
    truth = PhysicsParams(1.0, stiffness_per_mass, 1.0, 0.5)
    drop = make_drop_clip(truth)
    res = estimate_physics(drop.gaussians, drop.masks[:20], drop.camera, "ellipsoid", drop.initial_velocity,
                           known_mass=1.0)
    ratio = res.stiffness_per_mass / stiffness_per_mass
    assert 1 / 1.5 < ratio < 1.5, (ratio, res.sweep_values, res.sweep_losses)


def test_batched_sweep_matches_one_candidate_at_a_time(clip):
    """Candidates grouped into one replicated model give the same loss as each simulated alone."""
    from reconphys_ros.core.models.physics_by_simulation import _SilhouetteLoss, _sweep_losses
    from reconphys_ros.core.physics import sample_anchors
    cfg = RefineConfig().validate()
    anchors = sample_anchors(clip.gaussians.means.numpy(), cfg.estimation_lattice.num_anchors, "ellipsoid")
    loss_fn = _SilhouetteLoss(clip.gaussians, anchors, clip.masks[:8], clip.camera, clip.initial_velocity, 30.0, cfg,
                              "ellipsoid", "cpu", 0)
    values = np.log([20.0, 60.0, 150.0])  # soft enough to share the minimum substep count
    params = torch.tensor([[1.0, math.exp(v), 1.0, 0.5] for v in values])
    assert set(loss_fn.substeps_needed(params)) == {cfg.min_substeps}
    stiff = torch.tensor([[1.0, 6000.0, 1.0, 0.5]])
    assert loss_fn.substeps_needed(stiff)[0] > 1.5 * cfg.min_substeps  # would run in a group of its own
    together = _sweep_losses(loss_fn, values, 1.0, 1.0, 0.5, 16, "cpu")
    alone = np.concatenate([_sweep_losses(loss_fn, values[i:i + 1], 1.0, 1.0, 0.5, 1, "cpu") for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-3, atol=1e-6)
    assert len(set(np.round(together, 6))) == 3  # the candidates differ
