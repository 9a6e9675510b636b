"""Warp backend against the torch reference: trajectories, gradients, batching, robustness."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import (COARSE_LATTICE, PARAM_RANGES, ContactSettings, LatticeConfig, ModelBuilder,
                                        PhysicsParams, SimulationDiverged, State, drop_state, sample_anchors,
                                        simulate)

TINY = LatticeConfig(40, 8, name="tiny")


def cube_anchors(n, object_id="cube", size=0.3, seed=0):
    pts = np.random.default_rng(seed).uniform(-size / 2, size / 2, (4000, 3))
    return sample_anchors(pts, n, object_id)


def build(anchors_list, params_list, lattice, contact=None, device="cpu"):
    b = ModelBuilder(contact=contact)
    for i, (a, p) in enumerate(zip(anchors_list, params_list)):
        b.add_object(a, p, lattice, f"obj{i}")
    return b.finalize(device)


@pytest.fixture(scope="module")
def coarse_anchors():
    return cube_anchors(COARSE_LATTICE.num_anchors)


@pytest.mark.parametrize("contact", ["hard", "smooth"])
def test_warp_matches_torch_reference_over_30_frames(coarse_anchors, contact):
    # smooth variant as used for gradient checks (regularised Coulomb over 0.1 m/s keeps rounding from growing)
    model = build([coarse_anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], COARSE_LATTICE,
                  ContactSettings(contact, friction_velocity=0.1))
    state = drop_state(model, (0.0, 0.0, 0.3), (np.cos(0.2), np.sin(0.2), 0.0, 0.0))
    state.v[:, 0] = 0.5
    xw = simulate(model, state, 30, 100, backend="warp")
    xt = simulate(model, state, 30, 100, backend="torch")
    size = float((state.x.max(0).values - state.x.min(0).values).max())
    # float32 rounding grows through the stiff penalty contact: 1e-5 for the paper boundary, 5e-5 for smooth
    assert float((xw - xt).abs().max()) / size <= (1e-5 if contact == "hard" else 5e-5)
    assert float(xw[..., 2].min()) >= (0.0 if contact == "hard" else -0.015)  # no tunnelling through the ground


def test_batched_objects_equal_separate_runs():
    anchors = [cube_anchors(TINY.num_anchors, f"o{i}", size=0.2 + 0.05 * i, seed=i) for i in range(3)]
    params = [PhysicsParams(0.5, 100.0, 0.5, 0.1), PhysicsParams(2.0, 900.0, 3.0, 0.9), PhysicsParams(1.0, 40.0, 0.2, 0.5)]
    batched = build(anchors, params, TINY)
    state = drop_state(batched, (0.0, 0.0, 0.3))
    xb = simulate(batched, state, 10, 120, stability="off")
    for i in range(3):
        single = build([anchors[i]], [params[i]], TINY)
        sl = batched.object_slice(i)
        xs = simulate(single, State(state.x[sl], state.v[sl]), 10, 120, stability="off")
        assert torch.allclose(xb[:, sl], xs, atol=1e-6)


def double_model(model):
    return replace(model, rest_positions=model.rest_positions.double(), rest_lengths=model.rest_lengths.double(),
                   paper_params=model.paper_params.double(), scale=model.scale.double(), cache={})


def smooth_tiny_setup():
    anchors = cube_anchors(TINY.num_anchors, "grad", size=0.2)
    model = build([anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], TINY, ContactSettings("smooth", friction_velocity=0.1))
    state = drop_state(model, (0.0, 0.0, 0.105))
    state.v[:, 0] = 0.8
    state.v[:, 2] = -0.3
    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(6, model.num_anchors, 3, generator=gen)
    return model, state, weights


def rollout_loss(model, state, params, weights, backend, detach=False):
    x = simulate(model, state, 6, 20, params=params, backend=backend, detach_every_frame=detach, stability="off")
    return (x * weights.to(x.dtype)).sum()


def test_gradients_match_central_differences():
    model, state, weights = smooth_tiny_setup()
    params = model.paper_params.clone().requires_grad_(True)
    x0 = state.x.clone().requires_grad_(True)
    v0 = state.v.clone().requires_grad_(True)
    loss = rollout_loss(model, State(x0, v0), params, weights, "warp")
    grad_p, grad_x, grad_v = torch.autograd.grad(loss, [params, x0, v0])
    assert float(model.sim_params()[3]) > 0 and torch.all(grad_p != 0)

    model64 = double_model(model)
    s64 = State(state.x.double(), state.v.double())
    p64 = model.paper_params.double()
    for i in range(4):
        h = 1e-5 * float(p64[0, i])  # float64 reference: small steps resolve the stiff contact
        plus, minus = p64.clone(), p64.clone()
        plus[0, i] += h
        minus[0, i] -= h
        fd = (rollout_loss(model64, s64, plus, weights, "torch") - rollout_loss(model64, s64, minus, weights, "torch")) / (2 * h)
        assert float(grad_p[0, i]) == pytest.approx(float(fd), rel=1e-3), f"param {i}"
    # directional derivatives for the initial state
    gen = torch.Generator().manual_seed(1)
    for grad, which in ((grad_x, "x"), (grad_v, "v")):
        direction = torch.randn(model.num_anchors, 3, generator=gen, dtype=torch.float64)
        h = 1e-5
        sp = State(s64.x + h * direction, s64.v) if which == "x" else State(s64.x, s64.v + h * direction)
        sm = State(s64.x - h * direction, s64.v) if which == "x" else State(s64.x, s64.v - h * direction)
        fd = (rollout_loss(model64, sp, p64, weights, "torch") - rollout_loss(model64, sm, p64, weights, "torch")) / (2 * h)
        assert float((grad.double() * direction).sum()) == pytest.approx(float(fd), rel=1e-3), which


def test_warp_gradients_equal_torch_autograd_with_hard_contact_and_truncation():
    model, state, weights = smooth_tiny_setup()
    model = model.with_contact(ContactSettings("hard"))
    for detach in (False, True):
        grads = []
        for backend in ("warp", "torch"):
            params = model.paper_params.clone().requires_grad_(True)
            v0 = state.v.clone().requires_grad_(True)
            loss = rollout_loss(model, State(state.x, v0), params, weights, backend, detach)
            grads.append(torch.autograd.grad(loss, [params, v0], allow_unused=True))
        assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-3, atol=1e-6)
        if detach:  # truncated: the initial state only reaches the loss through the first frame
            assert grads[0][1] is not None
        assert torch.allclose(grads[0][1], grads[1][1], rtol=1e-3, atol=1e-5)


def random_fuzz_model(num_objects, lattice, seed):
    rng = np.random.default_rng(seed)
    anchors = cube_anchors(lattice.num_anchors, "fuzz", size=0.3)
    params = [PhysicsParams(*[float(np.exp(rng.uniform(np.log(lo + 1e-3 * (n == 'friction')), np.log(hi))))
                              if n != "friction" else float(rng.uniform(lo, hi))
                              for n, (lo, hi) in PARAM_RANGES.items()]) for _ in range(num_objects)]
    # include the corners of the ranges: stiffest/lightest and softest/heaviest
    params[0] = PhysicsParams(0.2, 1200.0, 5.0, 1.0)
    params[1] = PhysicsParams(6.0, 10.0, 0.1, 0.0)
    return build([anchors] * num_objects, params, lattice)


def run_fuzz(model, frames):
    rng = np.random.default_rng(3)
    state = model.state()
    for b in range(model.num_objects):
        sl = model.object_slice(b)
        state.x[sl] += torch.tensor([0.0, 0.0, rng.uniform(0.2, 1.0)], dtype=torch.float32)
        state.v[sl] += torch.tensor(rng.uniform(-2, 2, 3), dtype=torch.float32)
    x = simulate(model, state, frames, 100)  # default substeps, raised automatically where unstable
    assert torch.isfinite(x).all()
    assert float(x[..., 2].min()) >= 0.0
    assert float(x.abs().max()) < 10.0


def test_no_nan_for_200_random_configurations():
    run_fuzz(random_fuzz_model(200, LatticeConfig(32, 12, name="fuzz"), 0), frames=8)


@pytest.mark.slow
def test_no_nan_for_200_random_configurations_coarse_lattice():
    run_fuzz(random_fuzz_model(200, COARSE_LATTICE, 1), frames=30)


def test_stability_check_and_nan_report():
    anchors = cube_anchors(TINY.num_anchors, "stiff")
    model = build([anchors], [PhysicsParams(0.2, 1200.0, 5.0, 0.5)], TINY)
    needed = model.required_substeps(30.0)
    assert needed > 2
    with pytest.raises(ValueError, match="unstable"):
        simulate(model, None, 2, 2, stability="error")
    with pytest.raises(SimulationDiverged, match="anchor"):
        simulate(model, drop_state(model, (0, 0, 1.0)), 30, 1, stability="off")
    x = simulate(model, drop_state(model, (0, 0, 1.0)), 10, 2, stability="auto")
    assert torch.isfinite(x).all()


def test_bad_inputs_raise_value_errors(coarse_anchors):
    with pytest.raises(ValueError, match="stiffness_per_mass.*1/s"):  # beyond any object >= 2 cm
        PhysicsParams(1.0, 5e7, 1.0, 0.5).validate()
    with pytest.raises(ValueError, match="mass"):
        PhysicsParams(float("nan"), 100.0, 1.0, 0.5).validate()
    model = build([coarse_anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], COARSE_LATTICE)
    with pytest.raises(ValueError, match="shape"):
        model.sim_params(torch.ones(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        simulate(model, params=torch.tensor([[1.0, float("nan"), 1.0, 0.5]]))
    with pytest.raises(ValueError, match="state"):
        simulate(model, State(torch.zeros(3, 3), torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="backend"):
        simulate(model, backend="jax")


@pytest.mark.gpu
def test_cuda_matches_cpu(coarse_anchors):
    cpu = build([coarse_anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], COARSE_LATTICE)
    gpu = build([coarse_anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], COARSE_LATTICE, device="cuda")
    s = drop_state(cpu, (0, 0, 0.3))
    xc = simulate(cpu, s, 10, 100)
    xg = simulate(gpu, State(s.x.cuda(), s.v.cuda()), 10, 100)
    assert torch.allclose(xg.cpu(), xc, atol=1e-4)
    params = gpu.paper_params.clone().requires_grad_(True)
    loss = simulate(gpu, State(s.x.cuda(), s.v.cuda()), 5, 100, params=params)[..., 2].sum()
    loss.backward()
    assert torch.isfinite(params.grad).all()


@pytest.mark.parametrize("contact", ["hard", "smooth"])
@pytest.mark.parametrize("gripped", [False, True])
def test_one_launch_cpu_frame_equals_per_substep_kernels(coarse_anchors, contact, gripped):
    # The CPU forward path runs a whole frame in one kernel launch; it must do exactly what the per-substep
    # kernels (the taped and CUDA path) do, with and without grasp springs.
    from reconphys_ros.core.physics.control import Control
    from reconphys_ros.core.physics.integrator import WarpFrameRunner

    model = build([coarse_anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], COARSE_LATTICE, ContactSettings(contact))
    state = drop_state(model, (0.0, 0.0, 0.2), (np.cos(0.3), 0.0, np.sin(0.3), 0.0))
    state.v[:, 0] = 0.4
    control = None
    if gripped:
        anchor = torch.arange(0, 40, dtype=torch.int32)
        start = state.x[:40].clone()
        control = Control(anchor, start, start + torch.tensor([0.0, 0.05, 0.1]), 2000.0, 20.0, 50.0, 1.0 / 30)
    sim = model.sim_params(None)
    outputs = []
    for serial in (True, False):
        runner = WarpFrameRunner(model, 40, 30.0, control, serial_cpu=serial)
        x, v = state.x, state.v
        for _ in range(5):
            x, v = runner.run_no_grad(x, v, sim)
            x, v = x.clone(), v.clone()
        outputs.append((x, v))
    (xs, vs), (xp, vp) = outputs
    assert float(xs[:, 2].min()) < 0.05  # reached the ground: contact is exercised
    assert torch.allclose(xs, xp, atol=1e-6, rtol=0) and torch.allclose(vs, vp, atol=1e-5, rtol=0)


def test_integrator_steps_frame_by_frame_as_simulate(coarse_anchors):
    # simulate is a loop over one Integrator (built once per model): stepping it by hand gives the same frames
    from reconphys_ros.core.physics import Integrator
    from reconphys_ros.core.physics.control import Control

    model = build([coarse_anchors], [PhysicsParams(1.0, 300.0, 1.0, 0.5)], COARSE_LATTICE)
    state = drop_state(model, (0.0, 0.0, 0.2))
    start = state.x[:20].clone()
    control = Control(torch.arange(0, 20, dtype=torch.int32), start, start + 0.02, 2000.0, 20.0, 50.0, 1.0 / 30)
    expected = simulate(model, state, 6, 40, control=control)
    integrator = Integrator(model, 40)
    for frame in range(6):
        state = integrator.step_frame(state, control)
        assert torch.equal(state.x, expected[frame]), frame
