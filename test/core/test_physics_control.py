"""Gripper grasp / lift / release, drop and push."""
import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import (COARSE_LATTICE, Gripper, ModelBuilder, PhysicsParams, drop_state, push,
                                        sample_anchors, simulate)
from reconphys_ros.core.geometry import quat_to_matrix


@pytest.fixture(scope="module")
def model():
    pts = np.random.default_rng(0).uniform(-0.1, 0.1, (4000, 3))
    b = ModelBuilder()
    b.add_object(sample_anchors(pts, COARSE_LATTICE.num_anchors, "block"), PhysicsParams(0.2, 800.0, 3.0, 0.5),
                 COARSE_LATTICE, "block")
    return b.finalize("cpu")


def test_grasp_lifts_and_release_drops(model):
    state = drop_state(model, (0.0, 0.0, 0.1))  # resting on the ground (bottom at z = 0)
    top = float(state.x[:, 2].max())
    # paper convention: m per anchor of 2048, so this object weighs 0.2 * 2048 = 410 kg
    gripper = Gripper(model, position=(0.0, 0.0, top), grasp_radius=0.08, max_effort=2e5, stiffness=2e5,
                      damping=2e3, max_speed=0.5)
    gripper.command(closed=True, position=(0.0, 0.0, top + 0.3))
    x, v = simulate(model, state, 30, 100, control=gripper, return_velocities=True)
    assert len(gripper.attached) > 0
    lifted = x[-1]
    assert float(lifted[:, 2].min()) > 0.1  # whole object off the ground
    assert float(lifted[:, 2].mean()) - float(state.x[:, 2].mean()) > 0.2
    # release: the object falls back to the ground
    gripper.command(closed=False)
    from reconphys_ros.core.physics import State
    x2 = simulate(model, State(x[-1], v[-1]), 20, 100, control=gripper)
    assert len(gripper.attached) == 0
    assert float(x2[-1, :, 2].min()) < 1e-3


def test_gripper_rate_limit_and_weak_grip_slips(model):
    state = drop_state(model, (0.0, 0.0, 0.1))
    top = float(state.x[:, 2].max())
    gripper = Gripper(model, position=(0.0, 0.0, top), grasp_radius=0.08, max_effort=1.0, max_speed=0.3)
    gripper.command(closed=True, position=(0.0, 0.0, top + 1.0))
    x = simulate(model, state, 15, 100, control=gripper)
    assert gripper.position[2] - top == pytest.approx(0.3 * 15 / 30, rel=1e-6)  # rate-limited motion
    # 1 N cannot hold a 410 kg object: it slips out and stays down
    assert float(x[-1, :, 2].min()) < 1e-3


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
