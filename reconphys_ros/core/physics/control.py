"""Kinematic control: a free-floating gripper that grasps anchors with capped springs, plus drop and push."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..geometry import quat_to_matrix, unit_quaternion
from .model import Model, State


@dataclass
class Control:
    """Grasp springs for one frame: anchor[g] is pulled towards a target moving linearly from
    target_start[g] to target_end[g] over the frame."""

    anchor: torch.Tensor  # (G,) int32
    target_start: torch.Tensor  # (G, 3)
    target_end: torch.Tensor  # (G, 3)
    stiffness: float  # N/m per grasp spring
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
    moves the gripper towards it under rate limits and returns this frame's Control (None when open)."""

    def __init__(self, model: Model, position=(0.0, 0.0, 1.0), orientation=(1.0, 0.0, 0.0, 0.0),
                 grasp_radius: float = 0.05, max_effort: float = 2.0e4, stiffness: float = 2.0e4,
                 damping: float = 200.0, max_speed: float = 0.5, max_angular_speed: float = 2.0):
        self.model = model
        self.position = np.asarray(position, np.float64)
        self.orientation = np.asarray(orientation, np.float64)
        self.target_position = self.position.copy()
        self.target_orientation = self.orientation.copy()
        self.grasp_radius = float(grasp_radius)
        self.max_effort = float(max_effort)
        self.stiffness = float(stiffness)
        self.damping = float(damping)
        self.max_speed = float(max_speed)
        self.max_angular_speed = float(max_angular_speed)
        self.closed = False
        self._attached = np.zeros(0, np.int64)
        self._offsets = np.zeros((0, 3))  # attached anchor offsets in the gripper frame

    @property
    def attached(self) -> np.ndarray:
        return self._attached.copy()

    def command(self, position=None, orientation=None, closed: bool | None = None, grasp_radius=None,
                max_effort=None) -> None:
        if position is not None:
            position = np.asarray(position, np.float64)
            if position.shape != (3,) or not np.all(np.isfinite(position)):
                raise ValueError(f"Gripper.command: position must be 3 finite numbers, got {position}")
            self.target_position = position
        if orientation is not None:
            self.target_orientation = unit_quaternion(orientation, "Gripper.command: orientation")
        if grasp_radius is not None:
            if not grasp_radius > 0:
                raise ValueError("Gripper.command: grasp_radius must be > 0")
            self.grasp_radius = float(grasp_radius)
        if max_effort is not None:
            if not max_effort > 0:
                raise ValueError("Gripper.command: max_effort must be > 0")
            self.max_effort = float(max_effort)
        if closed is not None:
            self.closed = bool(closed)

    def _world_targets(self) -> np.ndarray:
        return self._offsets @ quat_to_matrix(self.orientation).T + self.position

    def frame_control(self, frame: int, state: State, frame_dt: float) -> Control | None:
        x = state.x.detach().cpu().double().numpy()
        if self.closed and len(self._attached) == 0:
            near = np.nonzero(np.linalg.norm(x - self.position, axis=1) <= self.grasp_radius)[0]
            rot = quat_to_matrix(self.orientation)
            self._attached = near
            self._offsets = (x[near] - self.position) @ rot  # world -> gripper frame
        elif not self.closed and len(self._attached):
            self._attached = np.zeros(0, np.int64)
            self._offsets = np.zeros((0, 3))
        elif len(self._attached):
            # slip: anchors pulled much further than the capped force can hold are let go
            per_anchor = self.max_effort / len(self._attached)
            stretch = np.linalg.norm(self._world_targets() - x[self._attached], axis=1)
            keep = stretch <= 3.0 * per_anchor / self.stiffness
            self._attached, self._offsets = self._attached[keep], self._offsets[keep]
        start = self._world_targets()
        step = self.target_position - self.position
        dist = np.linalg.norm(step)
        max_step = self.max_speed * frame_dt
        self.position = self.position + (step if dist <= max_step else step * (max_step / dist))
        self.orientation = _slerp(self.orientation, self.target_orientation, self.max_angular_speed * frame_dt)
        if len(self._attached) == 0:
            return None
        dev = state.x.device
        return Control(
            anchor=torch.as_tensor(self._attached, dtype=torch.int32, device=dev),
            target_start=torch.as_tensor(start, dtype=torch.float32, device=dev),
            target_end=torch.as_tensor(self._world_targets(), dtype=torch.float32, device=dev),
            stiffness=self.stiffness, damping=self.damping,
            max_force_per_anchor=self.max_effort / len(self._attached), frame_dt=frame_dt)


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
