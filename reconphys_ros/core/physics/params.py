"""Physical parameters of one object: the simulator's form (the paper's convention), the size-independent form
(what is estimated, predicted and range-checked) and the SI values a user reads.

Three forms of the same physics:
- **SI** (what a robot user touches): the object's total mass M (kg), friction f, and k/m (1/s^2), d/m (1/s),
  the stiffness and damping per unit mass of the paper's reference lattice (2048 anchors, K = 256), which are
  what a video constrains. Per-spring k (N/m) and d (N s/m) of an asset's own lattice follow from these
  (lattice.py).
- **Size-independent** (what video determines whatever the object's size): a geometrically similar object scaled
  by s moves the same way under gravity (positions x s, time x sqrt(s)) only if k/m scales by 1/s and d/m by
  1/sqrt(s). So ln(k/m * L / L_ref), ln(d/m * sqrt(L / L_ref)) and f describe the material independently of the
  object's size L (its diameter, `object_size`): they are the k/m and d/m the same behaviour would have at
  L_ref = 1 m, where the paper's ranges apply (its simulator works on objects normalised to about unit size).
  The predictor, the estimator, the calibration and every range check work in this form (`RATIO_RANGES`).
- **Paper convention** (`PhysicsParams`, the simulator's input, a derived value elsewhere): m is the mass of EACH
  anchor of the reference lattice (M / 2048), k and d are per reference spring. Coarser lattices map these exactly
  (lattice.py).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

GRAVITY_MAGNITUDE = 9.81  # m/s^2
GRAVITY = (0.0, 0.0, -GRAVITY_MAGNITUDE)  # world z up

# Paper ranges (sampling ranges of the ReconPhys data set), for its ~1 m objects: they define the size-independent
# ranges below and are never applied to metric values.
PARAM_RANGES = {
    "mass": (0.2, 6.0),
    "stiffness": (10.0, 1200.0),
    "damping": (0.1, 5.0),
    "friction": (0.0, 1.0),
}
PARAM_NAMES = ("mass", "stiffness", "damping", "friction")
# The paper's m is the mass of one anchor of its reference lattice: the object's total mass is m times this.
REFERENCE_NUM_ANCHORS = 2048
REFERENCE_SIZE = 1.0  # m: the object size at which the size-independent values equal k/m and d/m

# Objects the package reconstructs (m, diameter): outside, the reconstruction is refused or flagged.
OBJECT_SIZE_RANGE = (0.02, 3.0)
KNOWN_MASS_RANGE = (0.0, 1000.0)  # kg, exclusive lower bound: a user's known total mass


def range_centre(name: str) -> float:
    """The centre of a parameter's paper range as the data generator draws it: the geometric mean for m, k, d
    (log-uniform), the arithmetic mean for f (uniform)."""
    lo, hi = PARAM_RANGES[name]
    return (lo + hi) / 2.0 if name == "friction" else math.sqrt(lo * hi)


def log_uniform_sigma(lo: float, hi: float) -> float:
    """Standard deviation of ln x for x log-uniform on [lo, hi]."""
    return math.log(hi / lo) / math.sqrt(12.0)


# Ranges of the size-independent quantities (ln k/m and ln d/m at 1 m, f) implied by the paper's ranges of m, k, d, f.
RATIO_RANGES = {
    "log_stiffness_per_mass": (math.log(PARAM_RANGES["stiffness"][0] / PARAM_RANGES["mass"][1]),
                               math.log(PARAM_RANGES["stiffness"][1] / PARAM_RANGES["mass"][0])),
    "log_damping_per_mass": (math.log(PARAM_RANGES["damping"][0] / PARAM_RANGES["mass"][1]),
                             math.log(PARAM_RANGES["damping"][1] / PARAM_RANGES["mass"][0])),
    "friction": PARAM_RANGES["friction"],
}

# Priors for what a video does not determine (only k/m, d/m and f are identifiable, DESIGN.md): the mass, and the
# starting d/m and f of the estimator. The mass prior is a density times the object's volume: soft objects a robot
# handles (foam, plush toys, bread, rubber) span ~30-1200 kg/m^3; the geometric centre with that spread.
DENSITY_PRIOR = 200.0  # kg/m^3
MASS_PRIOR_LOG_SIGMA = log_uniform_sigma(30.0, 1200.0)  # spread of ln M (density unknown over that range)
FRICTION_PRIOR = range_centre("friction")
DAMPING_PER_MASS_PRIOR = range_centre("damping") / range_centre("mass")  # 1/s at 1 m (size-independent)


# Contact dissipation after impact (issue 20): one size-independent rate c (1/s at 1 m) sets an object's tangential,
# deformation and rolling damping (model.ContactSettings) in fixed shares, the one dissipation family estimated,
# predicted and messaged (a clip shows it as bounce height, roll-out and settling after the impact; three separate
# rates are not identifiable from one drop). 0 is the paper's contact alone (inelastic normal impulse + Coulomb: a
# soft lattice still rebounds and rolls on); the top of the range barely bounces and stops within a fraction of its
# size. Shares: deformation and rolling damping c, viscous ground friction 0.3 c per unit friction.
CONTACT_DAMPING_SHARES = (0.3, 1.0, 1.0)  # tangential (per unit friction), deformation, rolling per unit c
CONTACT_DAMPING_RANGE = (0.0, 300.0)  # 1/s at 1 m
CONTACT_DAMPING_PRIOR = 10.0  # 1/s at 1 m: the estimator's start without a learned guess


def dissipation_from_contact_damping(contact_damping: float) -> np.ndarray:
    """Size-independent contact damping c (1/s at 1 m) -> (3,) tangential, deformation, rolling damping (1/s at 1 m,
    ModelBuilder.add_object(dissipation=...))."""
    c = float(contact_damping)
    if not (math.isfinite(c) and c >= 0):
        raise ValueError(f"contact damping must be a finite rate >= 0 (1/s at 1 m), got {contact_damping!r}")
    return c * np.asarray(CONTACT_DAMPING_SHARES, np.float64)


def contact_damping_at_size(contact_damping_at_1m, size):
    """The rate (1/s) an object of size L (m) gets from its size-independent contact damping: c sqrt(1 m / L), as
    every rate under the similarity law (d/m too). Inverse: contact_damping_at_1m(rate, size)."""
    return contact_damping_at_1m * np.sqrt(REFERENCE_SIZE / np.asarray(size, np.float64))


def contact_damping_at_1m(rate_at_size, size):
    """Inverse of contact_damping_at_size."""
    return rate_at_size * np.sqrt(np.asarray(size, np.float64) / REFERENCE_SIZE)


def object_size(points) -> float:
    """The object's size L (m): its diameter, the largest distance between two of its points (rotation invariant,
    the length the size-independent parameters refer to). (N, 3) -> float; exact for N <= 4096, else on an evenly
    strided subset of 4096 points."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    if len(p) < 2 or not np.isfinite(p).all():
        raise ValueError(f"object_size needs >= 2 finite points, got {len(p)}")
    if len(p) > 4096:
        p = p[np.linspace(0, len(p) - 1, 4096).astype(int)]
    best = 0.0
    for start in range(0, len(p), 1024):
        d2 = ((p[start:start + 1024, None, :] - p[None, :, :]) ** 2).sum(-1)
        best = max(best, float(d2.max()))
    return math.sqrt(best)


