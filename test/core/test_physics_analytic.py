"""Analytic checks of the spring-mass integrator (Warp backend unless stated)."""
import math

import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import (COARSE_LATTICE, REFERENCE_LATTICE, ContactSettings, LatticeConfig,
                                        ModelBuilder, PhysicsParams, State, drop_state, sample_anchors, simulate)

G = 9.81


def two_anchor_model(params, gravity=(0.0, 0.0, -G), contact=None, separation=0.1):
    b = ModelBuilder(contact=contact, gravity=gravity)
    b.add_object(np.array([[0.0, 0.0, 0.0], [separation, 0.0, 0.0]]), params, REFERENCE_LATTICE, check_range=False)
    return b.finalize("cpu")


@pytest.mark.parametrize("backend", ["warp", "torch"])
def test_free_fall_matches_closed_form(backend):
    model = two_anchor_model(PhysicsParams(1.0, 100.0, 0.5, 0.5))
    x0 = torch.tensor([[0.0, 0.0, 50.0], [0.1, 0.0, 50.0]])
    v0 = torch.tensor([[1.0, -0.5, 2.0], [1.0, -0.5, 2.0]])
    fps, sub, frames = 30.0, 10, 30
    x = simulate(model, State(x0, v0), frames, sub, fps=fps, backend=backend).double()
    dt = 1.0 / fps / sub
    n = torch.arange(1, frames + 1, dtype=torch.float64) * sub  # substeps done after each frame
    t = n * dt
    # semi-implicit Euler: x_n = x0 + v0 t - g dt^2 n (n + 1) / 2, exact up to float rounding
    expected = x0.double() + v0.double() * t[:, None, None]
    expected[..., 2] -= G * dt * dt * (n * (n + 1) / 2)[:, None]
    assert torch.allclose(x, expected, atol=2e-5, rtol=0)
    # and within the O(dt) discretisation gap of the continuous parabola x0 + v0 t - g t^2 / 2
    continuous = x0.double() + v0.double() * t[:, None, None]
    continuous[..., 2] -= 0.5 * G * t[:, None] ** 2
    assert (x - continuous).abs().max() <= 0.5 * G * dt * t.max() + 1e-4


def test_two_anchor_spring_period():
    m, k = 1.0, 100.0
    model = two_anchor_model(PhysicsParams(m, k, 1e-6, 0.0), gravity=(0.0, 0.0, 0.0))
    x0 = torch.tensor([[0.0, 0.0, 1.0], [0.12, 0.0, 1.0]])  # 2 cm stretched (rest 0.1)
    fps = 1000.0
    x = simulate(model, State(x0, torch.zeros(2, 3)), 2000, 1, fps=fps).double()
    ext = (x[:, 1] - x[:, 0]).norm(dim=1).numpy() - 0.1
    t = np.arange(1, len(ext) + 1) / fps
    cross = [t[i] - ext[i] * (t[i + 1] - t[i]) / (ext[i + 1] - ext[i])
             for i in range(len(ext) - 1) if ext[i] > 0 >= ext[i + 1]]
    period = float(np.mean(np.diff(cross)))
    mu = m * m / (m + m)
    assert period == pytest.approx(2 * math.pi * math.sqrt(mu / k), rel=0.01)


def spring_energy(model, x, v, params):
    m, k, _, _ = params.to_tuple()
    i, j = model.springs[:, 0].long(), model.springs[:, 1].long()
    stretch = (x[:, i] - x[:, j]).norm(dim=-1) - model.rest_lengths
    return 0.5 * m * (v * v).sum((-1, -2)) + 0.5 * k * (stretch**2).sum(-1)


def test_damping_makes_energy_decay_monotonically():
    params = PhysicsParams(1.0, 200.0, 2.0, 0.0)
    anchors = sample_anchors(np.random.default_rng(1).uniform(-0.1, 0.1, (3000, 3)), 64, "energy")
    b = ModelBuilder(gravity=(0.0, 0.0, 0.0))
    b.add_object(anchors, params, LatticeConfig(64, 8, name="tiny"))
    model = b.finalize("cpu")
    model.scale.fill_(1.0)  # plain per-spring values, energy in the same units
    gen = torch.Generator().manual_seed(0)
    state = State(model.rest_positions + 5.0, 0.5 * torch.randn(model.num_anchors, 3, generator=gen))
    x, v = simulate(model, state, 40, 100, return_velocities=True)
    energy = spring_energy(model, x.double(), v.double(), params)
    assert energy[-1] < 0.2 * energy[0]
    assert torch.all(energy[1:] <= energy[:-1] * (1 + 1e-6))


