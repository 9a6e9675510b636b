"""Warp kernels of the spring-mass simulator (batched over objects: per-anchor / per-spring object index).

Call `init_warp()` before launching; it sets the kernel cache folder and initialises Warp once."""
from __future__ import annotations

import os

import warp as wp

from ..files import user_cache_dir

CONTACT_HARD = wp.constant(0)
CONTACT_SMOOTH = wp.constant(1)

_initialised = False


def default_cache_dir() -> str:
    """WARP_CACHE_PATH, else a per-user cache folder (kernels compiled once per user, any install)."""
    return os.environ.get("WARP_CACHE_PATH") or str(user_cache_dir("warp"))


def init_warp(cache_dir: str | None = None) -> None:
    """Initialise Warp once with kernels cached in `default_cache_dir()`."""
    global _initialised
    if _initialised:
        return
    path = cache_dir or default_cache_dir()
    os.makedirs(path, exist_ok=True)
    wp.config.kernel_cache_dir = path
    wp.config.quiet = True
    wp.init()
    _initialised = True


@wp.struct
class Contact:
    """Ground contact settings (model.ContactSettings on the device; see there for units)."""

    mode: int  # CONTACT_HARD | CONTACT_SMOOTH
    restitution: float
    stiffness: float  # per unit mass, 1/s^2
    damping: float  # per unit mass, 1/s
    width: float  # m
    friction_velocity: float  # m/s


@wp.func
def stable_softplus(y: float):
    # log(1 + exp(y)) without overflow (its adjoint stays finite too)
    return wp.max(y, 0.0) + wp.log(1.0 + wp.exp(-wp.abs(y)))


@wp.func
def stable_sigmoid(y: float):
    e = wp.exp(-wp.abs(y))
    s = 1.0 / (1.0 + e)
    if y < 0.0:
        s = e / (1.0 + e)
    return s


@wp.func
def add_spring_force(
    s: int,
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    springs: wp.array(dtype=wp.int32, ndim=2),
    rest_lengths: wp.array(dtype=float),
    spring_object: wp.array(dtype=wp.int32),
    stiffness: wp.array(dtype=float),
    damping: wp.array(dtype=float),
    exponent: float,
    force: wp.array(dtype=wp.vec3),
):
    i = springs[s, 0]
    j = springs[s, 1]
    obj = spring_object[s]
    delta = x[i] - x[j]
    length = wp.length(delta)
    u = delta / wp.max(length, 1.0e-9)
    stretch = length - rest_lengths[s]
    # generalised Hooke: k * sign(e) * |e|^p (p = 1 is linear)
    elastic = stiffness[obj] * stretch
    if exponent != 1.0:
        elastic = stiffness[obj] * wp.sign(stretch) * wp.pow(wp.abs(stretch) + 1.0e-30, exponent)
    damp = damping[obj] * wp.dot(v[i] - v[j], u)
    f = (elastic + damp) * u
    wp.atomic_sub(force, i, f)
    wp.atomic_add(force, j, f)


@wp.func
def add_gripper_force(
    g: int,
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    anchor: wp.array(dtype=wp.int32),
    target_start: wp.array(dtype=wp.vec3),
    target_end: wp.array(dtype=wp.vec3),
    alpha: float,
    inv_frame_dt: float,
    grip_stiffness: float,
    grip_damping: float,
    max_force: float,
    force: wp.array(dtype=wp.vec3),
):
    a = anchor[g]
    target = target_start[g] + alpha * (target_end[g] - target_start[g])
    target_vel = (target_end[g] - target_start[g]) * inv_frame_dt
    f = grip_stiffness * (target - x[a]) + grip_damping * (target_vel - v[a])
    mag = wp.length(f)
    if mag > max_force:
        f = f * (max_force / mag)  # the grasp holds with a capped effort; beyond it the object slips
    wp.atomic_add(force, a, f)


