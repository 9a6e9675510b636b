"""SimAsset: everything a simulator needs to run a reconstructed object, independent of ROS.

Gaussians (appearance, canonical pose) + the spring-mass lattice (anchors, springs) + binding settings + physics
estimate. The ROS message GaussianAsset mirrors it field for field (see ros/conversions.py).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch

from reconphys_ros.core.gaussians import GaussianCloud
from reconphys_ros.core.physics.params import PhysicsParams

_OBJECT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Physical plausibility of an asset, beyond finiteness: outside these bounds the simulation or the render is
# meaningless (an all-white render from 1e34 m Gaussians, Gaussians that follow anchors metres away).
MAX_BINDING_POWER = 16.0  # IDW falloff p_b (the paper uses 2); above ~16 a Gaussian follows its nearest anchor only
GAUSSIAN_SCALE_RANGE_M = (1e-9, 10.0)
MAX_BINDING_REACH = 3.0  # Gaussians lie within this many object sizes of the anchors' bounding box

# Keys of PhysicsEstimate.std: the four paper parameters and the identifiable pair.
STD_KEYS = ("mass", "stiffness", "damping", "friction", "stiffness_per_mass", "damping_per_mass")


def validate_object_id(object_id: str) -> str:
    """Object ids name output files, so they must be safe file names: 1-128 of [A-Za-z0-9_.-], not starting with
    '.' or '-' (no path separators, '..', control characters). Returns the id or raises ValueError."""
    if not isinstance(object_id, str) or not _OBJECT_ID.fullmatch(object_id):
        raise ValueError(
            f"invalid object id {object_id!r}: use 1-128 characters from [A-Za-z0-9_.-], starting with a letter, "
            "digit or '_' (ids become file names, so path separators and '..' are not allowed)")
    return object_id


@dataclass
class PhysicsEstimate:
    """Predicted physics with one standard deviation per quantity (0 = unknown or given exactly).

    mass_given: True when the user supplied the anchor mass (then stiffness and damping are scaled to it)."""

    params: PhysicsParams
    std: dict = field(default_factory=lambda: {k: 0.0 for k in STD_KEYS})
    mass_given: bool = False

    def validate(self) -> "PhysicsEstimate":
        self.params.validate()
        unknown = set(self.std) - set(STD_KEYS)
        if unknown:
            raise ValueError(f"PhysicsEstimate.std has unknown keys {sorted(unknown)}; allowed: {STD_KEYS}")
        for key, value in self.std.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0.0):
                raise ValueError(f"PhysicsEstimate.std[{key!r}] must be a finite number >= 0, got {value!r}")
        return self

    def std_of(self, key: str) -> float:
        return float(self.std.get(key, 0.0))


@dataclass
class SimAsset:
    object_id: str
    gaussians: GaussianCloud        # canonical (rest) pose, world frame
    anchors: np.ndarray             # (N_A, 3) float32 anchor rest positions, m
    springs: np.ndarray             # (S, 2) int64 anchor index pairs, i < j
    rest_lengths: np.ndarray        # (S,) float32, m
    lattice_neighbors: int          # K used to build the springs
    binding_neighbors: int          # n_b
    binding_power: float            # p_b
    physics: PhysicsEstimate

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    @property
    def num_springs(self) -> int:
        return int(self.springs.shape[0])

    def validate(self) -> "SimAsset":
        validate_object_id(self.object_id)
        self.gaussians.validate()
        anchors, springs, rest = self.anchors, self.springs, self.rest_lengths
        if anchors.ndim != 2 or anchors.shape[1] != 3 or anchors.shape[0] < 2:
            raise ValueError(f"SimAsset.anchors must have shape (N_A >= 2, 3), got {anchors.shape}")
        if not np.isfinite(anchors).all():
            raise ValueError("SimAsset.anchors contains NaN or Inf")
        if springs.ndim != 2 or springs.shape[1] != 2 or springs.shape[0] < 1:
            raise ValueError(f"SimAsset.springs must have shape (S >= 1, 2), got {springs.shape}")
        if springs.min() < 0 or springs.max() >= anchors.shape[0]:
            raise ValueError(f"SimAsset.springs indexes anchors outside [0, {anchors.shape[0]})")
        if rest.shape != (springs.shape[0],):
            raise ValueError(f"SimAsset.rest_lengths must have shape ({springs.shape[0]},), got {rest.shape}")
        if not (np.isfinite(rest).all() and (rest > 0).all()):
            raise ValueError("SimAsset.rest_lengths must be finite and > 0")
        if self.binding_neighbors < 1 or not (math.isfinite(self.binding_power) and
                                              0 < self.binding_power <= MAX_BINDING_POWER):
            raise ValueError(f"SimAsset binding needs n_b >= 1 and 0 < p_b <= {MAX_BINDING_POWER:g}, got "
                             f"{self.binding_neighbors}, {self.binding_power}")
        self._check_gaussian_scales()
        self._check_gaussians_near_anchors()
        self.physics.validate()
        return self

    def _check_gaussian_scales(self) -> None:
        low, high = GAUSSIAN_SCALE_RANGE_M
        log_scales = self.gaussians.log_scales.detach()
        bad = (log_scales < math.log(low)) | (log_scales > math.log(high))
        if bad.any():
            first = int(bad.any(dim=1).nonzero()[0, 0])
            raise ValueError(f"SimAsset Gaussian {first} has scales {log_scales[first].exp().tolist()} m, outside "
                             f"the plausible {low:g}..{high:g} m (log_scales hold the natural log of the scale)")

    def _check_gaussians_near_anchors(self) -> None:
        """Gaussians follow the anchors: one far outside the lattice would be dragged by anchors metres away.
        The anchors' bounding box plus a margin is a cheap stand-in for the distance to the nearest anchor."""
        low, high = self.anchors.min(axis=0), self.anchors.max(axis=0)
        size = float(np.linalg.norm(high - low))
        margin = MAX_BINDING_REACH * size
        means = self.gaussians.means.detach()
        box_low = torch.as_tensor(low - margin, dtype=means.dtype, device=means.device)
        box_high = torch.as_tensor(high + margin, dtype=means.dtype, device=means.device)
        outside = ((means < box_low) | (means > box_high)).any(dim=1)
        if outside.any():
            first = int(outside.nonzero()[0, 0])
            raise ValueError(f"SimAsset Gaussian {first} at {means[first].tolist()} m is more than "
                             f"{MAX_BINDING_REACH:g} object sizes ({margin:.3g} m) outside the anchors' bounding box "
                             f"{low.tolist()}..{high.tolist()} m: Gaussians and anchors do not describe one object")
