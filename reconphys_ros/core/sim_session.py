"""AssetSimulator: steps one SimAsset in the Warp spring-mass model with a gripper, frame by frame (no rclpy).

Glue between core pieces for the simulation node: picks the lattice (the asset's anchors thinned by farthest-point
sampling to the lattice size; springs rebuilt by KNN on them; paper parameters mapped resolution-independently by
ModelBuilder), binds the Gaussians to those anchors, and keeps the state, gripper and timing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from reconphys_ros.core.asset import SimAsset
from reconphys_ros.core.binding import Binding, apply_binding, compute_binding
from reconphys_ros.core.physics import (Gripper, LatticeConfig, ModelBuilder, PhysicsParams, SimulationDiverged,
                                        State, drop_state, lattice_from_name, object_seed, simulate)
from reconphys_ros.core.physics.anchors import farthest_point_sampling
from reconphys_ros.core.physics.control import DEFAULT_GRASP_STIFFNESS, DEFAULT_MAX_EFFORT
from reconphys_ros.core.physics.integrator import resolve_substeps


@dataclass
class GripperSettings:
    home_position: tuple = (0.0, 0.0, 1.0)
    max_effort: float = DEFAULT_MAX_EFFORT  # N
    stiffness: float = DEFAULT_GRASP_STIFFNESS  # 1/s^2 per unit of grasped mass (physics/control.py)
    max_speed: float = 0.5
    grasp_radius: float = 0.05


def lattice_for(name: str, device: str) -> LatticeConfig:
    """'auto' = coarse on CPU (keeps real time), the paper's reference lattice on CUDA."""
    if name == "auto":
        name = "reference" if str(device).startswith("cuda") else "coarse"
    return lattice_from_name(name)


def thin_anchors(anchors: np.ndarray, lattice: LatticeConfig, object_id: str) -> tuple[np.ndarray, LatticeConfig]:
    """Anchors for `lattice`: an even subset when the asset has more; all of them (and K < N) when it has fewer."""
    n = len(anchors)
    if n > lattice.num_anchors:
        rng = np.random.default_rng(object_seed(object_id))
        return anchors[np.sort(farthest_point_sampling(anchors.astype(np.float64), lattice.num_anchors, rng))], lattice
    if n == lattice.num_anchors:
        return anchors, lattice
    return anchors, replace(lattice, num_anchors=n, k_neighbors=min(lattice.k_neighbors, n - 1),
                            name=f"{lattice.name}-{n}")


START_MODES = ("observed", "drop")


def warm_up_kernels(device: str = "cpu") -> float:
    """Load the simulation kernels now (compiling them the first time for this user and Warp version), so that the
    first asset does not pay for it: one frame of a tiny cube held by a closed gripper runs every kernel a frame of
    the node runs. Returns the seconds it took."""
    start = time.perf_counter()
    corners = np.array([[x, y, z] for x in (0.0, 0.05) for y in (0.0, 0.05) for z in (0.2, 0.25)], np.float32)
    builder = ModelBuilder()
    builder.add_object(corners, PhysicsParams(1.0, 100.0, 1.0, 0.5), LatticeConfig(8, 3, name="warm-up"),
                       check_range=False)
    model = builder.finalize(device)
    gripper = Gripper(model, position=tuple(corners.mean(0).tolist()), grasp_radius=0.1)
    gripper.command(closed=True)
    simulate(model, drop_state(model, position=tuple(corners.mean(0).tolist())), 1, 2, control=gripper, fps=30.0,
             stability="off", return_velocities=True)
    return time.perf_counter() - start