@wp.func
def integrate_anchor(
    a: int,
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    force: wp.array(dtype=wp.vec3),
    anchor_object: wp.array(dtype=wp.int32),
    mass: wp.array(dtype=float),
    friction: wp.array(dtype=float),
    rates: wp.array(dtype=wp.vec3),
    gravity: wp.vec3,
    dt: float,
    contact: Contact,
    x_out: wp.array(dtype=wp.vec3),
    v_out: wp.array(dtype=wp.vec3),
):
    # reads x[a], v[a], force[a] before writing x_out[a], v_out[a]: in-place (x_out = x) is safe
    obj = anchor_object[a]
    mu = friction[obj]
    tangential_rate = rates[obj][0] * mu  # 1/s at this object's size and friction
    p = x[a]
    vel = v[a]
    acc = force[a] / mass[obj] + gravity
    if contact.mode == CONTACT_SMOOTH:
        # smooth penalty contact, per unit mass (so mass stays unidentifiable, as with the hard boundary)
        depth = contact.width * stable_softplus(-p[2] / contact.width)
        weight = stable_sigmoid(-p[2] / contact.width)
        normal = contact.stiffness * depth - contact.damping * weight * vel[2]
        vt = wp.vec3(vel[0], vel[1], 0.0)
        vt_norm = wp.sqrt(wp.dot(vt, vt) + contact.friction_velocity * contact.friction_velocity)
        acc = acc + wp.vec3(0.0, 0.0, normal) - (mu * wp.abs(normal) / vt_norm) * vt
    new_v = vel + dt * acc
    if contact.mode == CONTACT_SMOOTH and tangential_rate > 0.0:
        # viscous ground friction, weighted by how deep the anchor is in the contact layer
        keep = wp.exp(-tangential_rate * stable_sigmoid(-p[2] / contact.width) * dt)
        new_v = wp.vec3(new_v[0] * keep, new_v[1] * keep, new_v[2])
    new_x = p + dt * new_v
    if contact.mode == CONTACT_HARD:
        if new_x[2] < 0.0:
            vn = new_v[2]
            vx = new_v[0]
            vy = new_v[1]
            vz = vn
            if vn < 0.0:
                dvn = -(1.0 + contact.restitution) * vn
                vz = -contact.restitution * vn
                speed = wp.sqrt(vx * vx + vy * vy)
                if speed > 0.0:
                    # Coulomb: the tangential impulse is at most f times the normal impulse
                    scale = wp.max(1.0 - mu * dvn / speed, 0.0)
                    vx = vx * scale
                    vy = vy * scale
            if tangential_rate > 0.0:
                keep = wp.exp(-tangential_rate * dt)  # viscous ground friction of an anchor in contact
                vx = vx * keep
                vy = vy * keep
            new_v = wp.vec3(vx, vy, vz)
            new_x = wp.vec3(p[0] + dt * vx, p[1] + dt * vy, wp.max(new_x[2], 0.0))
    x_out[a] = new_x
    v_out[a] = new_v


# Rigid-motion stage (deformation and rolling damping), once per substep before the forces. rates (B,) vec3: each
# object's tangential, deformation and rolling damping in 1/s at its own size (Model.dissipation_rates). Per-object
# buffers:
# moments (B, 4) vec3: sum x, sum v, sum x cross v, (anchor count, anchors touching the ground, 0); second (B,) mat33:
# sum x x^T; motion (B, 4) vec3: centroid, mean velocity, fitted angular velocity, angular velocity kept after the
# rolling decay. Anchors of an object share one mass, so unweighted sums give the momentum-conserving fit.
@wp.func
def accumulate_moments(
    a: int,
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    anchor_object: wp.array(dtype=wp.int32),
    moments: wp.array(dtype=wp.vec3, ndim=2),
    second: wp.array(dtype=wp.mat33),
):
    obj = anchor_object[a]
    p = x[a]
    touching = 0.0
    if p[2] <= 0.0:  # resting anchors of the hard contact sit exactly on the ground
        touching = 1.0
    wp.atomic_add(moments, obj, 0, p)
    wp.atomic_add(moments, obj, 1, v[a])
    wp.atomic_add(moments, obj, 2, wp.cross(p, v[a]))
    wp.atomic_add(moments, obj, 3, wp.vec3(1.0, touching, 0.0))
    wp.atomic_add(second, obj, wp.outer(p, p))


