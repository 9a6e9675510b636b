"""Per-sample random choices: physical parameters (paper convention), drop pose and initial motion.

m, k and d are drawn log-uniformly: their effect on the motion goes with ratios (k/m, d/m), so a
log-uniform draw spreads the behaviour evenly from nearly rigid to very soft; f is uniform. The draw
rule is recorded per sample (`sampling`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from reconphys_ros.core.physics.params import PARAM_NAMES, PARAM_RANGES, PhysicsParams

PARAM_SAMPLING = {"mass": "log-uniform", "stiffness": "log-uniform", "damping": "log-uniform", "friction": "uniform"}


@dataclass(frozen=True)
class MotionRanges:
    """Ranges of the initial conditions, in units of the object size where motion must stay in view."""

    drop_height: tuple = (0.3, 1.0)  # gap between object bottom and ground, in object sizes
    toss_up_speed: tuple = (0.0, 1.5)  # m/s upwards (a toss delays impact into later frames)
    toss_up_probability: float = 0.4
    sideways_speed: tuple = (0.0, 0.8)  # object sizes per second
    spin: tuple = (0.0, 3.0)  # rad/s about a random axis

    RANGE_FIELDS = ("drop_height", "toss_up_speed", "sideways_speed", "spin")

    def validate(self) -> "MotionRanges":
        for name in self.RANGE_FIELDS:
            lo, hi = getattr(self, name)
            if not (0.0 <= lo <= hi and hi < float("inf")):
                raise ValueError(f"motion range {name} must satisfy 0 <= min <= max < inf, got {(lo, hi)}")
        if self.drop_height[1] <= 0:
            raise ValueError("motion range drop_height must allow a gap above the ground (max > 0)")
        if not 0.0 <= self.toss_up_probability <= 1.0:
            raise ValueError(f"toss_up_probability must lie in [0, 1], got {self.toss_up_probability}")
        return self


@dataclass
class SampleChoices:
    """Everything random about one sample besides the object itself (JSON-able via `to_dict`)."""

    params: PhysicsParams
    sampling: dict
    orientation: list  # quaternion wxyz applied to the object's rest pose
    drop_gap: float  # m between the lowest point and the ground at t = 0
    velocity: list  # (3,) m/s of the centre of mass
    angular_velocity: list  # (3,) rad/s
    background: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["params"] = self.params.to_dict()
        return out


def sample_params(rng: np.random.Generator) -> tuple[PhysicsParams, dict]:
    """m, k, d, f inside PARAM_RANGES with the rule in PARAM_SAMPLING."""
    values = {}
    for name in PARAM_NAMES:
        lo, hi = PARAM_RANGES[name]
        if PARAM_SAMPLING[name] == "log-uniform":
            values[name] = float(min(hi, max(lo, math.exp(rng.uniform(math.log(lo), math.log(hi))))))
        else:
            values[name] = float(rng.uniform(lo, hi))
    return PhysicsParams(**values).validate(), dict(PARAM_SAMPLING)


def random_quaternion(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation as a unit quaternion wxyz (Shoemake)."""
    u1, u2, u3 = rng.uniform(size=3)
    q = np.array([math.sqrt(u1) * math.cos(2 * math.pi * u3), math.sqrt(1 - u1) * math.sin(2 * math.pi * u2),
                  math.sqrt(1 - u1) * math.cos(2 * math.pi * u2), math.sqrt(u1) * math.sin(2 * math.pi * u3)])
    return q if q[0] >= 0 else -q


def quaternion_to_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def sample_choices(rng: np.random.Generator, size: float, ranges: MotionRanges = MotionRanges()) -> SampleChoices:
    """All per-sample random choices for an object of longest dimension `size` (m)."""
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")
    params, sampling = sample_params(rng)
    heading = rng.uniform(0, 2 * math.pi)
    side = rng.uniform(*ranges.sideways_speed) * size
    up = rng.uniform(*ranges.toss_up_speed) if rng.uniform() < ranges.toss_up_probability else 0.0
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return SampleChoices(
        params=params,
        sampling=sampling,
        orientation=random_quaternion(rng).tolist(),
        drop_gap=float(rng.uniform(*ranges.drop_height) * size),
        velocity=[float(side * math.cos(heading)), float(side * math.sin(heading)), float(up)],
        angular_velocity=(axis * rng.uniform(*ranges.spin)).tolist(),
    )
