"""Model (static arrays of a batch of spring-mass objects), its builder, and the dynamic State."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .kernels import CONTACT_HARD, CONTACT_SMOOTH
from .lattice import REFERENCE_LATTICE, LatticeConfig, lattice_scale_for
from .params import GRAVITY, PARAM_NAMES, REFERENCE_SIZE, PhysicsParams, object_size
from .springs import knn_springs


DISSIPATION_NAMES = ("tangential_damping", "deformation_damping", "rolling_damping")


def check_dissipation(values, shape: tuple) -> np.ndarray:
    """Size-independent dissipation rates (tangential, deformation, rolling; 1/s at 1 m) as a float64 array of
    `shape`, or a ValueError: each must be finite and >= 0."""
    d = np.asarray(values, np.float64)
    if d.shape != shape:
        raise ValueError(f"dissipation must have shape {shape} ({', '.join(DISSIPATION_NAMES)}), got {d.shape}")
    if not (np.isfinite(d).all() and (d >= 0).all()):
        raise ValueError(f"dissipation rates ({', '.join(DISSIPATION_NAMES)}) must be finite and >= 0 (1/s at 1 m), "
                         f"got {d.tolist()}")
    return d


@dataclass(frozen=True)
class ContactSettings:
    """Ground z = 0. 'hard': projection + Coulomb impulse (the paper's boundary); 'smooth': softplus
    penalty with stiffness/damping per unit mass and a regularised Coulomb law (for gradient checks).

    Dissipation after impact (issue 20), all off (0) by default: the rates of every object added without its own
    (ModelBuilder.add_object(dissipation=...); an asset's physics carries them). Each is a continuous-time rate applied as an exact
    exponential decay per substep (factor exp(-c dt)), so the result converges as the substep count grows and no
    rate is unstable. The rates are size-independent: the values of an object of size L_ref = 1 m (params.py); an
    object of size L gets c * sqrt(L_ref / L) (Model.dissipation_scale), as every rate under the similarity law.
    - tangential_damping (1/s at 1 m, per unit friction): viscous ground friction, the tangential velocity of each
      anchor in contact decays at this rate times the object's friction f, on top of Coulomb (so a frictionless
      object still slides; the paper's simulator multiplies it by f per substep instead, which depends on dt).
    - deformation_damping (1/s at 1 m): each object's anchor velocities relax towards the object's best-fit rigid
      motion (centroid velocity + angular velocity) at this rate. Damps every deformation mode (the rebound of the
      compression that drives bouncing, the flattening that rolling repeats) and conserves linear and angular
      momentum, so free flight and spin are untouched.
    - rolling_damping (1/s at 1 m): while any anchor of an object touches the ground, the object's angular
      velocity (rolling and spinning) decays at this rate; linear momentum is kept (Coulomb then stops the slide)."""

    mode: str = "hard"
    restitution: float = 0.0
    stiffness_per_mass: float = 1.0e5  # 1/s^2: resting penetration g / this = 0.1 mm
    damping_per_mass: float = 300.0  # 1/s, about half critical
    width: float = 1.0e-3  # m, softplus width
    friction_velocity: float = 1.0e-2  # m/s, regularisation of the Coulomb direction
    tangential_damping: float = 0.0  # 1/s at 1 m (size-independent)
    deformation_damping: float = 0.0  # 1/s at 1 m (size-independent)
    rolling_damping: float = 0.0  # 1/s at 1 m (size-independent)

    def __post_init__(self):
        if self.mode not in ("hard", "smooth"):
            raise ValueError(f"ContactSettings.mode must be 'hard' or 'smooth', got {self.mode!r}")
        if not 0.0 <= self.restitution <= 1.0:
            raise ValueError(f"ContactSettings.restitution must be in [0, 1], got {self.restitution}")
        for name in ("stiffness_per_mass", "damping_per_mass", "width", "friction_velocity"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ContactSettings.{name} must be > 0")
        for name in DISSIPATION_NAMES:
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"ContactSettings.{name} must be a finite rate >= 0 (1/s at 1 m), got {value}")

    @property
    def damps_rigid_motion(self) -> bool:
        """Whether the per-object rigid-motion stage (deformation or rolling damping) runs."""
        return self.deformation_damping > 0 or self.rolling_damping > 0

    @property
    def mode_id(self) -> int:
        return CONTACT_HARD if self.mode == "hard" else CONTACT_SMOOTH


@dataclass
class State:
    x: torch.Tensor  # (N, 3) positions
    v: torch.Tensor  # (N, 3) velocities

    def clone(self) -> "State":
        return State(self.x.clone(), self.v.clone())


@dataclass
class Model:
    """All objects of a batch in flat arrays; per-anchor/per-spring object index picks per-object values."""

    rest_positions: torch.Tensor  # (N, 3)
    anchor_object: torch.Tensor  # (N,) int32
    object_start: np.ndarray  # (B+1,) anchor offsets per object
    springs: torch.Tensor  # (S, 2) int32
    rest_lengths: torch.Tensor  # (S,)
    spring_object: torch.Tensor  # (S,) int32
    paper_params: torch.Tensor  # (B, 4) m, k, d, f in the paper convention
    scale: torch.Tensor  # (B, 3) paper -> simulation multipliers for m, k, d
    unit_eigen: np.ndarray  # (B,) largest eigenvalue of the unit spring stiffness matrix (for dt checks)
    dissipation_scale: torch.Tensor  # (B,) sqrt(L_ref / L): size-independent rates (ContactSettings) -> this object's
    dissipation: torch.Tensor  # (B, 3) size-independent tangential, deformation, rolling damping (1/s at 1 m)
    lattices: list
    object_ids: list
    spring_exponent: float = 1.0
    contact: ContactSettings = field(default_factory=ContactSettings)
    gravity: tuple = GRAVITY
    device: str = "cpu"
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # device arrays built on first use

    @property
    def num_objects(self) -> int:
        return len(self.object_start) - 1

    @property
    def num_anchors(self) -> int:
        return self.rest_positions.shape[0]

    @property
    def num_springs(self) -> int:
        return self.springs.shape[0]

    def sim_params(self, paper_params: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Paper (B,4) -> per-object simulation (mass, stiffness, damping, friction), each (B,); differentiable."""
        p = self.paper_params if paper_params is None else paper_params
        if p.shape != (self.num_objects, 4):
            raise ValueError(f"paper params must have shape ({self.num_objects}, 4), got {tuple(p.shape)}")
        return p[:, 0] * self.scale[:, 0], p[:, 1] * self.scale[:, 1], p[:, 2] * self.scale[:, 2], p[:, 3]

    @property
    def dissipation_rates(self) -> torch.Tensor:
        """(B, 3) each object's tangential, deformation and rolling damping in 1/s at its own size (what the kernels
        apply): the size-independent rates times sqrt(L_ref / L)."""
        return self.dissipation * self.dissipation_scale[:, None]

    @property
    def damps_rigid_motion(self) -> bool:
        """Whether the per-object rigid-motion stage (deformation or rolling damping of any object) runs."""
        if "damps_rigid" not in self.cache:
            self.cache["damps_rigid"] = bool((self.dissipation[:, 1:] > 0).any())
        return self.cache["damps_rigid"]

    def with_dissipation(self, dissipation) -> "Model":
        """The same model with other size-independent dissipation rates (B, 3) (or (3,) for every object)."""
        d = torch.as_tensor(dissipation, dtype=self.dissipation.dtype, device=self.dissipation.device)
        d = d.expand(self.num_objects, 3).contiguous() if d.ndim == 1 else d
        check_dissipation(d.detach().cpu().numpy(), (self.num_objects, 3))
        return replace(self, dissipation=d, cache={})

    def state(self) -> State:
        """Rest pose, zero velocity."""
        return State(self.rest_positions.clone(), torch.zeros_like(self.rest_positions))

    def object_slice(self, b: int) -> slice:
        return slice(int(self.object_start[b]), int(self.object_start[b + 1]))

    def replicate(self, copies: int) -> "Model":
        """A batch of `copies` copies of this model's objects (same anchors and springs), without re-running the
        builder's KNN and eigenvalue work: e.g. one launch per substep for all points of a parameter sweep."""
        if int(copies) < 1:
            raise ValueError(f"replicate: copies must be >= 1, got {copies}")
        copies = int(copies)
        n, b = self.num_anchors, self.num_objects
        dev = self.rest_positions.device
        shift_a = torch.arange(copies, device=dev, dtype=torch.int32) * n  # (C,)
        shift_b = torch.arange(copies, device=dev, dtype=torch.int32) * b
        springs = (self.springs[None] + shift_a[:, None, None]).reshape(-1, 2)
        starts = np.concatenate([[0], (self.object_start[1:][None] + n * np.arange(copies)[:, None]).reshape(-1)])
        return replace(
            self,
            rest_positions=self.rest_positions.repeat(copies, 1),
            anchor_object=(self.anchor_object[None] + shift_b[:, None]).reshape(-1),
            object_start=starts.astype(np.int64),
            springs=springs.contiguous(),
            rest_lengths=self.rest_lengths.repeat(copies),
            spring_object=(self.spring_object[None] + shift_b[:, None]).reshape(-1),
            paper_params=self.paper_params.repeat(copies, 1),
            scale=self.scale.repeat(copies, 1),
            unit_eigen=np.tile(self.unit_eigen, copies),
            dissipation_scale=self.dissipation_scale.repeat(copies),
            dissipation=self.dissipation.repeat(copies, 1),
            lattices=self.lattices * copies,
            object_ids=self.object_ids * copies,
            cache={},
        )

    def with_contact(self, contact: ContactSettings) -> "Model":
        return replace(self, contact=contact, cache={})

    def required_substeps(self, fps: float, paper_params: torch.Tensor | None = None, safety: float = 0.8) -> int:
        """Smallest substep count keeping semi-implicit Euler stable for the stiffest mode.
        A mode with w^2 = lam k/m and damping c = lam d/m is stable iff (w dt)^2 + 2 c dt < 4."""
        m, k, d, _ = (t.detach().cpu().double().numpy() for t in self.sim_params(paper_params))
        lam = self.unit_eigen
        a = lam * k / m  # w^2
        c = lam * d / m
        # solve a dt^2 + 2 c dt = 4 * safety for dt
        dt_max = (-2 * c + np.sqrt(4 * c * c + 16 * safety * a)) / (2 * a)
        contact_a = self.contact.stiffness_per_mass if self.contact.mode == "smooth" else 0.0
        if contact_a > 0:
            dt_c = (-2 * self.contact.damping_per_mass + np.sqrt(4 * self.contact.damping_per_mass**2 + 16 * safety * contact_a)) / (2 * contact_a)
            dt_max = np.minimum(dt_max, dt_c)
        return int(np.ceil(1.0 / (fps * float(dt_max.min()))))


def unit_stiffness_eigen(rest_positions: np.ndarray, springs: np.ndarray, iterations: int = 60) -> float:
    """Largest eigenvalue of sum_s u u^T (x_i - x_j) over springs with unit stiffness and unit masses."""
    i, j = springs[:, 0], springs[:, 1]
    u = rest_positions[i] - rest_positions[j]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    n = len(rest_positions)
    rng = np.random.default_rng(0)
    y = rng.standard_normal(rest_positions.shape)
    lam = 0.0
    for _ in range(iterations):
        y /= np.linalg.norm(y)
        rel = np.sum((y[i] - y[j]) * u, axis=1, keepdims=True) * u
        z = np.stack([np.bincount(i, rel[:, c], n) - np.bincount(j, rel[:, c], n) for c in range(3)], axis=1)
        lam = float(np.sum(z * y))
        y = z
    return lam * 1.02  # power iteration approaches from below


class ModelBuilder:
    """Collect objects (anchors + params + lattice), then `finalize(device)` into one batched Model."""

    def __init__(self, contact: ContactSettings | None = None, gravity=GRAVITY):
        self.contact = contact or ContactSettings()
        self.gravity = tuple(float(g) for g in gravity)
        self._objects = []

    def add_object(self, anchors: np.ndarray, params: PhysicsParams, lattice: LatticeConfig = REFERENCE_LATTICE,
                   object_id: str = "", reference_r2_sum: float | None = None, check_range: bool = True,
                   dissipation=None) -> int:
        """Add one object whose anchors were sampled for `lattice`. dissipation: its size-independent tangential,
        deformation and rolling damping (3,) in 1/s at 1 m (ContactSettings), None: the contact settings'. Returns
        its index in the batch."""
        lattice.validate()
        anchors = np.asarray(anchors, dtype=np.float64)
        if anchors.ndim != 2 or anchors.shape[1] != 3 or len(anchors) < 2:
            raise ValueError(f"add_object: anchors must be (N>=2, 3), got {anchors.shape}")
        if not np.all(np.isfinite(anchors)):
            raise ValueError("add_object: anchors contain NaN or Inf")
        if not isinstance(params, PhysicsParams):
            raise ValueError(f"add_object: params must be PhysicsParams, got {type(params).__name__}")
        params.validate(check_range=check_range)
        if dissipation is None:
            dissipation = [getattr(self.contact, n) for n in DISSIPATION_NAMES]
        dissipation = check_dissipation(dissipation, (3,))
        if self._objects and lattice.spring_exponent != self._objects[0]["lattice"].spring_exponent:
            raise ValueError("add_object: all objects of a model must share the spring exponent")
        pairs, rest = knn_springs(anchors, lattice.k_neighbors)
        scale = lattice_scale_for(lattice, anchors, rest, reference_r2_sum)
        eig = unit_stiffness_eigen(anchors, pairs)
        self._objects.append(dict(anchors=anchors, pairs=pairs, rest=rest, params=params, lattice=lattice,
                                  scale=scale, eig=eig, object_id=object_id, dissipation=dissipation))
        return len(self._objects) - 1

    def finalize(self, device: str | torch.device = "cpu") -> Model:
        if not self._objects:
            raise ValueError("ModelBuilder.finalize: no objects added")
        device = str(device)
        anchors, springs, rest, spring_obj, anchor_obj, starts = [], [], [], [], [], [0]
        for b, o in enumerate(self._objects):
            offset = starts[-1]
            anchors.append(o["anchors"])
            springs.append(o["pairs"] + offset)
            rest.append(o["rest"])
            spring_obj.append(np.full(len(o["pairs"]), b, np.int32))
            anchor_obj.append(np.full(len(o["anchors"]), b, np.int32))
            starts.append(offset + len(o["anchors"]))

        def t(a, dtype=torch.float32):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        paper = [[getattr(o["params"], n) for n in PARAM_NAMES] for o in self._objects]
        scale = [[o["scale"].mass, o["scale"].stiffness, o["scale"].damping] for o in self._objects]
        return Model(
            rest_positions=t(np.concatenate(anchors)),
            anchor_object=t(np.concatenate(anchor_obj), torch.int32),
            object_start=np.asarray(starts, np.int64),
            springs=t(np.concatenate(springs), torch.int32),
            rest_lengths=t(np.concatenate(rest)),
            spring_object=t(np.concatenate(spring_obj), torch.int32),
            paper_params=t(paper),
            scale=t(scale),
            unit_eigen=np.asarray([o["eig"] for o in self._objects], np.float64),
            dissipation_scale=t([np.sqrt(REFERENCE_SIZE / object_size(o["anchors"])) for o in self._objects]),
            dissipation=t(np.stack([o["dissipation"] for o in self._objects])),
            lattices=[o["lattice"] for o in self._objects],
            object_ids=[o["object_id"] for o in self._objects],
            spring_exponent=float(self._objects[0]["lattice"].spring_exponent),
            contact=self.contact,
            gravity=self.gravity,
            device=device,
        )
