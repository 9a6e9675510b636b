"""Pure-torch reference integrator: the same equations as kernels.py, used as test oracle and fallback.
Differentiable by ordinary torch autograd."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .kernels import CONTACT_HARD


def spring_forces(x, v, springs, rest_lengths, spring_object, stiffness, damping, exponent: float):
    """x, v (N,3); springs (S,2) long; per-object stiffness/damping (B,). Returns force (N,3)."""
    i, j = springs[:, 0], springs[:, 1]
    delta = x[i] - x[j]  # (S, 3)
    length = delta.norm(dim=1)
    u = delta / length.clamp_min(1e-9).unsqueeze(1)
    stretch = length - rest_lengths
    k = stiffness[spring_object]
    if exponent == 1.0:
        elastic = k * stretch
    else:
        elastic = k * torch.sign(stretch) * (stretch.abs() + 1e-30) ** exponent
    damp = damping[spring_object] * ((v[i] - v[j]) * u).sum(1)
    f = (elastic + damp).unsqueeze(1) * u  # (S, 3)
    force = torch.zeros_like(x)
    force.index_add_(0, i, -f)
    force.index_add_(0, j, f)
    return force


def gripper_forces(x, v, control, alpha: float, force):
    """Adds the capped grasp-spring forces of `control` (see control.py) to force (N,3) out of place."""
    if control is None or control.num_attached == 0:
        return force
    a = control.anchor.long()
    target = control.target_start + alpha * (control.target_end - control.target_start)
    target_vel = (control.target_end - control.target_start) / control.frame_dt
    f = control.stiffness * (target - x[a]) + control.damping * (target_vel - v[a])
    mag = f.norm(dim=1, keepdim=True)
    f = torch.where(mag > control.max_force_per_anchor, f * (control.max_force_per_anchor / mag.clamp_min(1e-30)), f)
    return force.index_add(0, a, f)


def damp_rigid_motion(x, v, anchor_object, num_objects: int, rates, dt: float):
    """Deformation and rolling damping (ContactSettings): each object's velocities (N,3) relax towards its best-fit
    rigid motion, whose angular velocity decays while the object touches the ground. anchor_object (N,) long,
    rates (B, 3): each object's tangential, deformation, rolling damping (1/s). Returns v (N,3)."""
    B = num_objects

    def per_object(values):  # (N, ...) -> (B, ...) sums
        return torch.zeros((B,) + values.shape[1:], dtype=values.dtype, device=values.device).index_add_(
            0, anchor_object, values)

    count = per_object(torch.ones_like(x[:, 0]))  # (B,)
    touching = per_object((x[:, 2] <= 0).to(x.dtype))  # (B,)
    centre = per_object(x) / count[:, None]  # (B, 3)
    mean_v = per_object(v) / count[:, None]
    angular = per_object(torch.linalg.cross(x, v)) - count[:, None] * torch.linalg.cross(centre, mean_v)  # (B, 3)
    spread = per_object(x[:, :, None] * x[:, None, :]) - count[:, None, None] * centre[:, :, None] * centre[:, None, :]
    tr = spread.diagonal(dim1=1, dim2=2).sum(1)  # (B,)
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    inertia = (tr * (1.0 + 1.0e-6) + 1.0e-20)[:, None, None] * eye - spread  # (B, 3, 3), as in kernels.py
    omega = (torch.linalg.inv(inertia) @ angular[:, :, None])[..., 0]  # (B, 3)
    roll_keep = torch.exp(-rates[:, 2] * dt)
    kept = torch.where((touching > 0.5)[:, None], omega * roll_keep[:, None], omega)
    r = x - centre[anchor_object]
    rigid = mean_v[anchor_object] + torch.linalg.cross(omega[anchor_object], r)
    rigid_kept = mean_v[anchor_object] + torch.linalg.cross(kept[anchor_object], r)
    keep = torch.exp(-rates[anchor_object, 1] * dt)[:, None]
    return rigid_kept + keep * (v - rigid)


def integrate(x, v, force, anchor_object, mass, friction, rates, gravity, dt: float, contact):
    """One semi-implicit Euler substep plus the ground boundary. rates (B, 3): each object's tangential, deformation,
    rolling damping (1/s at its size; the tangential one per unit friction). Returns (x_new, v_new)."""
    m = mass[anchor_object].unsqueeze(1)
    mu = friction[anchor_object]
    g = torch.as_tensor(gravity, dtype=x.dtype, device=x.device)
    acc = force / m + g
    if contact.mode_id != CONTACT_HARD:
        w = contact.width
        z, vz = x[:, 2], v[:, 2]
        depth = w * F.softplus(-z / w)
        weight = torch.sigmoid(-z / w)
        normal = contact.stiffness_per_mass * depth - contact.damping_per_mass * weight * vz
        vt = torch.stack([v[:, 0], v[:, 1], torch.zeros_like(vz)], 1)
        vt_norm = torch.sqrt((vt * vt).sum(1) + contact.friction_velocity**2)
        n_acc = torch.stack([torch.zeros_like(normal), torch.zeros_like(normal), normal], 1)
        acc = acc + n_acc - (mu * normal.abs() / vt_norm).unsqueeze(1) * vt
    new_v = v + dt * acc
    tangential_rate = rates[anchor_object, 0] * mu  # (N,) 1/s
    damps_tangential = bool((rates[:, 0] > 0).any())
    if contact.mode_id != CONTACT_HARD and damps_tangential:
        keep = torch.exp(-tangential_rate * torch.sigmoid(-x[:, 2] / contact.width) * dt)
        new_v = torch.stack([new_v[:, 0] * keep, new_v[:, 1] * keep, new_v[:, 2]], 1)
    new_x = x + dt * new_v
    if contact.mode_id == CONTACT_HARD:
        e = contact.restitution
        hit = new_x[:, 2] < 0
        vn = new_v[:, 2]
        approaching = hit & (vn < 0)
        dvn = torch.where(approaching, -(1.0 + e) * vn, torch.zeros_like(vn))
        vz = torch.where(approaching, -e * vn, vn)
        speed = torch.sqrt(new_v[:, 0] ** 2 + new_v[:, 1] ** 2)
        scale = torch.where(
            approaching & (speed > 0), (1.0 - mu * dvn / speed.clamp_min(1e-30)).clamp_min(0.0), torch.ones_like(vn)
        )
        if damps_tangential:
            scale = scale * torch.exp(-tangential_rate * dt)
        v_hit = torch.stack([new_v[:, 0] * scale, new_v[:, 1] * scale, vz], 1)
        x_hit = torch.stack([x[:, 0] + dt * v_hit[:, 0], x[:, 1] + dt * v_hit[:, 1], new_x[:, 2].clamp_min(0.0)], 1)
        new_v = torch.where(hit.unsqueeze(1), v_hit, new_v)
        new_x = torch.where(hit.unsqueeze(1), x_hit, new_x)
    return new_x, new_v
