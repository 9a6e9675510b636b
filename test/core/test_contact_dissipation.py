"""Contact and dissipation after impact (issue 20): tangential, deformation and rolling damping of ContactSettings.
Warp against the torch reference, gradients against finite differences, convergence in the substep count, a ball
that stays where it lands, and the defaults leaving the old model untouched."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import (ContactSettings, LatticeConfig, ModelBuilder, PhysicsParams, State,
                                        drop_state, sample_anchors, simulate)
from reconphys_ros.core.physics.params import object_size

SMALL = LatticeConfig(64, 12, name="small")
BALL = LatticeConfig(160, 20, name="ball")
DISSIPATION = dict(tangential_damping=30.0, deformation_damping=100.0, rolling_damping=100.0)  # 1/s at 1 m


def ball_anchors(radius, n, object_id="ball"):
    pts = np.random.default_rng(0).uniform(-radius, radius, (8000, 3))
    return sample_anchors(pts[np.linalg.norm(pts, axis=1) <= radius], n, object_id)


def ball_model(contact, radius=0.075, lattice=SMALL, friction=0.5, log_k=math.log(100.0)):
    """A ball of diameter 2 radius with size-independent k/m (at 1 m) exp(log_k), d/m 0.65, friction f."""
    anchors = ball_anchors(radius, lattice.num_anchors)
    params = PhysicsParams.from_size_independent([log_k, math.log(0.65), friction], object_size(anchors), 0.5)
    b = ModelBuilder(contact=contact)
    b.add_object(anchors, params, lattice, "ball")
    return b.finalize("cpu")


def thrown(model, gap, sideways=0.5, spin=0.0):
    """Lowest point `gap` above the ground, tilted, `sideways` m/s along x and `spin` rad/s about z."""
    state = drop_state(model, (0.0, 0.0, 0.0), (math.cos(0.2), math.sin(0.2), 0.0, 0.0))
    state.x[:, 2] += gap - float(state.x[:, 2].min())
    r = state.x - state.x.mean(0)
    state.v[:, 0] = sideways
    state.v += torch.linalg.cross(torch.tensor([0.0, 0.0, spin]).expand_as(r), r)
    return state


@pytest.mark.parametrize("mode", ["hard", "smooth"])
def test_warp_matches_torch_reference_with_dissipation(mode):
    model = ball_model(ContactSettings(mode, friction_velocity=0.1, **DISSIPATION))
    state = thrown(model, 0.01, spin=2.0)
    xw = simulate(model, state, 8, 40, backend="warp")
    xt = simulate(model, state, 8, 40, backend="torch")
    assert float(xw[..., 2].min()) < 0.002  # in contact: every term is exercised
    assert float((xw - xt).abs().max()) / 0.15 <= (1e-5 if mode == "hard" else 5e-5)


def double_model(model):
    return replace(model, rest_positions=model.rest_positions.double(), rest_lengths=model.rest_lengths.double(),
                   paper_params=model.paper_params.double(), scale=model.scale.double(),
                   dissipation_scale=model.dissipation_scale.double(), dissipation=model.dissipation.double(),
                   cache={})


def rollout_loss(model, state, params, weights, backend):
    x = simulate(model, state, 5, 20, params=params, backend=backend, stability="off")
    return (x * weights.to(x.dtype)).sum()


def test_gradients_through_dissipation_match_central_differences():
    # Warp's taped gradient (float32) against central differences of the float64 torch reference, in contact
    model = ball_model(ContactSettings("smooth", friction_velocity=0.1, **DISSIPATION))
    state = thrown(model, 0.002, sideways=0.8, spin=2.0)
    state.v[:, 2] = -0.3
    weights = torch.randn(5, model.num_anchors, 3, generator=torch.Generator().manual_seed(0))
    params = model.paper_params.clone().requires_grad_(True)
    v0 = state.v.clone().requires_grad_(True)
    grad_p, grad_v = torch.autograd.grad(rollout_loss(model, State(state.x, v0), params, weights, "warp"), [params, v0])
    model64, p64 = double_model(model), model.paper_params.double()
    s64 = State(state.x.double(), state.v.double())
    for i in (1, 2, 3):  # k, d, f (m only rescales them)
        h = 1e-5 * float(p64[0, i])
        plus, minus = p64.clone(), p64.clone()
        plus[0, i] += h
        minus[0, i] -= h
        fd = (rollout_loss(model64, s64, plus, weights, "torch") - rollout_loss(model64, s64, minus, weights, "torch")) / (2 * h)
        assert float(grad_p[0, i]) == pytest.approx(float(fd), rel=2e-3), f"param {i}"
    direction = torch.randn(model.num_anchors, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = 1e-5
    fd = (rollout_loss(model64, State(s64.x, s64.v + h * direction), p64, weights, "torch")
          - rollout_loss(model64, State(s64.x, s64.v - h * direction), p64, weights, "torch")) / (2 * h)
    assert float((grad_v.double() * direction).sum()) == pytest.approx(float(fd), rel=2e-3)


def landing_figures(x, size):
    """Positions (T, N, 3) -> (roll-out: horizontal distance of the last centroid from the centroid at the first
    contact, bounce: highest centroid after it minus the last), both in object sizes."""
    centroid = x.mean(1)  # (T, 3)
    impact = int(torch.nonzero(x[..., 2].min(1).values <= 0.002 + 0.01 * size)[0, 0])
    roll = float((centroid[-1, :2] - centroid[impact, :2]).norm()) / size
    bounce = float(centroid[impact:, 2].max() - centroid[-1, 2]) / size
    return roll, bounce


def test_dissipation_converges_as_substeps_double():
    # the rates are continuous-time (exp(-c dt) per substep): the trajectory converges with the substep count
    model = ball_model(ContactSettings(**DISSIPATION), lattice=BALL)
    state = thrown(model, 0.1)
    size = object_size(model.rest_positions.numpy())
    runs = {n: simulate(model, state, 20, n, stability="off").double() for n in (20, 40, 80, 160)}
    gaps = [float((runs[2 * n].mean(1) - runs[n].mean(1)).norm(dim=1).max()) / size for n in (20, 40, 80)]
    assert gaps[1] < 0.7 * gaps[0] and gaps[2] < 0.7 * gaps[1], gaps
    assert gaps[2] < 0.01, gaps
    figures = [landing_figures(runs[n], size) for n in (40, 80, 160)]
    assert abs(figures[2][0] - figures[1][0]) < abs(figures[1][0] - figures[0][0]) + 1e-3  # roll-out settles too


@pytest.mark.parametrize("friction", [0.5, 0.0])
def test_ball_rests_where_it_lands_unless_frictionless(friction):
    # a 15 cm ball dropped 0.3 m with 0.5 m/s sideways: rolls on (> 1 size) with the old model, stays within 0.2 of
    # its size with the dissipation terms, and slides on with them when its friction is 0
    old = ball_model(ContactSettings(), lattice=BALL, friction=friction)
    new = ball_model(ContactSettings(**DISSIPATION), lattice=BALL, friction=friction)
    size = object_size(new.rest_positions.numpy())
    with torch.no_grad():
        roll_new, bounce_new = landing_figures(simulate(new, thrown(new, 0.3), 60, 40), size)
    if friction > 0:
        roll_old, _ = landing_figures(simulate(old, thrown(old, 0.3), 60, 40), size)
        assert roll_old > 1.0, roll_old
        assert roll_new < 0.2, roll_new
    else:
        assert roll_new > 1.5, roll_new  # 0.5 m/s for the ~1.75 s after impact, less the little it loses


def test_defaults_leave_the_old_model_untouched():
    # Off by default (verified bit for bit against the model before these terms: same Warp, torch, per-substep and
    # gradient results); here: the defaults are zero, skip the rigid-motion stage, and equal explicit zeros.
    defaults = ContactSettings()
    assert all(getattr(defaults, n) == 0.0 for n in DISSIPATION) and not defaults.damps_rigid_motion
    for mode in ("hard", "smooth"):
        a = ball_model(ContactSettings(mode))
        b = ball_model(ContactSettings(mode, **{n: 0.0 for n in DISSIPATION}))
        c = ball_model(ContactSettings(mode, tangential_damping=1e-3))
        state = thrown(a, 0.01)
        for backend in ("warp", "torch"):
            xa = simulate(a, state, 4, 30, backend=backend)
            assert torch.equal(xa, simulate(b, state, 4, 30, backend=backend))
            assert not torch.equal(xa, simulate(c, state, 4, 30, backend=backend))  # the switch is live
    with pytest.raises(ValueError, match="rolling_damping"):
        ContactSettings(rolling_damping=-1.0)


def test_per_object_dissipation_in_one_batch_matches_each_object_alone():
    # an asset carries its own rates: objects with different dissipation in one model move as each does alone
    anchors = ball_anchors(0.075, SMALL.num_anchors)
    params = PhysicsParams.from_size_independent([math.log(100.0), math.log(0.65), 0.5], object_size(anchors), 0.5)
    rates = [(0.0, 0.0, 0.0), (30.0, 100.0, 100.0), (5.0, 0.0, 40.0)]
    builder = ModelBuilder()
    for i, r in enumerate(rates):
        builder.add_object(anchors + np.array([0.5 * i, 0.0, 0.0]), params, SMALL, f"ball{i}", dissipation=r)
    batch = builder.finalize("cpu")
    assert torch.equal(batch.dissipation, torch.tensor(rates))
    state = thrown(batch, 0.01, spin=2.0)
    for backend in ("warp", "torch"):
        together = simulate(batch, state, 6, 30, backend=backend)
        for i, r in enumerate(rates):
            alone = ball_model(ContactSettings(**dict(zip(DISSIPATION, r))))
            sl = batch.object_slice(i)
            x = simulate(alone, State(state.x[sl] - torch.tensor([0.5 * i, 0.0, 0.0]), state.v[sl]), 6, 30,
                         backend=backend)
            assert float((together[:, sl] - torch.tensor([0.5 * i, 0.0, 0.0]) - x).abs().max()) < 1e-5, (backend, i)
    # with_dissipation swaps the rates (here: all off), replicate keeps them per copy
    off = batch.with_dissipation([0.0, 0.0, 0.0])
    assert not off.damps_rigid_motion and batch.damps_rigid_motion
    assert torch.equal(batch.replicate(2).dissipation, torch.tensor(rates * 2))
    with pytest.raises(ValueError, match="dissipation"):
        batch.with_dissipation([1.0, float("nan"), 0.0])
    with pytest.raises(ValueError, match="dissipation"):
        ModelBuilder().add_object(anchors, params, SMALL, dissipation=(1.0, -2.0, 0.0))
