"""Gripper grasp / lift / hold / slip / release in SI (kg, N), drop and push."""
import math

import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import (COARSE_LATTICE, Gripper, ModelBuilder, PhysicsParams, State, drop_state, push,
                                        sample_anchors, simulate)
from reconphys_ros.core.physics.control import (DEFAULT_GRASP_STIFFNESS, DEFAULT_MAX_EFFORT, check_max_effort,
                                                critical_damping, grasp_stability_margin)
from reconphys_ros.core.physics.params import REFERENCE_NUM_ANCHORS
from reconphys_ros.core.geometry import quat_to_matrix


REF = REFERENCE_NUM_ANCHORS
KPM, DPM = 4000.0, 15.0  # k/m (1/s^2) and d/m (1/s) of the test block (a firm 20 cm object)


def block(total_mass: float):
    """A 20 cm block of `total_mass` kg: PhysicsParams per anchor of the 2048-anchor reference lattice (M / 2048),
    k and d scaled with it (same k/m and d/m at every mass)."""
    pts = np.random.default_rng(0).uniform(-0.1, 0.1, (4000, 3))
    m = total_mass / REF
    b = ModelBuilder()
    b.add_object(sample_anchors(pts, COARSE_LATTICE.num_anchors, "block"), PhysicsParams(m, KPM * m, DPM * m, 0.5),
                 COARSE_LATTICE, "block")
    return b.finalize("cpu")


@pytest.fixture(scope="module")
def model():
    return block(0.2)  # 0.2 kg, weight 1.96 N


def lift(model, max_effort, frames=45, substeps=20):
    """Close on the block's centre (resting on the ground) and lift 0.3 m at 0.5 m/s, then hold (45 frames = 1.5 s)."""
    state = drop_state(model, (0.0, 0.0, 0.1))
    gripper = Gripper(model, position=(0.0, 0.0, 0.1), grasp_radius=0.08, max_effort=max_effort)
    gripper.command(closed=True, position=(0.0, 0.0, 0.4))
    x, v = simulate(model, state, frames, substeps, control=gripper, return_velocities=True)
    return gripper, state, x, v


def test_grasp_lifts_holds_and_release_drops(model):
    """A 0.2 kg object in a 40 N gripper (the default): lifted, held still, dropped on release."""
    assert Gripper(model).max_effort == DEFAULT_MAX_EFFORT == 40.0
    gripper, state, x, v = lift(model, DEFAULT_MAX_EFFORT)
    assert len(gripper.attached) > 0 and not gripper.slipped
    lifted = x[-1]
    assert float(lifted[:, 2].min()) > 0.25  # whole object off the ground (it rested on 0..0.2 m)
    rise = float(lifted[:, 2].mean()) - float(state.x[:, 2].mean())
    assert 0.27 < rise <= 0.3  # held 0.3 m up, sagging by a few cm at most (about (N / n) g / w^2)
    assert float(v[-1].norm(dim=1).max()) < 0.02  # held still and stable
    # the springs scale with the grasped anchors' mass: k = m_anchor w^2 per spring, in N/m
    anchor_mass = float(model.sim_params()[0][0])
    assert gripper.spring_stiffness == pytest.approx(anchor_mass * DEFAULT_GRASP_STIFFNESS)
    # release: the object falls back to the ground
    gripper.command(closed=False)
    x2 = simulate(model, State(x[-1], v[-1]), 20, 20, control=gripper)
    assert len(gripper.attached) == 0
    assert float(x2[-1, :, 2].min()) < 1e-3


def test_cap_below_the_weight_slips_out(model):
    """0.5 N cannot hold 0.2 kg (1.96 N): the object slips out and stays down, not stretched; the gripper, still
    closed, does not grab it again."""
    gripper, state, x, _ = lift(model, 0.5)
    assert gripper.position[2] == pytest.approx(0.4)
    assert len(gripper.attached) == 0 and gripper.slipped
    assert float(x[-1, :, 2].min()) < 1e-3
    extent = float(x[-1, :, 2].max() - x[-1, :, 2].min())
    assert extent == pytest.approx(float(state.x[:, 2].max() - state.x[:, 2].min()), abs=0.01)  # not stretched
    gripper.command(closed=False)  # opening clears the slip; closing again grasps
    gripper.frame_control(0, State(x[-1], x[-1] * 0), 1 / 30)
    assert not gripper.slipped