def object_volume(points) -> float:
    """Volume (m^3) of the convex hull of (N, 3) points that fill the object (anchors are sampled through its
    volume); a flat or degenerate set gets the volume of its bounding box with a floor of 1% of its size."""
    from scipy.spatial import ConvexHull, QhullError

    p = np.asarray(points, np.float64).reshape(-1, 3)
    try:
        return float(ConvexHull(p).volume)
    except (QhullError, ValueError):
        extent = np.ptp(p, axis=0) if len(p) else np.zeros(3)
        return float(np.prod(np.maximum(extent, 0.01 * max(float(extent.max(initial=0.0)), 1e-6))))


def check_known_mass(known_mass, name: str = "known_mass") -> float:
    """A total mass (kg; a user's known_mass, or the mass of a PhysicsParams message) as a float, or a ValueError
    that names `name` and the unit."""
    lo, hi = KNOWN_MASS_RANGE
    if isinstance(known_mass, bool) or not isinstance(known_mass, (int, float)) or not math.isfinite(known_mass) \
            or not lo < known_mass <= hi:
        raise ValueError(f"{name} is the object's total mass in kg and must be a number in ({lo:g}, {hi:g}] kg, "
                         f"got {known_mass!r}")
    return float(known_mass)


def mass_prior(known_mass: float | None, volume: float) -> tuple[float, bool]:
    """(total mass in kg, given?) -- the user's mass when set, else DENSITY_PRIOR times the object's volume (m^3)."""
    if known_mass is not None:
        return check_known_mass(known_mass), True
    if not (math.isfinite(volume) and volume > 0):
        raise ValueError(f"mass_prior: the object's volume must be > 0 m^3, got {volume!r}")
    return DENSITY_PRIOR * float(volume), False


def size_independent_from_ratios(ratios, size):
    """(..., 3) ln k/m, ln d/m, f of an object of size L (m, float or (...,)) -> (..., 3) the size-independent
    values (ln k/m and ln d/m of the same behaviour at REFERENCE_SIZE, f). Torch (differentiable) or numpy."""
    return _rescale(ratios, size, +1.0)


