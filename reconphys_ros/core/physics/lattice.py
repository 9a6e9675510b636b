"""Anchor lattices and the resolution-independent mapping of paper parameters onto them.

The paper's m (per anchor), k, d (per spring) are defined on the reference lattice (2048 anchors, K = 256).
A coarser lattice keeps the total mass (m * N_A) and keeps the Cauchy-Born elastic modulus, which for
pair springs is proportional to k * sum(r^2) / volume: k_lat = k * sum r^2(reference) / sum r^2(lattice),
the same for d. A per-lattice correction factor, fitted on reference drops (calibration.py), absorbs what
the linear-elastic argument misses (boundary layers, discreteness)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import REFERENCE_NUM_ANCHORS, PhysicsParams
from .springs import knn_springs


@dataclass(frozen=True)
class LatticeConfig:
    num_anchors: int = 2048
    k_neighbors: int = 256
    spring_exponent: float = 1.0  # p_k of the generalised Hooke law
    name: str = "reference"
    stiffness_correction: float = 1.0  # calibrated multiplier on the Cauchy-Born stiffness scale
    damping_correction: float = 1.0  # calibrated multiplier on the damping scale

    def validate(self) -> "LatticeConfig":
        if self.num_anchors < 2:
            raise ValueError(f"LatticeConfig.num_anchors must be >= 2, got {self.num_anchors}")
        if not 1 <= self.k_neighbors < self.num_anchors:
            raise ValueError(f"LatticeConfig.k_neighbors must be in [1, num_anchors), got {self.k_neighbors}")
        if not (np.isfinite(self.spring_exponent) and self.spring_exponent >= 1.0):
            raise ValueError(f"LatticeConfig.spring_exponent must be >= 1, got {self.spring_exponent}")
        if not (self.stiffness_correction > 0 and self.damping_correction > 0):
            raise ValueError("LatticeConfig corrections must be > 0")
        return self

    @property
    def is_reference(self) -> bool:
        return self.num_anchors == REFERENCE_LATTICE.num_anchors and self.k_neighbors == REFERENCE_LATTICE.k_neighbors


REFERENCE_LATTICE = LatticeConfig(REFERENCE_NUM_ANCHORS, 256, name="reference")
# Lattices that keep the reference's K / N_A = 1/8, so every spring spans the same share of the object: the KNN
# neighbourhood is part of the material (long springs resist bending), and with it matched the Cauchy-Born scale
# needs no correction (`python -m reconphys_ros.core.physics.calibration`; figures in the README's lattice table).
COARSE64_LATTICE = LatticeConfig(512, 64, name="coarse64")
MEDIUM_LATTICE = LatticeConfig(1024, 128, name="medium")
# The default on CPU: K / N_A = 1/16 maps worse, but the shipped physics predictor, the non-learned estimator's
# calibration and the example clips were all made on it. Switch the default to coarse64 together with regenerated
# data and a retrained predictor.
COARSE_LATTICE = LatticeConfig(512, 32, name="coarse")
LATTICES = {lat.name: lat for lat in (REFERENCE_LATTICE, MEDIUM_LATTICE, COARSE64_LATTICE, COARSE_LATTICE)}


def lattice_from_name(name: str) -> LatticeConfig:
    if name not in LATTICES:
        raise ValueError(f"unknown lattice {name!r}; choose one of {sorted(LATTICES)}")
    return LATTICES[name]


def spring_r2_sum(anchors: np.ndarray, k_neighbors: int) -> float:
    pairs, rest = knn_springs(anchors, k_neighbors)
    return float(np.sum(rest.astype(np.float64) ** 2))


def estimate_reference_r2_sum(anchors: np.ndarray, reference: LatticeConfig = REFERENCE_LATTICE) -> float:
    """Sum of squared rest lengths the reference lattice would have on this object, estimated from these
    anchors: the reference K-neighbourhood covers the same region as K * N/N_ref neighbours here, and the
    reference has (N_ref/N)^2 times as many springs per such region pair."""
    n = len(anchors)
    ratio = reference.num_anchors / n
    k_eff = int(round(reference.k_neighbors / ratio))
    k_eff = int(np.clip(k_eff, 1, n - 1))
    # the reference K in units of this lattice's neighbours, corrected for rounding of k_eff
    return spring_r2_sum(anchors, k_eff) * ratio * ratio * (reference.k_neighbors / ratio / k_eff) ** (5.0 / 3.0)


@dataclass(frozen=True)
class LatticeScale:
    """Multipliers from paper parameters to this lattice's simulation values."""

    mass: float
    stiffness: float
    damping: float

    def apply(self, params: PhysicsParams) -> tuple[float, float, float, float]:
        return (params.mass * self.mass, params.stiffness * self.stiffness, params.damping * self.damping, params.friction)


def lattice_scale(lattice: LatticeConfig, lattice_r2_sum: float, reference_r2_sum: float,
                  reference: LatticeConfig = REFERENCE_LATTICE) -> LatticeScale:
    if lattice.is_reference:
        return LatticeScale(1.0, 1.0, 1.0)
    if not (lattice_r2_sum > 0 and reference_r2_sum > 0):
        raise ValueError("lattice_scale: spring r^2 sums must be > 0")
    r2 = reference_r2_sum / lattice_r2_sum
    return LatticeScale(
        mass=reference.num_anchors / lattice.num_anchors,
        stiffness=r2 * lattice.stiffness_correction,
        damping=r2 * lattice.damping_correction,
    )


def lattice_scale_for(lattice: LatticeConfig, anchors: np.ndarray, rest_lengths: np.ndarray,
                      reference_r2_sum: float | None = None) -> LatticeScale:
    """The multipliers of `lattice` built on these anchors (N, 3) with springs of these rest lengths (S,): what the
    simulator applies (ModelBuilder) and what an asset reports as its per-spring k and d. The reference's r^2 sum is
    estimated from the anchors unless given (never needed on the reference lattice itself)."""
    if lattice.is_reference:
        return LatticeScale(1.0, 1.0, 1.0)
    if reference_r2_sum is None:
        reference_r2_sum = estimate_reference_r2_sum(anchors)
    return lattice_scale(lattice, float(np.sum(np.asarray(rest_lengths, np.float64) ** 2)), reference_r2_sum)
