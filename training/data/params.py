"""Per-sample random choices: physical parameters (size-independent form), drop pose and initial motion.

Physics is drawn in the size-independent form (reconphys_ros/core/physics/params.py), so an object's behaviour
relative to its own size and weight does not depend on how big it is:

- m_p, k_p, d_p are drawn log-uniformly and f uniformly inside the paper's PARAM_RANGES, exactly as the paper draws
  them for its ~1 m objects; their ratios (ln k_p/m_p, ln d_p/m_p, f) are taken as the size-independent values (the
  behaviour at 1 m; they span RATIO_RANGES). Log-uniform spreads the behaviour evenly from nearly rigid to very soft.
- The object's total mass is M = density x convex-hull volume of its anchors, the density log-uniform over
  DENSITY_RANGE (foam, plush toys, bread, rubber). The mass does not change the motion (only k/m, d/m, f do), but
  it makes the metric parameters realistic.
- The simulator's input (paper convention, metric, at the object's own size L = diameter of its anchors) is
  PhysicsParams.from_size_independent(values, L, M): k/m = (k_p/m_p) / L and d/m = (d_p/m_p) / sqrt(L).

The draw rule is recorded per sample (`sampling`). The paper ranges are never applied to the metric values.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from reconphys_ros.core.physics.params import (CONTACT_DAMPING_RANGE, PARAM_NAMES, PARAM_RANGES, PhysicsParams,
                                               object_size, object_volume, ratios_from_paper)

PARAM_SAMPLING = {"mass": "log-uniform", "stiffness": "log-uniform", "damping": "log-uniform", "friction": "uniform"}
DENSITY_RANGE = (30.0, 1200.0)  # kg/m^3: soft objects a robot handles (foam ... rubber)
SIZE_INDEPENDENT_NAMES = ("log_stiffness_per_mass", "log_damping_per_mass", "friction")
SAMPLING_RULE = (
    "size-independent: m_p, k_p, d_p log-uniform and f uniform in the paper's ranges (for a 1 m object); "
    "size-independent values = (ln k_p/m_p, ln d_p/m_p, f), the behaviour at 1 m; total mass = density x convex-hull "
    f"volume of the anchors, density log-uniform in [{DENSITY_RANGE[0]:g}, {DENSITY_RANGE[1]:g}] kg/m^3; simulator "
    "params = PhysicsParams.from_size_independent(values, object_size(anchors), total mass), i.e. k/m = (k_p/m_p) / L, "
    "d/m = (d_p/m_p) / sqrt(L), L = anchor diameter in m")


@dataclass(frozen=True)
class ContactDampingDraw:
    """How the size-independent contact damping after impact (1/s at 1 m, core/physics/params.py) is drawn: 0 (the
    paper's contact: keeps bouncing and rolling) with probability `off_share`, else log-uniform over `range`. Drawn
    from its own random stream (`sample_contact_damping`), so the other draws of a seed do not depend on it and
    `range = (0, 0)` reproduces data sets made before it existed."""

    range: tuple = (1.0, CONTACT_DAMPING_RANGE[1])
    off_share: float = 0.2

    def validate(self) -> "ContactDampingDraw":
        lo, hi = self.range
        if not (0.0 <= lo <= hi <= CONTACT_DAMPING_RANGE[1]) or (lo == 0.0 < hi):
            raise ValueError(f"contact damping range must be 0,0 (off) or satisfy 0 < min <= max <= "
                             f"{CONTACT_DAMPING_RANGE[1]:g} (1/s at 1 m), got {self.range}")
        if not 0.0 <= self.off_share <= 1.0:
            raise ValueError(f"contact damping off_share must lie in [0, 1], got {self.off_share}")
        return self

    @property
    def enabled(self) -> bool:
        return self.range[1] > 0


CONTACT_DAMPING_STREAM = 20  # the draw's own random stream: default_rng([seed, this])


def sample_contact_damping(seed: int, draw: ContactDampingDraw) -> float:
    """The contact damping (1/s at 1 m) of the sample with this seed."""
    if not draw.enabled:
        return 0.0
    rng = np.random.default_rng([int(seed), CONTACT_DAMPING_STREAM])
    lo, hi = draw.range
    off, u = rng.uniform(size=2)
    return 0.0 if off < draw.off_share else float(min(hi, max(lo, math.exp(math.log(lo) + u * math.log(hi / lo)))))


@dataclass(frozen=True)
class MotionRanges:
    """Ranges of the initial conditions, in units of the object size where motion must stay in view.
    The horizontal heading of the sideways velocity is uniform over 360 deg, so clips move across, towards and
    away from each camera (the per-view component towards the camera is recorded in meta.json `cameras`)."""

    drop_height: tuple = (0.3, 1.0)  # gap between object bottom and ground, in object sizes
    toss_up_speed: tuple = (0.0, 1.5)  # m/s upwards (a toss delays impact into later frames)
    toss_up_probability: float = 0.4
    sideways_speed: tuple = (0.0, 0.8)  # object sizes per second, heading uniform in [0, 360) deg
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
    """Everything random about one sample besides the object itself (JSON-able via `to_dict`).

    `params` is the simulator's input (paper convention, metric at the object's size). `physics` records the
    draw behind it (`paper_draw`: the m_p, k_p, d_p, f drawn in the paper's ranges, `density`); empty for
    hand-picked params. `camera` may fix the camera draw (keys `elevation_deg`, `fill`, `azimuth_deg`); empty:
    drawn per sample (sample.sample_cameras)."""

    params: PhysicsParams
    sampling: dict
    orientation: list  # quaternion wxyz applied to the object's rest pose
    drop_gap: float  # m between the lowest point and the ground at t = 0
    velocity: list  # (3,) m/s of the centre of mass
    angular_velocity: list  # (3,) rad/s
    background: dict = field(default_factory=dict)
    physics: dict = field(default_factory=dict)
    camera: dict = field(default_factory=dict)
    contact_damping: float = 0.0  # size-independent contact damping after impact, 1/s at 1 m

    def to_dict(self) -> dict:
        out = asdict(self)
        out["params"] = self.params.to_dict()
        return out


def sample_paper_params(rng: np.random.Generator) -> PhysicsParams:
    """m_p, k_p, d_p, f inside PARAM_RANGES with the rule in PARAM_SAMPLING (the paper's draw, for a 1 m object)."""
    values = {}
    for name in PARAM_NAMES:
        lo, hi = PARAM_RANGES[name]
        if PARAM_SAMPLING[name] == "log-uniform":
            values[name] = float(min(hi, max(lo, math.exp(rng.uniform(math.log(lo), math.log(hi))))))
        else:
            values[name] = float(rng.uniform(lo, hi))
    return PhysicsParams(**values)


def sample_params(rng: np.random.Generator, anchors) -> tuple[PhysicsParams, dict, dict]:
    """Simulator params for an object whose anchors at rest are `anchors` ((N_A, 3), m), drawn in the
    size-independent form (module docstring). Returns (params, sampling rule, physics record)."""
    paper = sample_paper_params(rng)
    values = ratios_from_paper(np.array(paper.to_tuple()))  # (3,) size-independent: the behaviour at 1 m
    lo, hi = DENSITY_RANGE
    density = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    size = object_size(anchors)
    volume = object_volume(anchors)
    total_mass = density * volume
    params = PhysicsParams.from_size_independent(values, size, total_mass).validate()
    sampling = dict(PARAM_SAMPLING, density="log-uniform", form="size-independent", rule=SAMPLING_RULE)
    physics = {"paper_draw": paper.to_dict(), "density": density, "density_range": list(DENSITY_RANGE)}
    return params, sampling, physics


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


def sample_choices(rng: np.random.Generator, size: float, ranges: MotionRanges = MotionRanges(),
                   anchors=None) -> SampleChoices:
    """All per-sample random choices for an object of longest dimension `size` (m) whose anchors at rest are
    `anchors` ((N_A, 3), m; they set the physics' size and mass). The sideways heading is uniform in [0, 2 pi)."""
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")
    if anchors is None:
        raise ValueError("sample_choices needs the object's anchors (their size and volume set the physics)")
    params, sampling, physics = sample_params(rng, anchors)
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
        physics=physics,
    )