@wp.func
def fit_rigid_motion(
    b: int,
    moments: wp.array(dtype=wp.vec3, ndim=2),
    second: wp.array(dtype=wp.mat33),
    rates: wp.array(dtype=wp.vec3),
    dt: float,
    motion: wp.array(dtype=wp.vec3, ndim=2),
):
    n = moments[b, 3][0]
    centre = moments[b, 0] / n
    mean_v = moments[b, 1] / n
    angular = moments[b, 2] - n * wp.cross(centre, mean_v)  # angular momentum about the centroid (per anchor mass)
    spread = second[b] - n * wp.outer(centre, centre)  # sum r r^T about the centroid
    tr = wp.trace(spread)
    eye = wp.identity(n=3, dtype=float)
    # inertia tensor, regularised: a line of anchors has none about its own axis (and no momentum about it)
    inertia = (tr * (1.0 + 1.0e-6) + 1.0e-20) * eye - spread
    omega = wp.inverse(inertia) @ angular
    kept = omega
    if moments[b, 3][1] > 0.5:  # touches the ground: rolling and spinning decay
        kept = omega * wp.exp(-rates[b][2] * dt)
    motion[b, 0] = centre
    motion[b, 1] = mean_v
    motion[b, 2] = omega
    motion[b, 3] = kept


@wp.func
def damp_to_rigid_motion(
    a: int,
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    anchor_object: wp.array(dtype=wp.int32),
    motion: wp.array(dtype=wp.vec3, ndim=2),
    rates: wp.array(dtype=wp.vec3),
    dt: float,
    v_out: wp.array(dtype=wp.vec3),
):
    # reads v[a] before writing v_out[a]: in place is safe
    obj = anchor_object[a]
    r = x[a] - motion[obj, 0]
    rigid = motion[obj, 1] + wp.cross(motion[obj, 2], r)
    rigid_kept = motion[obj, 1] + wp.cross(motion[obj, 3], r)
    keep = wp.exp(-rates[obj][1] * dt)
    v_out[a] = rigid_kept + keep * (v[a] - rigid)


@wp.kernel
def moments_kernel(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    anchor_object: wp.array(dtype=wp.int32),
    moments: wp.array(dtype=wp.vec3, ndim=2),
    second: wp.array(dtype=wp.mat33),
):
    accumulate_moments(wp.tid(), x, v, anchor_object, moments, second)


@wp.kernel
def rigid_motion_kernel(
    moments: wp.array(dtype=wp.vec3, ndim=2),
    second: wp.array(dtype=wp.mat33),
    rates: wp.array(dtype=wp.vec3),
    dt: float,
    motion: wp.array(dtype=wp.vec3, ndim=2),
):
    fit_rigid_motion(wp.tid(), moments, second, rates, dt, motion)


@wp.kernel
def damp_deformation_kernel(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    anchor_object: wp.array(dtype=wp.int32),
    motion: wp.array(dtype=wp.vec3, ndim=2),
    rates: wp.array(dtype=wp.vec3),
    dt: float,
    v_out: wp.array(dtype=wp.vec3),
):
    damp_to_rigid_motion(wp.tid(), x, v, anchor_object, motion, rates, dt, v_out)


@wp.kernel
def spring_force_kernel(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    springs: wp.array(dtype=wp.int32, ndim=2),
    rest_lengths: wp.array(dtype=float),
    spring_object: wp.array(dtype=wp.int32),
    stiffness: wp.array(dtype=float),
    damping: wp.array(dtype=float),
    exponent: float,
    force: wp.array(dtype=wp.vec3),
):
    add_spring_force(wp.tid(), x, v, springs, rest_lengths, spring_object, stiffness, damping, exponent, force)


@wp.kernel
def gripper_force_kernel(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    anchor: wp.array(dtype=wp.int32),
    target_start: wp.array(dtype=wp.vec3),
    target_end: wp.array(dtype=wp.vec3),
    alpha: float,
    inv_frame_dt: float,
    grip_stiffness: float,
    grip_damping: float,
    max_force: float,
    force: wp.array(dtype=wp.vec3),
):
    add_gripper_force(wp.tid(), x, v, anchor, target_start, target_end, alpha, inv_frame_dt, grip_stiffness,
                      grip_damping, max_force, force)


