"""Simulation robustness: random configurations across the full paper ranges stay finite at the node's default
settings; a diverging state is detected, reported on sim/status and reset; far-off gripper targets are clamped."""
from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import (PARAM_NAMES, PARAM_RANGES, ModelBuilder, PhysicsParams, State, drop_state,
                                        lattice_from_name, sample_anchors, simulate)
from reconphys_ros.core.physics.integrator import resolve_substeps
from reconphys_ros.core.physics.params import (object_size, paper_from_ratios, ratios_from_paper,
                                               ratios_from_size_independent)
from reconphys_ros.core.sim_session import thin_anchors
from reconphys_ros.ros.parameters import node_defaults
from test.reliability import fuzz


def random_configs(count: int, seed: int) -> np.ndarray:
    """(count, 4) m, k, d, f of the paper's box for a 1 m object (the size-independent form, physics/params.py): the
    16 corners first, then log-uniform m, k, d and uniform f. check_configs_finite maps them to the object's size."""
    lo = np.array([PARAM_RANGES[n][0] for n in PARAM_NAMES])
    hi = np.array([PARAM_RANGES[n][1] for n in PARAM_NAMES])
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    rng = np.random.default_rng(seed)
    u = rng.random((max(count - len(corners), 0), 4))
    logs = np.exp(np.log(lo[:3]) + u[:, :3] * (np.log(hi[:3]) - np.log(lo[:3])))
    rand = np.concatenate([logs, lo[3] + u[:, 3:] * (hi[3] - lo[3])], axis=1)
    return np.concatenate([corners, rand])[:count].astype(np.float32)


def object_model(num_anchors: int, device: str, scale: float = 1.0):
    """A 0.3 m box object (times `scale`) on the simulation node's default lattice; with num_anchors below the
    lattice size the lattice shrinks to them as the node does for small assets (keeps the CPU run tractable)."""
    defaults = node_defaults("simulation")
    lattice = lattice_from_name("coarse" if defaults["lattice"] == "auto" else defaults["lattice"])
    rng = np.random.default_rng(0)
    points = scale * rng.uniform([-0.15, -0.1, 0.0], [0.15, 0.1, 0.2], (4000, 3))
    anchors = sample_anchors(points, min(num_anchors, lattice.num_anchors), "robustness_box")
    anchors, lattice = thin_anchors(anchors, lattice, "robustness_box")  # K = min(K, N - 1), as the node does
    builder = ModelBuilder()
    builder.add_object(anchors, PhysicsParams(1.0, 100.0, 1.0, 0.5), lattice, object_id="robustness_box")
    return builder.finalize(device), defaults, object_size(anchors)


def check_configs_finite(configs: np.ndarray, num_anchors: int, device: str, batch: int, frames: int = 30,
                         scale: float = 1.0):
    """Drop every configuration (the paper's values for 1 m, mapped to the object's size by the similarity law) from
    the node's drop height with the node's fps / substeps (raised to the stable count as the node does); assert
    every state stays finite and above the ground."""
    base, defaults, size = object_model(num_anchors, device, scale)
    ratios = ratios_from_size_independent(ratios_from_paper(configs.astype(np.float64)), size)
    configs = paper_from_ratios(ratios, configs[:, 0].astype(np.float64)).astype(np.float32)
    fps, substeps, height = defaults["fps"], defaults["substeps"], defaults["drop_height"]
    for start in range(0, len(configs), batch):
        chunk = torch.as_tensor(configs[start:start + batch], device=device)
        model = base.replicate(len(chunk))
        used = resolve_substeps(model, substeps, fps, chunk, "auto")
        state = drop_state(model, position=(0.0, 0.0, height + 0.1))
        x = simulate(model, state, frames, used, params=chunk, fps=fps, check_nan=False)  # (T, B*N, 3)
        per_object = x.reshape(frames, len(chunk), -1, 3)
        finite = torch.isfinite(per_object).flatten(2).all(2).all(0)  # (B,)
        bad = (~finite).nonzero().flatten().tolist()
        assert not bad, f"non-finite states for configs {chunk[bad[:5]].tolist()} ({used} substeps)"
        lowest = per_object[..., 2].amin(dim=(0, 2))
        assert (lowest > -0.05).all(), f"objects fell through the ground: {lowest.min():.3f} m"
        span = per_object[-1].amax(1) - per_object[-1].amin(1)  # (B, 3)
        assert (span < 2.0).all(), "an object exploded (extent > 2 m)"


@pytest.mark.parametrize("scale", [1.0, 0.15], ids=["30cm", "5cm"])
def test_corner_and_random_configs_stay_finite(scale):
    configs = random_configs(48, seed=1)
    check_configs_finite(configs, num_anchors=48, device="cpu", batch=48, frames=20, scale=scale)


@pytest.mark.slow
def test_10k_random_configs_stay_finite():
    configs = random_configs(10_000, seed=2)
    start = time.monotonic()
    check_configs_finite(configs, num_anchors=48, device="cpu", batch=500, frames=30)
    print(f"10k configs (48-anchor lattice, CPU): {time.monotonic() - start:.0f} s")


@pytest.mark.gpu
@pytest.mark.slow
def test_10k_random_configs_stay_finite_on_the_coarse_lattice_cuda():
    configs = random_configs(10_000, seed=3)
    check_configs_finite(configs, num_anchors=512, device="cuda", batch=250, frames=30)


# ---------------------------------------------------------------------------------------------------- node level
def test_diverging_state_is_reported_and_reset(sim_node):
    node = sim_node
    for _ in range(3):
        node.tick()
    x = node.sim.state.x.clone()
    x[3, 1] = math.nan  # what an exploding spring system leaves behind
    node.sim.state = State(x, node.sim.state.v)
    node.tick()
    assert node.sim.divergences == 1
    assert torch.isfinite(node.sim.anchors).all()
    lowest = float(node.sim.anchors[:, 2].min())
    assert lowest == pytest.approx(node.params["drop_height"], abs=0.05), "not dropped again from drop_height"
    node.publish_status()
    status = node.status_pub.messages[-1]
    assert status.divergences == 1 and "diverged" in status.message
    frames = node.frames_stepped
    for _ in range(5):
        node.tick()
    assert node.frames_stepped == frames + 5 and node.sim.divergences == 1  # keeps running


def test_far_gripper_targets_are_clamped_with_a_warning(sim_node):
    node = sim_node
    warnings = []
    node.get_logger().warning = lambda text, **_: warnings.append(text)  # noqa: E731 (rclpy loggers are per node)
    cmd = fuzz.GripperCommand(position=0.08, max_effort=0.0, grasp_radius=0.1)
    cmd.pose.position.x, cmd.pose.position.y, cmd.pose.position.z = 1e6, -3e7, 1e4
    cmd.pose.orientation.w = 1.0
    node.on_command(cmd)
    target = node.sim.gripper.target_position
    np.testing.assert_allclose(target, [5.0, -5.0, 5.0])
    assert node.commands_clamped == 1
    cmd.pose.position.x, cmd.pose.position.y, cmd.pose.position.z = 0.1, 0.2, 0.3  # inside: untouched
    node.on_command(cmd)
    np.testing.assert_allclose(node.sim.gripper.target_position, [0.1, 0.2, 0.3])
    assert node.commands_clamped == 1
    for _ in range(30):
        node.tick()
    assert np.all(np.abs(node.sim.gripper.position) <= 5.0 + 1e-9)