def test_friction_stopping_distance():
    f, v0 = 0.4, 1.5
    model = two_anchor_model(PhysicsParams(1.0, 100.0, 0.5, f))
    x0 = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    x = simulate(model, State(x0, torch.tensor([[v0, 0.0, 0.0]] * 2)), 30, 100)
    travelled = float(x[-1, 0, 0])
    assert travelled == pytest.approx(v0**2 / (2 * f * G), rel=0.05)
    assert torch.allclose(x[-1], x[-2], atol=1e-6)  # stopped, not creeping
    assert float(x[..., 2].min()) >= 0.0


def test_resting_object_stays_put_with_friction():
    model = two_anchor_model(PhysicsParams(1.0, 100.0, 0.5, 0.5))
    x0 = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    x = simulate(model, State(x0, torch.zeros(2, 3)), 30, 100)
    assert torch.allclose(x[-1], x0, atol=1e-6)


@pytest.fixture(scope="module")
def coarse_cube():
    pts = np.random.default_rng(0).uniform(-0.15, 0.15, (6000, 3))
    return sample_anchors(pts, COARSE_LATTICE.num_anchors, "cube")


def test_drop_comes_to_rest_above_ground(coarse_cube):
    b = ModelBuilder()
    b.add_object(coarse_cube, PhysicsParams(1.0, 400.0, 5.0, 0.5), COARSE_LATTICE, "cube")
    model = b.finalize("cpu")
    x, v = simulate(model, drop_state(model, (0.0, 0.0, 0.4)), 90, 100, return_velocities=True)
    assert float(x[..., 2].min()) >= 0.0
    assert float(x[-1, :, 2].max()) > 0.2  # kept its shape (0.3 m cube), not a pancake
    assert float(v[-1].norm(dim=1).mean()) < 0.05


def test_restitution_bounces():
    model = two_anchor_model(PhysicsParams(1.0, 100.0, 0.5, 0.0), contact=ContactSettings(restitution=0.8))
    x0 = torch.tensor([[0.0, 0.0, 0.5], [0.1, 0.0, 0.5]])
    x = simulate(model, State(x0, torch.zeros(2, 3)), 30, 100)
    z = x[:, 0, 2]
    lowest = int(torch.argmin(z[:15]))
    assert float(z[lowest]) < 0.05
    assert float(z[lowest:].max()) > 0.2  # bounced back up near 0.8^2 * 0.5 = 0.32 m


def test_similarity_law_same_size_independent_params_same_motion_in_object_units():
    """Issue 14: with the same size-independent parameters (k/m x L, d/m x sqrt(L), f), a 5 cm, a 25 cm and a 1 m
    object move alike in object units and scaled time (positions x s, time x sqrt(s)), within 2% of the size."""
    from reconphys_ros.core.physics.params import object_size, object_volume
    rng = np.random.default_rng(4)
    unit = rng.uniform(-0.5, 0.5, size=(6000, 3)) * np.array([1.0, 0.7, 0.5])  # ~1 m box of points
    size_independent = np.array([math.log(300.0), math.log(2.0), 0.6])
    trajectories = {}
    for s in (0.05, 0.25, 1.0):
        anchors = sample_anchors(unit * s, COARSE_LATTICE.num_anchors, "similarity")
        size = object_size(anchors)
        params = PhysicsParams.from_size_independent(size_independent, size, 300.0 * object_volume(anchors))
        np.testing.assert_allclose(params.size_independent(size), size_independent, atol=1e-9)
        b = ModelBuilder()
        b.add_object(anchors, params, COARSE_LATTICE)
        model = b.finalize("cpu")
        tilt = np.array([math.cos(0.3), math.sin(0.3), 0.0, 0.0])
        state = drop_state(model, (0.0, 0.0, 0.8 * s), tilt)
        state.v[:, 0] = 1.0 * math.sqrt(s)  # velocities scale with sqrt(s)
        fps = 30.0 / math.sqrt(s)  # the same frames in scaled time
        with torch.no_grad():
            x = simulate(model, state, 24, 60, fps=fps).double().numpy()
        trajectories[s] = x / size
    reference = trajectories[1.0]
    # it fell, hit the ground and deformed within the clip
    assert reference[-1, :, 2].min() < 0.01 and reference[-1, :, 2].mean() < reference[0, :, 2].mean() - 0.2
    for s in (0.05, 0.25):
        gap = np.abs(trajectories[s] - reference).max()
        assert gap < 0.02, (s, gap)