def ratios_from_size_independent(values, size):
    """Inverse of size_independent_from_ratios: (..., 3) size-independent values -> ln k/m, ln d/m, f at size L."""
    return _rescale(values, size, -1.0)


def _rescale(values, size, sign: float):
    if isinstance(values, torch.Tensor):
        log_s = torch.as_tensor(size, dtype=values.dtype, device=values.device).log() - math.log(REFERENCE_SIZE)
        log_s = log_s.expand(values.shape[:-1])
        return torch.stack([values[..., 0] + sign * log_s, values[..., 1] + sign * 0.5 * log_s, values[..., 2]], -1)
    v = np.asarray(values, np.float64)
    log_s = np.broadcast_to(np.log(np.asarray(size, np.float64)) - math.log(REFERENCE_SIZE), v.shape[:-1])
    return np.stack([v[..., 0] + sign * log_s, v[..., 1] + sign * 0.5 * log_s, v[..., 2]], -1)


# Bounds on the simulator's input beyond finiteness, in the paper convention at any object size (a 2 cm object at the
# stiff end of the size-independent range has k/m ~ 3e5 1/s^2): outside them no object the package handles lies.
# The mass bound admits the paper's own objects (up to 6 kg per anchor, ~12 t); a user's known mass is checked
# against KNOWN_MASS_RANGE.
SIMULATABLE_BOUNDS = {
    "mass": (0.0, PARAM_RANGES["mass"][1]),  # kg per reference anchor, exclusive lower bound
    "stiffness_per_mass": (0.0, 1e7),  # 1/s^2
    "damping_per_mass": (0.0, 1e5),  # 1/s
    "friction": (0.0, 1.0),
}


@dataclass
class PhysicsParams:
    """The simulator's input, in the paper's convention: m = mass of each anchor of the reference lattice (kg; the
    object's total mass is m * 2048), k = per-spring stiffness (N/m), d = per-spring damping (N s/m) of the reference
    lattice (K = 256 springs per anchor), f = Coulomb friction coefficient with the ground. Metric values at the
    object's own size: the size-independent form is in PhysicsEstimate (asset.py)."""

    mass: float
    stiffness: float
    damping: float
    friction: float

    def validate(self, check_range: bool = True) -> "PhysicsParams":
        """Finite and positive (friction >= 0); with check_range also inside SIMULATABLE_BOUNDS."""
        for name in PARAM_NAMES:
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"PhysicsParams.{name} must be a number, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"PhysicsParams.{name} must be finite, got {value}")
            if name != "friction" and value <= 0.0:
                raise ValueError(f"PhysicsParams.{name} must be > 0, got {value}")
            if name == "friction" and value < 0.0:
                raise ValueError(f"PhysicsParams.friction must be >= 0, got {value}")
        if check_range:
            units = {"mass": "kg per reference anchor", "stiffness_per_mass": "1/s^2", "damping_per_mass": "1/s",
                     "friction": ""}
            for name, (lo, hi) in SIMULATABLE_BOUNDS.items():
                value = float(getattr(self, name))
                if not value <= hi:
                    raise ValueError(f"PhysicsParams.{name} = {value:.4g} {units[name]} is above the simulatable "
                                     f"bound {hi:g} (objects >= 2 cm)")
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

    def ratios(self) -> np.ndarray:
        """(3,) ln k/m, ln d/m, f."""
        return ratios_from_paper(np.array(self.to_tuple()))

    def size_independent(self, size: float) -> np.ndarray:
        """(3,) ln k/m and ln d/m at REFERENCE_SIZE, f, for an object of size L = `size` (m)."""
        return size_independent_from_ratios(self.ratios(), size)

    @classmethod
    def from_size_independent(cls, values, size: float, total_mass: float) -> "PhysicsParams":
        """(3,) size-independent values of an object of size L (m) and total mass M (kg) -> simulator params."""
        ratios = ratios_from_size_independent(np.asarray(values, np.float64), size)
        return cls(*(float(x) for x in paper_from_ratios(ratios, total_mass / REFERENCE_NUM_ANCHORS)))

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


def in_ratio_ranges(values, slack: float = 1e-3) -> list[str]:
    """Names of the size-independent values (3,) outside RATIO_RANGES (by more than `slack`); [] when all inside."""
    out = []
    for value, (name, (lo, hi)) in zip(np.asarray(values, np.float64), RATIO_RANGES.items()):
        if not (lo - slack <= value <= hi + slack):
            out.append(name)
    return out


# The identifiable form (what video determines) and back: the one mapping between the two, for torch tensors
# (differentiable) and numpy arrays alike.
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
