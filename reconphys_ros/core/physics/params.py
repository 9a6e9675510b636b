"""Physical parameters of one object in the paper's convention (reference lattice 2048 anchors / K = 256)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

GRAVITY_MAGNITUDE = 9.81  # m/s^2
GRAVITY = (0.0, 0.0, -GRAVITY_MAGNITUDE)  # world z up

# Paper ranges (Table / sampling ranges of the ReconPhys data set).
PARAM_RANGES = {
    "mass": (0.2, 6.0),
    "stiffness": (10.0, 1200.0),
    "damping": (0.1, 5.0),
    "friction": (0.0, 1.0),
}
PARAM_NAMES = ("mass", "stiffness", "damping", "friction")
# The paper's m is the mass of one anchor of its reference lattice: the object's total mass is m times this.
REFERENCE_NUM_ANCHORS = 2048


def range_centre(name: str) -> float:
    """The centre of a parameter's paper range as the data generator draws it: the geometric mean for m, k, d
    (log-uniform), the arithmetic mean for f (uniform)."""
    lo, hi = PARAM_RANGES[name]
    return (lo + hi) / 2.0 if name == "friction" else math.sqrt(lo * hi)


def log_uniform_sigma(lo: float, hi: float) -> float:
    """Standard deviation of ln x for x log-uniform on [lo, hi]."""
    return math.log(hi / lo) / math.sqrt(12.0)


# Priors for what a video does not determine (only k/m, d/m and f are identifiable, DESIGN.md): the mass, and the
# starting d/m and f of the estimator.
MASS_PRIOR = range_centre("mass")  # kg per reference anchor
MASS_PRIOR_LOG_SIGMA = log_uniform_sigma(*PARAM_RANGES["mass"])  # spread of ln m under the log-uniform draw
FRICTION_PRIOR = range_centre("friction")
DAMPING_PER_MASS_PRIOR = range_centre("damping") / MASS_PRIOR  # 1/s

# Ranges of the identifiable quantities (ln k/m, ln d/m, f) implied by the paper's ranges of m, k, d, f.
RATIO_RANGES = {
    "log_stiffness_per_mass": (math.log(PARAM_RANGES["stiffness"][0] / PARAM_RANGES["mass"][1]),
                               math.log(PARAM_RANGES["stiffness"][1] / PARAM_RANGES["mass"][0])),
    "log_damping_per_mass": (math.log(PARAM_RANGES["damping"][0] / PARAM_RANGES["mass"][1]),
                             math.log(PARAM_RANGES["damping"][1] / PARAM_RANGES["mass"][0])),
    "friction": PARAM_RANGES["friction"],
}


def mass_prior(known_mass: float | None) -> tuple[float, bool]:
    """(mass, given?) -- the user's mass when set, else the prior."""
    if known_mass is None:
        return MASS_PRIOR, False
    lo, hi = PARAM_RANGES["mass"]
    if not (isinstance(known_mass, (int, float)) and math.isfinite(known_mass) and lo <= known_mass <= hi):
        raise ValueError(f"known_mass must be a number in the paper range [{lo}, {hi}] kg, got {known_mass!r}")
    return float(known_mass), True


@dataclass
class PhysicsParams:
    """m = mass of each anchor (kg), k = per-spring stiffness (N/m), d = per-spring damping (N s/m),
    f = Coulomb friction coefficient with the ground. Defined on the reference lattice (see lattice.py)."""

    mass: float
    stiffness: float
    damping: float
    friction: float

    def validate(self, check_range: bool = True) -> "PhysicsParams":
        for name in PARAM_NAMES:
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"PhysicsParams.{name} must be a number, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"PhysicsParams.{name} must be finite, got {value}")
            lo, hi = PARAM_RANGES[name]
            if check_range and not (lo <= value <= hi):
                raise ValueError(f"PhysicsParams.{name} = {value} is outside the paper range [{lo}, {hi}]")
            if name != "friction" and value <= 0.0:
                raise ValueError(f"PhysicsParams.{name} must be > 0, got {value}")
            if name == "friction" and value < 0.0:
                raise ValueError(f"PhysicsParams.friction must be >= 0, got {value}")
        return self

    @property
    def total_mass(self) -> float:
        """The object's mass in kg (the paper's m is per anchor of the 2048-anchor reference lattice)."""
        return self.mass * REFERENCE_NUM_ANCHORS

    @property
    def stiffness_per_mass(self) -> float:
        """k/m (1/s^2): identifiable from video, unlike m, k, d separately."""
        return self.stiffness / self.mass

    @property
    def damping_per_mass(self) -> float:
        """d/m (1/s): identifiable from video."""
        return self.damping / self.mass

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "PhysicsParams":
        missing = [n for n in PARAM_NAMES if n not in data]
        if missing:
            raise ValueError(f"PhysicsParams.from_dict: missing field(s) {missing}; got keys {sorted(data)}")
        return cls(**{n: float(data[n]) for n in PARAM_NAMES})

    def to_tuple(self) -> tuple:
        return (self.mass, self.stiffness, self.damping, self.friction)


# The identifiable form (what video determines, what the predictor and the estimator work in) and back: the one
# mapping between the two, for torch tensors (differentiable) and numpy arrays alike.
def ratios_from_paper(params):
    """(..., 4) paper m, k, d, f -> (..., 3) ln k/m, ln d/m, f."""
    lib = torch if isinstance(params, torch.Tensor) else np
    p = params if lib is torch else np.asarray(params, np.float64)
    return lib.stack([lib.log(p[..., 1] / p[..., 0]), lib.log(p[..., 2] / p[..., 0]), p[..., 3]], -1)


def paper_from_ratios(ratios, mass):
    """(..., 3) ln k/m, ln d/m, f and the anchor mass m (float or (...,)) -> (..., 4) paper m, k, d, f."""
    if isinstance(ratios, torch.Tensor):
        m = torch.as_tensor(mass, dtype=ratios.dtype, device=ratios.device).expand(ratios.shape[:-1])
        return torch.stack([m, m * ratios[..., 0].exp(), m * ratios[..., 1].exp(), ratios[..., 2]], -1)
    r = np.asarray(ratios, np.float64)
    m = np.broadcast_to(np.asarray(mass, np.float64), r.shape[:-1])
    return np.stack([m, m * np.exp(r[..., 0]), m * np.exp(r[..., 1]), r[..., 2]], -1)
