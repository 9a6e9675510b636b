"""Kinematic control: a free-floating gripper that grasps anchors with capped springs, plus drop and push.

The grasp model (SI): each grasped anchor a, of mass m_a (kg, on the simulated lattice), is pulled towards its
target by a spring-damper *per unit mass*,

    f_a = m_a * (w^2 * (target - x_a) + 2 zeta w * (target_vel - v_a)),   w = 2 pi * grasp frequency,

capped at |f_a| <= max_effort / n0 (N, n0 = anchors grasped on closing), so the total grasp force never exceeds
max_effort, and anchors that slipped out take their share of it with them (the rest never cling harder). The
grasp then moves a 50 g and a 5 kg object identically (the same sag and settling time, stable at the same
substep count) and only the force cap, in N, depends on the mass: a cap below the object's weight (plus the force
its acceleration needs) cannot hold it, the capped springs stretch, and anchors pulled further than both 3x the
stretch at the cap and the grasp radius (out of the jaws) are let go, so the object slips out instead of stretching
without limit. A brief shortfall (the gripper starting at full speed) only lags the object behind within the jaws.

Stability (semi-implicit Euler, dt = 1 / (fps * substeps)): a spring-damper per unit mass is stable for
(w dt)^2 + 4 zeta w dt < 4; the object's own springs already use up to 80% of that budget (Model.required_substeps,
safety 0.8), so the grasp keeps (w dt)^2 + 4 zeta w dt inside the remaining 0.8. The defaults (12 Hz, zeta = 1:
w = 75 1/s) give w dt = 0.13 and (w dt)^2 + 4 zeta w dt = 0.52 (65% of the 0.8) at 30 fps x 20 substeps (the
simulation node's defaults), less at more substeps; `grasp_stability_margin` checks other rates. The static sag of a
hanging object is about (N / n) g / w^2 (n of its N anchors grasped): 1.4 cm with 1/8 of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..geometry import quat_to_matrix, unit_quaternion
from .model import Model, State

DEFAULT_MAX_EFFORT = 40.0  # N: a parallel gripper's grip force (robot grippers: ~5-100 N)
DEFAULT_GRASP_FREQUENCY = 12.0  # Hz: natural frequency of a grasped anchor on its grasp spring


def grasp_stiffness_per_mass(frequency_hz: float) -> float:
    """Grasp stiffness per unit mass (1/s^2) of a grasp natural frequency (Hz): (2 pi f)^2."""
    return (2.0 * math.pi * float(frequency_hz)) ** 2


DEFAULT_GRASP_STIFFNESS = grasp_stiffness_per_mass(DEFAULT_GRASP_FREQUENCY)  # 1/s^2 per unit mass (~5685)
GRASP_DAMPING_RATIO = 1.0  # critical damping of the grasp springs
GRASP_STABILITY_BUDGET = 0.8  # of the explicit integrator's limit 4 left over by Model.required_substeps (safety 0.8)
SLIP_STRETCH_FACTOR = 3.0  # anchors stretched beyond this times the stretch at the force cap (and beyond the grasp
# radius: out of the jaws) slip out


def check_max_effort(max_effort, where: str = "max_effort") -> float:
    """A total grasp force cap (N) as a float, or a ValueError that names the unit."""
    if isinstance(max_effort, bool) or not isinstance(max_effort, (int, float, np.floating, np.integer)) \
            or not math.isfinite(max_effort) or not max_effort > 0:
        raise ValueError(f"{where} is the cap on the total grasp force in N and must be a finite number > 0 N, "
                         f"got {max_effort!r}")
    return float(max_effort)


def grasp_stability_margin(stiffness: float, damping: float, dt: float) -> float:
    """(w dt)^2 + 2 c dt of a grasp spring-damper per unit mass (stiffness w^2 in 1/s^2, damping c in 1/s) at
    substep dt (s), as a fraction of GRASP_STABILITY_BUDGET: < 1 keeps the grasp stable on top of any object whose
    substeps Model.required_substeps chose."""
    return (stiffness * dt * dt + 2.0 * damping * dt) / GRASP_STABILITY_BUDGET


def critical_damping(stiffness: float) -> float:
    """Grasp damping per unit mass (1/s) for GRASP_DAMPING_RATIO at grasp stiffness w^2 (1/s^2)."""
    return 2.0 * GRASP_DAMPING_RATIO * math.sqrt(stiffness)


@dataclass
class Control:
    """Grasp springs for one frame: anchor[g] is pulled towards a target moving linearly from
    target_start[g] to target_end[g] over the frame."""

    anchor: torch.Tensor  # (G,) int32
    target_start: torch.Tensor  # (G, 3)
    target_end: torch.Tensor  # (G, 3)
    stiffness: float  # N/m per grasp spring (the gripper's per-unit-mass stiffness times the anchor mass)
    damping: float  # N s/m per grasp spring
    max_force_per_anchor: float  # N; total grasp force <= max_effort
    frame_dt: float

    @property
    def num_attached(self) -> int:
        return int(self.anchor.shape[0])


def _slerp(q0: np.ndarray, q1: np.ndarray, max_angle: float) -> np.ndarray:
    """Rotate q0 towards q1 by at most max_angle (rad)."""
    if np.dot(q0, q1) < 0:
        q1 = -q1
    cos = float(np.clip(np.dot(q0, q1), -1.0, 1.0))
    angle = 2.0 * np.arccos(cos)
    if angle <= max_angle or angle < 1e-9:
        return q1 / np.linalg.norm(q1)
    t = max_angle / angle
    half = angle / 2
    q = (np.sin((1 - t) * half) * q0 + np.sin(t * half) * q1) / np.sin(half)
    return q / np.linalg.norm(q)


class Gripper:
    """Free-floating parallel gripper. `command(...)` sets the goal; `frame_control(frame, state, frame_dt)`
    moves the gripper towards it under rate limits and returns this frame's Control (None when open).

    max_effort: cap on the total grasp force, N (default 40 N). stiffness: grasp stiffness per unit mass of the
    grasped anchors, 1/s^2 (= w^2; default (2 pi 12 Hz)^2); damping: per unit mass, 1/s (None: critical,
    2 sqrt(stiffness)). Per spring (N/m, N s/m) they are these times the grasped anchors' mass, so every object
    mass is held alike (module docstring). Anchors of several objects with different masses: the lightest one's
    anchor mass is used (stable for all, softer for the heavier ones).

    Closed, it grasps the anchors within grasp_radius of its centre (at the first frame any are in reach). Once the
    object has slipped out it stays closed on nothing (`slipped`) until opened: it does not grab again."""

    def __init__(self, model: Model, position=(0.0, 0.0, 1.0), orientation=(1.0, 0.0, 0.0, 0.0),
                 grasp_radius: float = 0.05, max_effort: float = DEFAULT_MAX_EFFORT,
                 stiffness: float = DEFAULT_GRASP_STIFFNESS, damping: float | None = None,
                 max_speed: float = 0.5, max_angular_speed: float = 2.0):
        self.model = model
        self.position = np.asarray(position, np.float64)
        self.orientation = np.asarray(orientation, np.float64)
        self.target_position = self.position.copy()
        self.target_orientation = self.orientation.copy()
        self.grasp_radius = float(grasp_radius)
        self.max_effort = check_max_effort(max_effort, "Gripper: max_effort")
        if not (math.isfinite(stiffness) and stiffness > 0):
            raise ValueError(f"Gripper: stiffness is per unit mass, 1/s^2, and must be finite and > 0, got {stiffness}")
        self.stiffness = float(stiffness)  # 1/s^2
        damping = critical_damping(self.stiffness) if damping is None else damping
        if not (math.isfinite(damping) and damping >= 0):
            raise ValueError(f"Gripper: damping is per unit mass, 1/s, and must be finite and >= 0, got {damping}")
        self.damping = float(damping)  # 1/s
        self.max_speed = float(max_speed)
        self.max_angular_speed = float(max_angular_speed)
        self.closed = False
        self._attached = np.zeros(0, np.int64)
        self._offsets = np.zeros((0, 3))  # attached anchor offsets in the gripper frame
        self._anchor_mass = 0.0  # kg: simulated mass of each grasped anchor (the lightest object's)
        self._num_grasped = 1  # anchors grasped on closing (before any slipped)
        self._slipped = False  # the object slipped out since the last closing
        self._object_mass = model.sim_params()[0].detach().cpu().double().numpy()  # (B,) kg per simulated anchor
        self._anchor_object = model.anchor_object.detach().cpu().numpy()

    @property
    def attached(self) -> np.ndarray:
        return self._attached.copy()

    @property
    def slipped(self) -> bool:
        """True when every grasped anchor slipped out since the last closing (cleared by opening)."""
        return self._slipped

    @property
    def spring_stiffness(self) -> float:
        """N/m of each grasp spring now (0 while nothing is grasped)."""
        return self.stiffness * self._anchor_mass

    @property
    def spring_damping(self) -> float:
        """N s/m of each grasp spring now (0 while nothing is grasped)."""
        return self.damping * self._anchor_mass

    def command(self, position=None, orientation=None, closed: bool | None = None, grasp_radius=None,
                max_effort=None) -> None:
        """max_effort: cap on the total grasp force in N (finite, > 0); None keeps the current one."""
        if position is not None:
            position = np.asarray(position, np.float64)
            if position.shape != (3,) or not np.all(np.isfinite(position)):
                raise ValueError(f"Gripper.command: position must be 3 finite numbers, got {position}")
            self.target_position = position
        if orientation is not None:
            self.target_orientation = unit_quaternion(orientation, "Gripper.command: orientation")
        if grasp_radius is not None:
            if not (math.isfinite(grasp_radius) and grasp_radius > 0):
                raise ValueError(f"Gripper.command: grasp_radius must be finite and > 0 m, got {grasp_radius!r}")
            self.grasp_radius = float(grasp_radius)
        if max_effort is not None:
            self.max_effort = check_max_effort(max_effort, "Gripper.command: max_effort")
        if closed is not None:
            self.closed = bool(closed)

    def _world_targets(self) -> np.ndarray:
        return self._offsets @ quat_to_matrix(self.orientation).T + self.position

    def frame_control(self, frame: int, state: State, frame_dt: float) -> Control | None:
        x = state.x.detach().cpu().double().numpy()
        if self.closed and len(self._attached) == 0 and not self._slipped:
            near = np.nonzero(np.linalg.norm(x - self.position, axis=1) <= self.grasp_radius)[0]
            rot = quat_to_matrix(self.orientation)
            self._attached = near
            self._offsets = (x[near] - self.position) @ rot  # world -> gripper frame
            self._anchor_mass = float(self._object_mass[self._anchor_object[near]].min()) if len(near) else 0.0
            self._num_grasped = max(len(near), 1)
        elif not self.closed:
            self._attached = np.zeros(0, np.int64)
            self._offsets = np.zeros((0, 3))
            self._slipped = False
        elif len(self._attached):
            # slip: anchors pulled much further than the capped force can hold, and out of the grasp, are let go. The
            # share of the cap is that of the anchors first grasped: a partial slip does not make the rest cling harder.
            per_anchor = self.max_effort / self._num_grasped
            stretch = np.linalg.norm(self._world_targets() - x[self._attached], axis=1)
            keep = stretch <= max(SLIP_STRETCH_FACTOR * per_anchor / self.spring_stiffness, self.grasp_radius)
            self._attached, self._offsets = self._attached[keep], self._offsets[keep]
            self._slipped = len(self._attached) == 0  # closed on nothing now: no re-grasp until opened again
        start = self._world_targets()
        step = self.target_position - self.position
        dist = np.linalg.norm(step)
        max_step = self.max_speed * frame_dt
        self.position = self.position + (step if dist <= max_step else step * (max_step / dist))
        self.orientation = _slerp(self.orientation, self.target_orientation, self.max_angular_speed * frame_dt)
        if len(self._attached) == 0:
            self._anchor_mass = 0.0
            return None
        dev = state.x.device
        return Control(
            anchor=torch.as_tensor(self._attached, dtype=torch.int32, device=dev),
            target_start=torch.as_tensor(start, dtype=torch.float32, device=dev),
            target_end=torch.as_tensor(self._world_targets(), dtype=torch.float32, device=dev),
            stiffness=self.spring_stiffness, damping=self.spring_damping,
            max_force_per_anchor=self.max_effort / self._num_grasped, frame_dt=frame_dt)


def drop_state(model: Model, position=(0.0, 0.0, 0.5), orientation=(1.0, 0.0, 0.0, 0.0),
               objects=None) -> State:
    """Reset objects to their rest shape, centroid at `position` rotated by `orientation`, zero velocity."""
    x = model.rest_positions.detach().cpu().double().numpy().copy()
    rot = quat_to_matrix(orientation)
    pos = np.asarray(position, np.float64)
    for b in range(model.num_objects) if objects is None else objects:
        sl = model.object_slice(b)
        c = x[sl].mean(0)
        x[sl] = (x[sl] - c) @ rot.T + pos
    xt = torch.as_tensor(x, dtype=torch.float32, device=model.rest_positions.device)
    return State(xt, torch.zeros_like(xt))


def push(model: Model, state: State, impulse, point=None, radius: float | None = None, obj: int = 0) -> State:
    """Apply a linear impulse (N s) to object `obj`: spread over all its anchors, or over anchors within
    `radius` of `point`. Uses paper masses mapped to the lattice. Returns a new State."""
    impulse = torch.as_tensor(impulse, dtype=torch.float32, device=state.v.device)
    if impulse.shape != (3,) or not torch.isfinite(impulse).all():
        raise ValueError(f"push: impulse must be 3 finite numbers, got {impulse}")
    sl = model.object_slice(obj)
    idx = torch.arange(sl.start, sl.stop, device=state.v.device)
    if point is not None:
        if radius is None or radius <= 0:
            raise ValueError("push: give a radius > 0 with a point")
        p = torch.as_tensor(point, dtype=torch.float32, device=state.x.device)
        idx = idx[(state.x[idx] - p).norm(dim=1) <= radius]
        if len(idx) == 0:
            raise ValueError("push: no anchors within radius of the point")
    mass = float(model.sim_params()[0][obj])
    v = state.v.clone()
    v[idx] += impulse / (mass * len(idx))
    return State(state.x.clone(), v)