@wp.kernel
def integrate_kernel(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    force: wp.array(dtype=wp.vec3),
    anchor_object: wp.array(dtype=wp.int32),
    mass: wp.array(dtype=float),
    friction: wp.array(dtype=float),
    rates: wp.array(dtype=wp.vec3),
    gravity: wp.vec3,
    dt: float,
    contact: Contact,
    x_out: wp.array(dtype=wp.vec3),
    v_out: wp.array(dtype=wp.vec3),
):
    integrate_anchor(wp.tid(), x, v, force, anchor_object, mass, friction, rates, gravity, dt, contact, x_out,
                     v_out)


@wp.kernel
def serial_frame_kernel(
    x: wp.array(dtype=wp.vec3),
    v: wp.array(dtype=wp.vec3),
    force: wp.array(dtype=wp.vec3),
    springs: wp.array(dtype=wp.int32, ndim=2),
    rest_lengths: wp.array(dtype=float),
    spring_object: wp.array(dtype=wp.int32),
    anchor_object: wp.array(dtype=wp.int32),
    mass: wp.array(dtype=float),
    stiffness: wp.array(dtype=float),
    damping: wp.array(dtype=float),
    friction: wp.array(dtype=float),
    exponent: float,
    grip_anchor: wp.array(dtype=wp.int32),
    grip_start: wp.array(dtype=wp.vec3),
    grip_end: wp.array(dtype=wp.vec3),
    inv_frame_dt: float,
    grip_stiffness: float,
    grip_damping: float,
    grip_max_force: float,
    rates: wp.array(dtype=wp.vec3),
    damps_rigid: int,
    moments: wp.array(dtype=wp.vec3, ndim=2),
    second: wp.array(dtype=wp.mat33),
    motion: wp.array(dtype=wp.vec3, ndim=2),
    gravity: wp.vec3,
    dt: float,
    substeps: int,
    contact: Contact,
):
    """A whole frame (all substeps) in one launch of dim 1, updating x and v in place: the CPU path. Warp runs CPU
    kernels serially anyway, so this does the same arithmetic in the same order as the per-substep kernels while
    crossing into native code once per frame instead of ~3 times per substep (each crossing releases the GIL,
    and under a busy ROS executor every re-acquisition can wait a whole switch interval)."""
    num_springs = springs.shape[0]
    num_anchors = x.shape[0]
    num_grip = grip_anchor.shape[0]
    num_objects = moments.shape[0]
    for step in range(substeps):
        if damps_rigid != 0:
            for b in range(num_objects):
                for row in range(4):
                    moments[b, row] = wp.vec3(0.0, 0.0, 0.0)
                second[b] = wp.mat33(0.0)
            for a in range(num_anchors):
                accumulate_moments(a, x, v, anchor_object, moments, second)
            for b in range(num_objects):
                fit_rigid_motion(b, moments, second, rates, dt, motion)
            for a in range(num_anchors):
                damp_to_rigid_motion(a, x, v, anchor_object, motion, rates, dt, v)
        for a in range(num_anchors):
            force[a] = wp.vec3(0.0, 0.0, 0.0)
        for s in range(num_springs):
            add_spring_force(s, x, v, springs, rest_lengths, spring_object, stiffness, damping, exponent, force)
        alpha = float(step + 1) / float(substeps)
        for g in range(num_grip):
            add_gripper_force(g, x, v, grip_anchor, grip_start, grip_end, alpha, inv_frame_dt, grip_stiffness,
                              grip_damping, grip_max_force, force)
        for a in range(num_anchors):
            integrate_anchor(a, x, v, force, anchor_object, mass, friction, rates, gravity, dt, contact, x, v)


def contact_struct(settings) -> Contact:
    """model.ContactSettings -> the kernels' Contact struct."""
    c = Contact()
    c.mode = CONTACT_HARD if settings.mode == "hard" else CONTACT_SMOOTH
    c.restitution = float(settings.restitution)
    c.stiffness = float(settings.stiffness_per_mass)
    c.damping = float(settings.damping_per_mass)
    c.width = float(settings.width)
    c.friction_velocity = float(settings.friction_velocity)
    return c