def test_gripper_rate_limit(model):
    state = drop_state(model, (0.0, 0.0, 0.1))
    top = float(state.x[:, 2].max())
    gripper = Gripper(model, position=(0.0, 0.0, top), grasp_radius=0.08, max_speed=0.3)
    gripper.command(closed=True, position=(0.0, 0.0, top + 1.0))
    simulate(model, state, 15, 20, control=gripper)
    assert gripper.position[2] - top == pytest.approx(0.3 * 15 / 30, rel=1e-6)  # rate-limited motion


def test_grasp_is_the_same_for_every_mass_at_the_same_substeps():
    """Grasp springs per unit mass: a 0.05 kg and a 5 kg object (same k/m, d/m; the same cap per kg) move identically
    at the same substep count; only the cap in N tells them apart: 40 N holds 3 kg, not 5 kg (49 N)."""
    light, heavy = block(0.05), block(5.0)
    _, _, x_light, _ = lift(light, 40.0)
    g_heavy, _, x_heavy, v_heavy = lift(heavy, 40.0 * 5.0 / 0.05)
    assert len(g_heavy.attached) > 0
    assert float((x_light - x_heavy).abs().max()) < 1e-4
    assert float(x_heavy[-1, :, 2].min()) > 0.25 and float(v_heavy[-1].norm(dim=1).max()) < 0.02
    g3, _, x3, _ = lift(block(3.0), 40.0)
    assert len(g3.attached) > 0 and float(x3[-1, :, 2].min()) > 0.25  # 29 N in a 40 N grip
    g5, _, x5, _ = lift(heavy, 40.0, frames=30)
    assert g5.slipped and float(x5[-1, :, 2].min()) < 1e-3  # 49 N in a 40 N grip


def test_default_grasp_is_stable_at_the_node_rate():
    """The default grasp (12 Hz, critically damped) fits the integrator's stability budget at 30 fps x 20 substeps
    (the simulation node's defaults) and more."""
    damping = critical_damping(DEFAULT_GRASP_STIFFNESS)
    assert grasp_stability_margin(DEFAULT_GRASP_STIFFNESS, damping, 1.0 / (30 * 20)) < 0.7
    assert grasp_stability_margin(DEFAULT_GRASP_STIFFNESS, damping, 1.0 / (30 * 100)) < 0.15


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0, 0.0, "40", True, None])
def test_bad_max_effort_is_refused_naming_newtons(model, bad):
    gripper = Gripper(model)
    if bad is not None:
        with pytest.raises(ValueError, match=r"max_effort.* N"):
            gripper.command(max_effort=bad)
    with pytest.raises(ValueError, match=r"max_effort.* N"):
        Gripper(model, max_effort=bad if bad is not None else math.nan)
    assert gripper.max_effort == DEFAULT_MAX_EFFORT  # unchanged
    gripper.command(max_effort=25.0)
    assert gripper.max_effort == 25.0
    assert check_max_effort(np.float64(12.5)) == 12.5


def test_push_moves_object_with_momentum(model):
    state = drop_state(model, (0.0, 0.0, 2.0))
    total_mass = float(model.sim_params()[0][0]) * model.num_anchors
    pushed = push(model, state, (total_mass * 1.0, 0.0, 0.0))
    assert float(pushed.v[:, 0].mean()) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError):
        push(model, state, (1.0, 0.0, 0.0), point=(5.0, 5.0, 5.0), radius=0.01)


def test_drop_state_pose(model):
    s = drop_state(model, (1.0, 2.0, 3.0), (np.cos(0.5), 0.0, 0.0, np.sin(0.5)))
    assert torch.allclose(s.x.mean(0), torch.tensor([1.0, 2.0, 3.0]), atol=1e-5)
    assert torch.count_nonzero(s.v) == 0


def test_huge_finite_quaternion_is_a_rotation_not_an_error(model):
    """Issue 18.1: the norm of (1e300, 1e300, 0, 0) overflows to inf and q / inf = 0: Gripper.command raised (and the
    node with it) and quat_to_matrix returned the identity."""
    q = (1e300, 1e300, 0.0, 0.0)
    np.testing.assert_allclose(quat_to_matrix(q), [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-12)
    gripper = Gripper(model)
    gripper.command(orientation=q)
    np.testing.assert_allclose(gripper.target_orientation, [2**-0.5, 2**-0.5, 0.0, 0.0])
    for bad in ((0.0, 0.0, 0.0, 0.0), (float("nan"), 1.0, 0.0, 0.0), (float("inf"), 0.0, 0.0, 0.0), (1.0, 0.0, 0.0)):
        with pytest.raises(ValueError, match="orientation"):
            gripper.command(orientation=bad)
