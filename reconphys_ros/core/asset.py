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
from reconphys_ros.core.geometry import rigid_velocity
from reconphys_ros.core.physics.lattice import LATTICES, LatticeConfig, LatticeScale, lattice_scale_for
from reconphys_ros.core.physics.params import (CONTACT_DAMPING_RANGE, MASS_PRIOR_LOG_SIGMA, RATIO_RANGES,
                                              REFERENCE_NUM_ANCHORS, PhysicsParams, contact_damping_at_1m,
                                              contact_damping_at_size, dissipation_from_contact_damping,
                                              in_ratio_ranges, object_size, paper_from_ratios)

_OBJECT_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Physical plausibility of an asset, beyond finiteness: outside these bounds the simulation or the render is
# meaningless (an all-white render from 1e34 m Gaussians, Gaussians that follow anchors metres away).
MAX_BINDING_POWER = 16.0  # IDW falloff p_b (the paper uses 2); above ~16 a Gaussian follows its nearest anchor only
GAUSSIAN_SCALE_RANGE_M = (1e-9, 10.0)
MAX_BINDING_REACH = 3.0  # Gaussians lie within this many object sizes of the anchors' bounding box

# Keys of PhysicsEstimate.std: the four simulator parameters (paper convention), the identifiable pair and the
# size-independent contact damping.
STD_KEYS = ("mass", "stiffness", "damping", "friction", "stiffness_per_mass", "damping_per_mass", "contact_damping")


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
    """Estimated physics with one standard deviation per quantity (0 = unknown or given exactly).

    params: the simulator's input (paper convention, metric at the object's size: physics/params.py); std in the
    same units, for the keys in STD_KEYS. size: the object's size L (m, its anchors' diameter, params.object_size),
    which turns k/m and d/m into the size-independent values that are range-checked. mass_given: True when the user
    supplied the total mass (then stiffness and damping are scaled to it). contact_damping: the size-independent
    contact dissipation after impact (1/s at 1 m, physics/params.py; 0 = the paper's contact alone)."""

    params: PhysicsParams
    std: dict = field(default_factory=lambda: {k: 0.0 for k in STD_KEYS})
    mass_given: bool = False
    size: float = float("nan")
    contact_damping: float = 0.0

    def validate(self) -> "PhysicsEstimate":
        self.params.validate()
        if not (isinstance(self.size, (int, float)) and math.isfinite(self.size) and self.size > 0):
            raise ValueError(f"PhysicsEstimate.size must be the object's size in m (> 0), got {self.size!r}")
        outside = in_ratio_ranges(self.size_independent(), slack=0.05)
        if outside:
            values = dict(zip(RATIO_RANGES, self.size_independent().round(3).tolist()))
            raise ValueError(f"PhysicsEstimate: size-independent {outside} outside their ranges "
                             f"{ {k: RATIO_RANGES[k] for k in outside} } (values {values} for an object of "
                             f"{self.size:.3g} m; k/m = {self.params.stiffness_per_mass:.4g} 1/s^2, d/m = "
                             f"{self.params.damping_per_mass:.4g} 1/s)")
        lo, hi = CONTACT_DAMPING_RANGE
        c = self.contact_damping
        if not (isinstance(c, (int, float)) and math.isfinite(c) and lo <= c <= hi * 1.05):
            raise ValueError(f"PhysicsEstimate.contact_damping must be in [{lo:g}, {hi:g}] 1/s at 1 m, got {c!r}")
        unknown = set(self.std) - set(STD_KEYS)
        if unknown:
            raise ValueError(f"PhysicsEstimate.std has unknown keys {sorted(unknown)}; allowed: {STD_KEYS}")
        for key, value in self.std.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0.0):
                raise ValueError(f"PhysicsEstimate.std[{key!r}] must be a finite number >= 0, got {value!r}")
        return self

    def std_of(self, key: str) -> float:
        return float(self.std.get(key, 0.0))

    @property
    def total_mass(self) -> float:
        """kg."""
        return self.params.total_mass

    def size_independent(self) -> np.ndarray:
        """(3,) ln k/m and ln d/m at 1 m, f (physics/params.py)."""
        return self.params.size_independent(self.size)

    def dissipation(self) -> np.ndarray:
        """(3,) size-independent tangential, deformation and rolling damping (1/s at 1 m) of the simulator's contact
        (ModelBuilder.add_object(dissipation=...))."""
        return dissipation_from_contact_damping(self.contact_damping)

    @classmethod
    def from_ratios(cls, ratios, total_mass: float, sigmas, mass_given: bool, size: float,
                    contact_damping: float = 0.0, contact_damping_std: float = 0.0) -> "PhysicsEstimate":
        """An estimate from (3,) ln k/m, ln d/m, f at the object's size L (m), its total mass (kg) and the standard
        deviations (3,) of ln k/m, ln d/m and f, plus the size-independent contact damping (1/s at 1 m) and its std.
        The mass's log-spread is the prior's (MASS_PRIOR_LOG_SIGMA) unless the mass was given; k and d combine it
        with their ratio's (first order). Not validated."""
        m = total_mass / REFERENCE_NUM_ANCHORS
        params = PhysicsParams(*(float(v) for v in paper_from_ratios(np.asarray(ratios, np.float64), m)))
        s_k, s_d, s_f = (float(v) for v in sigmas)
        s_m = 0.0 if mass_given else MASS_PRIOR_LOG_SIGMA
        std = {
            "mass": m * s_m,
            "stiffness": params.stiffness * math.hypot(s_k, s_m),
            "damping": params.damping * math.hypot(s_d, s_m),
            "friction": s_f,
            "stiffness_per_mass": math.exp(ratios[0]) * s_k,
            "damping_per_mass": math.exp(ratios[1]) * s_d,
            "contact_damping": float(contact_damping_std),
        }
        return cls(params, std, bool(mass_given), float(size), float(contact_damping))

    @classmethod
    def from_si(cls, total_mass: float, stiffness_per_mass: float, damping_per_mass: float, friction: float,
                size: float, std: dict | None = None, mass_given: bool = False,
                contact_damping: float = 0.0) -> "PhysicsEstimate":
        """The inverse of `derived` for what defines the physics: total mass (kg), k/m (1/s^2), d/m (1/s), friction,
        size (m), the contact damping at the object's size (1/s) and the standard deviations of those (keys as in
        `derived`, missing = 0). Not validated."""
        std = dict(std or {})
        values = {"total_mass": total_mass, "stiffness_per_mass": stiffness_per_mass,
                  "damping_per_mass": damping_per_mass, "friction": friction, "size": size,
                  "contact_damping": contact_damping}
        for name, value in values.items():
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"physics {name} must be a number, got {value!r}") from None
        m = values["total_mass"] / REFERENCE_NUM_ANCHORS
        params = PhysicsParams(m, m * values["stiffness_per_mass"], m * values["damping_per_mass"], values["friction"])
        rel = {}
        for name in ("total_mass", "stiffness_per_mass", "damping_per_mass"):
            sigma, value = float(std.get(f"{name}_std", 0.0)), values[name]
            rel[name] = sigma / value if value > 0 and math.isfinite(sigma) and sigma >= 0 else float("nan")
        internal = {
            "mass": m * rel["total_mass"],
            "stiffness": params.stiffness * math.hypot(rel["stiffness_per_mass"], rel["total_mass"]),
            "damping": params.damping * math.hypot(rel["damping_per_mass"], rel["total_mass"]),
            "friction": float(std.get("friction_std", 0.0)),
            "stiffness_per_mass": float(std.get("stiffness_per_mass_std", 0.0)),
            "damping_per_mass": float(std.get("damping_per_mass_std", 0.0)),
        }
        # the contact damping comes at the object's size; NaN for a size validate() then refuses
        at_1m = ((lambda rate: float(contact_damping_at_1m(rate, values["size"]))) if values["size"] > 0
                 else (lambda rate: float("nan")))
        internal["contact_damping"] = at_1m(float(std.get("contact_damping_std", 0.0)))
        return cls(params, internal, bool(mass_given), values["size"], at_1m(values["contact_damping"]))

    def derived(self) -> dict:
        """The user-facing values in SI, with standard deviations (the size-independent ones as k/m, d/m at 1 m;
        their relative std equals that of k/m, d/m since the size is exact)."""
        p, si = self.params, self.size_independent()
        kpm_at_1m, dpm_at_1m = math.exp(si[0]), math.exp(si[1])
        rel_k = self.std_of("stiffness_per_mass") / p.stiffness_per_mass
        rel_d = self.std_of("damping_per_mass") / p.damping_per_mass
        return {
            "total_mass": p.total_mass, "total_mass_std": self.std_of("mass") * REFERENCE_NUM_ANCHORS,
            "friction": p.friction, "friction_std": self.std_of("friction"),
            "stiffness_per_mass": p.stiffness_per_mass, "stiffness_per_mass_std": self.std_of("stiffness_per_mass"),
            "damping_per_mass": p.damping_per_mass, "damping_per_mass_std": self.std_of("damping_per_mass"),
            "size": self.size,
            "stiffness_per_mass_at_1m": kpm_at_1m, "stiffness_per_mass_at_1m_std": kpm_at_1m * rel_k,
            "damping_per_mass_at_1m": dpm_at_1m, "damping_per_mass_at_1m_std": dpm_at_1m * rel_d,
            "contact_damping": float(contact_damping_at_size(self.contact_damping, self.size)),
            "contact_damping_std": float(contact_damping_at_size(self.std_of("contact_damping"), self.size)),
            "contact_damping_at_1m": float(self.contact_damping),
            "contact_damping_at_1m_std": self.std_of("contact_damping"),
        }


