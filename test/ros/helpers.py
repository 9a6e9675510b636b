"""Builders of deterministic test assets shared by the ROS tests."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reconphys_ros.core.asset import PhysicsEstimate, SimAsset
from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.physics.params import object_size


def random_asset(num_gaussians: int, num_anchors: int = 64, seed: int = 0, object_id: str = "test_obj") -> SimAsset:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(num_gaussians, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    gaussians = GaussianCloud(
        # around the anchors (+-0.1 m), as in a real asset: Gaussians far off the lattice fail SimAsset.validate
        means=torch.from_numpy(rng.normal(scale=0.1, size=(num_gaussians, 3)).astype(np.float32)),
        log_scales=torch.from_numpy(rng.uniform(-5, -2, size=(num_gaussians, 3)).astype(np.float32)),
        quats=torch.from_numpy(quats),
        colors=torch.from_numpy(rng.uniform(0, 1, size=(num_gaussians, 3)).astype(np.float32)),
        opacity_logits=torch.from_numpy(rng.normal(size=num_gaussians).astype(np.float32)),
    )
    anchors = rng.uniform(-0.1, 0.1, size=(num_anchors, 3)).astype(np.float32)
    i, j = np.triu_indices(num_anchors, k=1)
    keep = rng.random(i.size) < 0.2
    springs = np.stack([i[keep], j[keep]], axis=1).astype(np.int64)
    rest = np.linalg.norm(anchors[springs[:, 0]] - anchors[springs[:, 1]], axis=1).astype(np.float32)
    # a 0.3 kg object with k/m = 200 1/s^2, d/m = 0.5 1/s (SI; physics/params.py)
    physics = PhysicsEstimate.from_si(0.3, 200.0, 0.5, 0.4, object_size(anchors),
                                      {"total_mass_std": 0.06, "stiffness_per_mass_std": 20.0,
                                       "damping_per_mass_std": 0.05, "friction_std": 0.05}, mass_given=False)
    return SimAsset(object_id, gaussians, anchors, springs, rest, lattice_neighbors=16, binding_neighbors=4,
                    binding_power=2.0, physics=physics)


def assert_assets_equal(a: SimAsset, b: SimAsset) -> None:
    assert a.object_id == b.object_id
    for name in ("means", "log_scales", "quats", "colors", "opacity_logits"):
        assert torch.equal(getattr(a.gaussians, name), getattr(b.gaussians, name)), name
    np.testing.assert_array_equal(a.anchors, b.anchors)
    np.testing.assert_array_equal(a.springs, b.springs)
    np.testing.assert_array_equal(a.rest_lengths, b.rest_lengths)
    assert (a.lattice_neighbors, a.binding_neighbors, a.binding_power) == \
        (b.lattice_neighbors, b.binding_neighbors, b.binding_power)
    np.testing.assert_allclose(a.physics.params.to_tuple(), b.physics.params.to_tuple(), rtol=1e-12)
    assert a.physics.size == pytest.approx(b.physics.size, rel=1e-12) and a.physics.mass_given == b.physics.mass_given
    assert a.physics.std == b.physics.std and a.physics.mass_given == b.physics.mass_given


class RecordingPublisher:
    """Stands in for an rclpy publisher: keeps what was published."""

    def __init__(self):
        self.messages = []

    def publish(self, msg):
        self.messages.append(msg)

    def get_subscription_count(self) -> int:
        return 1


def ticking_simulation_node(ros_context):
    """A SimulationNode with its timers cancelled (the test calls tick()), publishers recorded, and a 0.3 kg, 20 cm
    test asset loaded. The caller closes and destroys it."""
    from rclpy.parameter import Parameter

    from reconphys_ros.ros.conversions import asset_to_msg
    from reconphys_ros.ros.simulation import SimulationNode
    node = SimulationNode(context=ros_context, parameter_overrides=[Parameter("render_rate", value=0.0)])
    node.timer.cancel()
    node.status_timer.cancel()
    for name in ("anchor_pub", "gaussian_pub", "image_pub", "status_pub"):
        setattr(node, name, RecordingPublisher())
    node.on_asset(asset_to_msg(random_asset(200, num_anchors=40, seed=5)))
    assert node.sim is not None
    return node