class AssetSimulator:
    """start: how the object starts (on load and on drop()): "observed" replays the observed fall (the anchors' frame-0
    pose, moving with the asset's measured velocity and spin; "drop" when the asset has no measured motion), "drop"
    releases it from rest with its lowest anchor at drop_height."""

    def __init__(self, asset: SimAsset, lattice: LatticeConfig, fps: float = 30.0, substeps: int = 20,
                 device: str = "cpu", gripper: GripperSettings | None = None, drop_height: float = 0.3,
                 max_view_gaussians: int = 0, start: str = "observed"):
        asset.validate()
        if not fps > 0 or int(substeps) < 1:
            raise ValueError(f"need fps > 0 and substeps >= 1, got {fps}, {substeps}")
        if start not in START_MODES:
            raise ValueError(f"start must be one of {START_MODES}, got {start!r}")
        self.start = start
        self.asset = asset
        self.fps = float(fps)
        self.device = str(device)
        self.drop_height = float(drop_height)
        self.gripper_settings = gripper or GripperSettings()
        anchors, self.lattice = thin_anchors(asset.anchors, lattice, asset.object_id)
        builder = ModelBuilder()
        builder.add_object(anchors, asset.physics.params, self.lattice, object_id=asset.object_id,
                           dissipation=asset.physics.dissipation())
        self.model = builder.finalize(self.device)
        self.requested_substeps = int(substeps)
        self.substeps = resolve_substeps(self.model, int(substeps), self.fps, None, "auto")
        self.gaussians = asset.gaussians.to(self.device).detach()
        self.binding = compute_binding(self.gaussians.means, self.model.rest_positions,
                                       asset.binding_neighbors, asset.binding_power)
        self.set_view_limit(max_view_gaussians)
        self.divergences = 0
        self.step_times: list[float] = []
        self.drop()

    def set_view_limit(self, max_gaussians: int) -> None:
        """Gaussians that view_means() / view_gaussians give (point clouds and renders): all of them (0), or a
        uniform subset of `max_gaussians` (every N/max-th in index order) when the asset has more. Physics and the
        full gaussian_means() are unaffected."""
        n, m = self.gaussians.num_gaussians, int(max_gaussians)
        if m < 0:
            raise ValueError(f"max_gaussians must be >= 0, got {max_gaussians}")
        if m == 0 or n <= m:
            self.view_index, self.view_gaussians, self._view_binding = None, self.gaussians, self.binding
            return
        index = torch.arange(m, dtype=torch.long, device=self.gaussians.means.device) * n // m  # (m,) unique
        self.view_index = index
        self.view_gaussians = self.gaussians.subset(index)
        self._view_binding = Binding(self.binding.indices[index], self.binding.weights[index])

    # ------------------------------------------------------------------ state changes
    def _new_gripper(self) -> Gripper:
        g = self.gripper_settings
        return Gripper(self.model, position=g.home_position, grasp_radius=g.grasp_radius, max_effort=g.max_effort,
                       stiffness=g.stiffness, max_speed=g.max_speed)

    def _place(self, lowest_z: float) -> None:
        rest = self.model.rest_positions.detach().cpu().numpy().astype(np.float64)
        centre = rest.mean(0)
        centre[2] += lowest_z - rest[:, 2].min()
        self._restart(drop_state(self.model, position=tuple(centre)))

    def _restart(self, state: State) -> None:
        self.state = state
        self.gripper = self._new_gripper()
        self.sim_time = 0.0
        self.frames = 0

    @property
    def replays_observed_motion(self) -> bool:
        return self.start == "observed" and self.asset.initial_motion is not None

    def reset(self) -> None:
        """Object at rest on the ground (lowest anchor at z = 0), gripper open at home."""
        self._place(0.0)

    def drop(self) -> None:
        """Gripper open at home; the object replays its observed motion (start "observed", when the asset has one)
        or is released from rest with its lowest anchor at drop_height."""
        if not self.replays_observed_motion:
            self._place(self.drop_height)
            return
        x0 = self.model.rest_positions.detach().clone()  # (N_A, 3) the (thinned) anchors' frame-0 pose
        v0 = self.asset.initial_motion.velocities_at(x0.cpu().numpy(), self.asset.anchors.mean(0))
        self._restart(State(x0, torch.as_tensor(v0, dtype=x0.dtype, device=x0.device)))

    def command_gripper(self, position, orientation, closed: bool, grasp_radius: float | None,
                        max_effort: float | None) -> None:
        self.gripper.command(position=position, orientation=orientation, closed=closed,
                             grasp_radius=grasp_radius, max_effort=max_effort)

    # ------------------------------------------------------------------ stepping
    def step(self) -> float:
        """Advance one frame; returns its wall time in s. A diverged state counts and drops the object again."""
        start = time.perf_counter()
        try:
            x, v = simulate(self.model, self.state, 1, self.substeps, control=self.gripper, fps=self.fps,
                            stability="off", return_velocities=True)
            self.state = State(x[0], v[0])
            self.sim_time += 1.0 / self.fps
            self.frames += 1
        except SimulationDiverged:
            self.divergences += 1
            self.drop()
        elapsed = time.perf_counter() - start
        self.step_times.append(elapsed)
        del self.step_times[:-100]
        return elapsed

    @property
    def anchors(self) -> torch.Tensor:  # (N_A, 3)
        return self.state.x

    @property
    def anchor_velocities(self) -> torch.Tensor:  # (N_A, 3)
        return self.state.v

    def gaussian_means(self) -> torch.Tensor:  # (N, 3)
        return apply_binding(self.binding, self.state.x, self.model.rest_positions, self.gaussians.means)

    def view_means(self) -> torch.Tensor:  # (M, 3) centres of view_gaussians
        return apply_binding(self._view_binding, self.state.x, self.model.rest_positions, self.view_gaussians.means)

    @property
    def anchors_grasped(self) -> int:
        return int(len(self.gripper.attached))