MAX_SPEED = 100.0  # m/s: a thrown or dropped object; beyond this the fit or the message is wrong
MAX_SPIN = 200.0  # rad/s


@dataclass(frozen=True)
class InitialMotion:
    """The object's rigid motion at the first observed frame (world frame, SI), as the reconstruction fitted it:
    the asset's anchors start moving with velocity + angular_velocity x (anchor - anchors' centroid)."""

    velocity: tuple = (0.0, 0.0, 0.0)  # (3,) m/s of the anchors' centroid
    angular_velocity: tuple = (0.0, 0.0, 0.0)  # (3,) rad/s about it
    velocity_std: tuple = (0.0, 0.0, 0.0)  # (3,) m/s, one standard deviation
    angular_velocity_std: tuple = (0.0, 0.0, 0.0)  # (3,) rad/s
    depth: float = float("nan")  # m, camera-frame depth of the object's centroid at frame 0 (NaN: not measured)
    depth_std: float = float("nan")  # m
    depth_trusted: bool = False  # the depth came from the clip's own cues (not a fallback prior)
    impact_time: float = float("nan")  # s after the first frame when it first touches the ground (NaN: later)

    def validate(self) -> "InitialMotion":
        for name, limit in (("velocity", MAX_SPEED), ("angular_velocity", MAX_SPIN), ("velocity_std", math.inf),
                            ("angular_velocity_std", math.inf)):
            value = np.asarray(getattr(self, name), np.float64)
            if value.shape != (3,) or not np.isfinite(value).all():
                raise ValueError(f"InitialMotion.{name} must be 3 finite numbers, got {getattr(self, name)!r}")
            if name.endswith("_std") and (value < 0).any():
                raise ValueError(f"InitialMotion.{name} must be >= 0, got {value.tolist()}")
            if np.abs(value).max() > limit or np.linalg.norm(value) > limit:  # the first test cannot overflow
                unit = "m/s" if name == "velocity" else "rad/s"
                raise ValueError(f"InitialMotion.{name} {np.abs(value).max():.3g} {unit} is beyond {limit:g} {unit}")
        for name in ("depth", "depth_std", "impact_time"):
            value = getattr(self, name)
            if not (math.isnan(value) or (math.isfinite(value) and value >= 0)):
                raise ValueError(f"InitialMotion.{name} must be >= 0 or NaN (unknown), got {value}")
        return self

    def velocities_at(self, points: np.ndarray, centre=None) -> np.ndarray:
        """(M, 3) float32 velocities of points (M, 3) under this rigid motion; `centre` (3,) is the point that moves
        with `velocity` (the asset's anchors' centroid; default: the points' own centroid)."""
        points = np.asarray(points, np.float64)
        centre = points.mean(0) if centre is None else centre
        return rigid_velocity(points, self.velocity, self.angular_velocity, centre).astype(np.float32)

    def to_dict(self) -> dict:
        nan_none = lambda x: None if math.isnan(x) else float(x)  # noqa: E731 -- JSON has no NaN
        return {"velocity": [float(x) for x in self.velocity],
                "angular_velocity": [float(x) for x in self.angular_velocity],
                "velocity_std": [float(x) for x in self.velocity_std],
                "angular_velocity_std": [float(x) for x in self.angular_velocity_std],
                "depth": nan_none(self.depth), "depth_std": nan_none(self.depth_std),
                "depth_trusted": bool(self.depth_trusted), "impact_time": nan_none(self.impact_time)}

    @classmethod
    def from_dict(cls, data: dict) -> "InitialMotion":
        if not isinstance(data, dict):
            raise ValueError(f"initial_motion must be a JSON object, got {type(data).__name__}")
        nan = lambda x: float("nan") if x is None else float(x)  # noqa: E731
        try:
            return cls(tuple(map(float, data["velocity"])), tuple(map(float, data["angular_velocity"])),
                       tuple(map(float, data["velocity_std"])), tuple(map(float, data["angular_velocity_std"])),
                       nan(data["depth"]), nan(data["depth_std"]), bool(data["depth_trusted"]),
                       nan(data["impact_time"])).validate()
        except (KeyError, TypeError) as exc:
            raise ValueError(f"initial_motion is malformed: {exc!r}") from None


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
    # the observed motion at the first frame (None: unknown; a simulation then starts from rest)
    initial_motion: InitialMotion | None = None

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    @property
    def num_springs(self) -> int:
        return int(self.springs.shape[0])

    def lattice(self) -> LatticeConfig:
        """The named lattice with this asset's anchor and neighbour counts (for its calibrated corrections), else a
        custom one."""
        for lattice in LATTICES.values():
            if (lattice.num_anchors, lattice.k_neighbors) == (self.num_anchors, self.lattice_neighbors):
                return lattice
        return LatticeConfig(self.num_anchors, self.lattice_neighbors, name="custom")

    def spring_scale(self) -> LatticeScale:
        """Multipliers from the paper convention to this asset's own lattice (per-anchor mass, per-spring k and d),
        as the simulator applies them (physics/lattice.py)."""
        return lattice_scale_for(self.lattice(), self.anchors, self.rest_lengths)

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
        if self.initial_motion is not None:
            self.initial_motion.validate()
        size = object_size(anchors)
        if abs(self.physics.size - size) > 0.02 * size:
            raise ValueError(f"SimAsset.physics.size {self.physics.size:.4g} m is not the anchors' size {size:.4g} m "
                             "(their diameter): the physics was estimated for another object")
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
