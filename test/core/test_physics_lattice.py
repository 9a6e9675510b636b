"""Anchor sampling, KNN springs and the resolution-independent lattice mapping."""
import numpy as np
import pytest
import torch
import trimesh

from reconphys_ros.core.physics import (COARSE64_LATTICE, COARSE_LATTICE, MEDIUM_LATTICE, REFERENCE_LATTICE,
                                        PhysicsParams, knn_springs,
                                        object_seed, sample_anchors)
from reconphys_ros.core.physics.lattice import estimate_reference_r2_sum, spring_r2_sum


def sphere_shell(n=4000, r=0.2, seed=0):
    p = np.random.default_rng(seed).standard_normal((n, 3))
    return r * p / np.linalg.norm(p, axis=1, keepdims=True)


def test_same_id_same_anchors_and_stable_seed():
    pts = sphere_shell()
    a = sample_anchors(pts, 256, "duck_01")
    b = sample_anchors(pts, 256, "duck_01")
    c = sample_anchors(pts, 256, "duck_02")
    assert a.shape == (256, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert object_seed("duck_01") == 0x0 + object_seed("duck_01")  # deterministic across calls
    assert object_seed("duck_01") != object_seed("duck_02")


def test_anchors_fill_volume_evenly_from_surface_points():
    a = sample_anchors(sphere_shell(), 512, "ball")
    radius = np.linalg.norm(a, axis=1)
    assert np.mean(radius < 0.1) > 0.05  # interior present: uniform ball has 12.5% inside r/2
    assert radius.max() < 0.2 * 1.1
    nn = knn_springs(a, 1)[1]
    d = np.sort(np.linalg.norm(a[:, None] - a[None], axis=-1), axis=1)[:, 1]
    assert d.min() > 0.3 * np.median(d)  # Poisson-disk-like: no clumps
    assert len(nn) > 0


def test_anchors_from_mesh_inside():
    mesh = trimesh.creation.box(extents=(0.4, 0.2, 0.1))
    a = sample_anchors(mesh, 300, "box")
    assert np.all(np.abs(a) <= np.array([0.2, 0.1, 0.05]) + 1e-6)
    assert np.abs(a[:, 2]).min() < 0.01  # mid-plane reached


def test_knn_springs_dedupe():
    a = np.random.default_rng(0).uniform(size=(100, 3))
    pairs, rest = knn_springs(a, 8)
    assert np.all(pairs[:, 0] < pairs[:, 1])
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    assert 100 * 8 / 2 <= len(pairs) <= 100 * 8
    assert np.allclose(rest, np.linalg.norm(a[pairs[:, 0]] - a[pairs[:, 1]], axis=1), atol=1e-6)


def test_bad_sampling_inputs():
    with pytest.raises(ValueError):
        sample_anchors(np.zeros((0, 3)), 10, "x")
    with pytest.raises(ValueError):
        sample_anchors(np.full((10, 3), np.nan), 10, "x")
    with pytest.raises(ValueError):
        sample_anchors(np.zeros((10, 2)), 10, "x")


def test_replicated_model_equals_built_copies():
    from reconphys_ros.core.physics import LatticeConfig, ModelBuilder
    anchors = np.random.default_rng(0).uniform(size=(60, 3))
    lattice = LatticeConfig(60, 8, name="tiny")
    one = ModelBuilder()
    one.add_object(anchors, PhysicsParams(1.0, 100.0, 1.0, 0.5), lattice)
    replicated = one.finalize().replicate(3)
    built = ModelBuilder()
    for _ in range(3):
        built.add_object(anchors, PhysicsParams(1.0, 100.0, 1.0, 0.5), lattice)
    built = built.finalize()
    for name in ("rest_positions", "anchor_object", "springs", "rest_lengths", "spring_object", "paper_params", "scale"):
        assert torch.equal(getattr(replicated, name), getattr(built, name)), name
    assert np.array_equal(replicated.object_start, built.object_start)
    np.testing.assert_allclose(replicated.unit_eigen, built.unit_eigen)
    with pytest.raises(ValueError, match="copies"):
        built.replicate(0)


def test_reference_r2_estimate_close_to_exact():
    pts = np.random.default_rng(0).uniform(-0.2, 0.2, (20000, 3))
    exact = spring_r2_sum(sample_anchors(pts, REFERENCE_LATTICE.num_anchors, "r2"), REFERENCE_LATTICE.k_neighbors)
    est = estimate_reference_r2_sum(sample_anchors(pts, COARSE_LATTICE.num_anchors, "r2"))
    assert est == pytest.approx(exact, rel=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("lattice", [
    COARSE64_LATTICE, MEDIUM_LATTICE,
    pytest.param(COARSE_LATTICE, marks=pytest.mark.xfail(
        reason="open: the default 512/32 (K/N_A = 1/16) is 16.8% off on the first drop, where the reference agrees "
               "with itself to 3.7%; kept as the default because the shipped model was trained on it", strict=False))])
def test_coarse_lattice_tracks_reference_drop(lattice):
    # Means over 4 anchor samplings per lattice (a tilted, sliding drop depends on where the anchors fall: the
    # reference disagrees with itself by 2.5-31% of the object size between samplings).
    from reconphys_ros.core.physics.calibration import mapping_report
    reports = mapping_report(lattice)  # reference drops cached under ~/.cache/reconphys_ros/calibration after the first run
    for r in reports:
        print(lattice.name, r.params.to_tuple(), f"ensemble {r.ensemble_error:.3f} single {r.error:.3f} "
              f"reference spread {r.reference_spread:.3f}")
    for r in reports:
        if r.reference_spread <= 0.05:  # the reference agrees with itself: the coarse lattice must too, to 5%
            assert r.ensemble_error <= 0.05, r
        else:  # a tumbling drop: no closer than the reference's own sampling spread allows
            assert r.ensemble_error <= 0.05 + r.reference_spread, r
