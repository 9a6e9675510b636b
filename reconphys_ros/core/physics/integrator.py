"""Semi-implicit Euler integration in Warp (CPU or CUDA), a torch.autograd bridge around wp.Tape, and the
`Integrator` (built once per model, one `step_frame` per frame) with `simulate`, a rollout over it, shared with
the pure-torch reference backend."""
from __future__ import annotations

import math

import torch
import warp as wp

from . import kernels, reference
from .control import Control
from .model import Model, State

DEFAULT_FPS = 30.0
DEFAULT_SUBSTEPS = 100


class SimulationDiverged(ValueError):
    """Raised when positions or velocities become NaN/Inf; names the first bad anchor."""


def check_finite(model: Model, x: torch.Tensor, v: torch.Tensor, frame: int) -> None:
    bad = ~(torch.isfinite(x).all(1) & torch.isfinite(v).all(1))
    if bool(bad.any()):
        a = int(torch.nonzero(bad)[0, 0])
        b = int(model.anchor_object[a])
        params = model.paper_params[b].tolist()
        raise SimulationDiverged(
            f"simulation diverged at frame {frame}: anchor {a} of object {b} ({model.object_ids[b]!r}) is not "
            f"finite; paper params (m, k, d, f) = {params}. Increase substeps or check the parameters.")


def _wp_device(device) -> str:
    return str(wp.device_from_torch(torch.device(device)))


class _WarpModel:
    """Warp views (zero-copy) of a Model's static arrays."""

    def __init__(self, model: Model):
        kernels.init_warp()
        self.device = _wp_device(model.rest_positions.device)
        self.springs = wp.from_torch(model.springs.contiguous(), dtype=wp.int32)
        self.rest = wp.from_torch(model.rest_lengths.contiguous())
        self.spring_object = wp.from_torch(model.spring_object.contiguous(), dtype=wp.int32)
        self.anchor_object = wp.from_torch(model.anchor_object.contiguous(), dtype=wp.int32)
        self.gravity = wp.vec3(*model.gravity)
        self._rates = model.dissipation_rates.float().contiguous()  # (B, 3) 1/s at each object's size (kept alive)
        self.rates = wp.from_torch(self._rates, dtype=wp.vec3)
        self.contact = kernels.contact_struct(model.contact)  # one struct instead of six kernel arguments
        self.no_grip_anchor = wp.empty(0, dtype=wp.int32, device=self.device)  # "no gripper" for the serial kernel
        self.no_grip_target = wp.empty(0, dtype=wp.vec3, device=self.device)


def _warp_arrays(model: Model) -> _WarpModel:
    if "warp" not in model.cache:
        model.cache["warp"] = _WarpModel(model)
    return model.cache["warp"]


class WarpFrameRunner:
    """Advances x, v (wp arrays) by one frame of `substeps` substeps; the grasp springs may change every frame
    (set_control)."""

    def __init__(self, model: Model, substeps: int, fps: float, control: Control | None = None,
                 serial_cpu: bool = True):
        self.model = model
        self.serial_cpu = serial_cpu  # False: per-substep kernels on CPU too (the taped path; tests compare both)
        self.arrays = _warp_arrays(model)
        self.substeps = int(substeps)
        self.frame_dt = 1.0 / fps
        self.dt = self.frame_dt / self.substeps
        self._force = None  # forward-only force buffer, allocated on first use
        self._rigid = None  # forward-only buffers of the rigid-motion stage, allocated on first use
        self.set_control(control)

    def set_control(self, control: Control | None) -> None:
        """Grasp springs of the next frame (None or no attached anchor: none)."""
        self.control = control if control is not None and control.num_attached > 0 else None
        if self.control is not None:
            self.c_anchor = wp.from_torch(self.control.anchor.contiguous(), dtype=wp.int32)
            self.c_start = wp.from_torch(self.control.target_start.contiguous(), dtype=wp.vec3)
            self.c_end = wp.from_torch(self.control.target_end.contiguous(), dtype=wp.vec3)

    def _forward_force(self):
        """The force buffer of the forward-only paths (every substep overwrites it before use)."""
        if self._force is None:
            self._force = wp.empty(self.model.num_anchors, dtype=wp.vec3, device=self.arrays.device)
        return self._force

    def rigid_buffers(self, requires_grad: bool = False):
        """Zeroed per-object buffers of the rigid-motion stage: moments (B, 4), second (B,), motion (B, 4)."""
        b, dev = self.model.num_objects, self.arrays.device
        return (wp.zeros((b, 4), dtype=wp.vec3, device=dev, requires_grad=requires_grad),
                wp.zeros(b, dtype=wp.mat33, device=dev, requires_grad=requires_grad),
                wp.zeros((b, 4), dtype=wp.vec3, device=dev, requires_grad=requires_grad))

    def _forward_rigid(self):
        """The forward-only rigid-motion buffers, zeroed (the moments are sums)."""
        if self._rigid is None:
            self._rigid = self.rigid_buffers()
        self._rigid[0].zero_()
        self._rigid[1].zero_()
        return self._rigid

    def damp_rigid_motion(self, x, v, v_out, rigid) -> None:
        """Deformation and rolling damping (ContactSettings): v_out from x, v through the per-object rigid fit."""
        model, arr, dev = self.model, self.arrays, self.arrays.device
        moments, second, motion = rigid
        wp.launch(kernels.moments_kernel, dim=model.num_anchors, device=dev, inputs=[x, v, arr.anchor_object],
                  outputs=[moments, second])
        wp.launch(kernels.rigid_motion_kernel, dim=model.num_objects, device=dev,
                  inputs=[moments, second, arr.rates, float(self.dt)], outputs=[motion])
        wp.launch(kernels.damp_deformation_kernel, dim=model.num_anchors, device=dev,
                  inputs=[x, v, arr.anchor_object, motion, arr.rates, float(self.dt)], outputs=[v_out])

    def substep(self, x, v, m, k, d, f, force, x_out, v_out, alpha: float):
        model, arr, dev = self.model, self.arrays, self.arrays.device
        wp.launch(kernels.spring_force_kernel, dim=model.num_springs, device=dev,
                  inputs=[x, v, arr.springs, arr.rest, arr.spring_object, k, d, float(model.spring_exponent)],
                  outputs=[force])
        if self.control is not None:
            c = self.control
            wp.launch(kernels.gripper_force_kernel, dim=c.num_attached, device=dev,
                      inputs=[x, v, self.c_anchor, self.c_start, self.c_end, float(alpha), 1.0 / c.frame_dt,
                              float(c.stiffness), float(c.damping), float(c.max_force_per_anchor)],
                      outputs=[force])
        wp.launch(kernels.integrate_kernel, dim=model.num_anchors, device=dev,
                  inputs=[x, v, force, arr.anchor_object, m, f, arr.rates, arr.gravity, float(self.dt),
                          arr.contact],
                  outputs=[x_out, v_out])

    def run_serial(self, xa, va, m, k, d, f) -> None:
        """The whole frame in one CPU launch (kernels.serial_frame_kernel), in place on xa, va."""
        model, arr, dev = self.model, self.arrays, self.arrays.device
        c = self.control
        if c is not None:
            grip = [self.c_anchor, self.c_start, self.c_end, 1.0 / c.frame_dt, float(c.stiffness), float(c.damping),
                    float(c.max_force_per_anchor)]
        else:
            grip = [arr.no_grip_anchor, arr.no_grip_target, arr.no_grip_target, 0.0, 0.0, 0.0, 0.0]
        if self._rigid is None:
            self._rigid = self.rigid_buffers()  # the kernel zeroes them every substep
        wp.launch(kernels.serial_frame_kernel, dim=1, device=dev,
                  inputs=[xa, va, self._forward_force(), arr.springs, arr.rest, arr.spring_object,
                          arr.anchor_object, m, k, d, f, float(model.spring_exponent), *grip, arr.rates,
                          int(model.damps_rigid_motion), *self._rigid, arr.gravity, float(self.dt), self.substeps, arr.contact])

    def run_no_grad(self, x: torch.Tensor, v: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward only: one launch per frame on CPU; on CUDA ping-pong buffers, no allocation per substep."""
        dev = self.arrays.device
        m, k, d, f = (wp.from_torch(p.detach().contiguous()) for p in params)
        xa = wp.from_torch(x.detach().clone().contiguous(), dtype=wp.vec3)
        va = wp.from_torch(v.detach().clone().contiguous(), dtype=wp.vec3)
        if dev == "cpu" and self.serial_cpu:
            self.run_serial(xa, va, m, k, d, f)
            return wp.to_torch(xa), wp.to_torch(va)
        xb = wp.empty_like(xa)
        vb = wp.empty_like(va)
        force = self._forward_force()
        for s in range(self.substeps):
            force.zero_()
            if self.model.damps_rigid_motion:
                self.damp_rigid_motion(xa, va, va, self._forward_rigid())  # in place
            self.substep(xa, va, m, k, d, f, force, xb, vb, (s + 1) / self.substeps)
            xa, xb, va, vb = xb, xa, vb, va
        return wp.to_torch(xa), wp.to_torch(va)

    def run_taped(self, x, v, params):
        """Forward recorded on a wp.Tape. Returns (tape, input arrays, output arrays)."""
        dev = self.arrays.device
        n = self.model.num_anchors
        inputs = [wp.from_torch(x.detach().contiguous(), dtype=wp.vec3, requires_grad=True),
                  wp.from_torch(v.detach().contiguous(), dtype=wp.vec3, requires_grad=True)]
        inputs += [wp.from_torch(p.detach().contiguous(), requires_grad=True) for p in params]
        xa, va, m, k, d, f = inputs
        tape = wp.Tape()
        with tape:
            for s in range(self.substeps):
                if self.model.damps_rigid_motion:
                    damped = wp.empty(n, dtype=wp.vec3, device=dev, requires_grad=True)
                    self.damp_rigid_motion(xa, va, damped, self.rigid_buffers(requires_grad=True))
                    va = damped
                force = wp.zeros(n, dtype=wp.vec3, device=dev, requires_grad=True)
                xb = wp.empty(n, dtype=wp.vec3, device=dev, requires_grad=True)
                vb = wp.empty(n, dtype=wp.vec3, device=dev, requires_grad=True)
                self.substep(xa, va, m, k, d, f, force, xb, vb, (s + 1) / self.substeps)
                xa, va = xb, vb
        return tape, inputs, (xa, va)


class WarpFrameFunction(torch.autograd.Function):
    """One frame in Warp as a torch op: (x, v, mass, stiffness, damping, friction) -> (x', v').
    Per-object params are simulation values (B,); x, v are (N, 3)."""

    @staticmethod
    def forward(ctx, x, v, mass, stiffness, damping, friction, runner: WarpFrameRunner):
        params = (mass, stiffness, damping, friction)
        if not any(ctx.needs_input_grad[:6]):
            ctx.tape = None
            return runner.run_no_grad(x, v, params)
        tape, inputs, outputs = runner.run_taped(x, v, params)
        ctx.tape, ctx.inputs, ctx.outputs = tape, inputs, outputs
        return wp.to_torch(outputs[0]).clone(), wp.to_torch(outputs[1]).clone()

    @staticmethod
    def backward(ctx, grad_x, grad_v):
        if ctx.tape is None:
            return (None,) * 7
        xo, vo = ctx.outputs
        gx = torch.zeros_like(wp.to_torch(xo)) if grad_x is None else grad_x.contiguous()
        gv = torch.zeros_like(wp.to_torch(vo)) if grad_v is None else grad_v.contiguous()
        ctx.tape.backward(grads={xo: wp.from_torch(gx, dtype=wp.vec3), vo: wp.from_torch(gv, dtype=wp.vec3)})
        grads = [wp.to_torch(a.grad).clone() for a in ctx.inputs]
        ctx.tape.reset()
        ctx.tape = ctx.inputs = ctx.outputs = None
        return (*[g if need else None for g, need in zip(grads, ctx.needs_input_grad[:6])], None)


def torch_frame(model: Model, x, v, params, substeps: int, fps: float, control: Control | None):
    """One frame with the pure-torch reference integrator (differentiable by autograd)."""
    m, k, d, f = params
    dt = 1.0 / fps / substeps
    springs = model.springs.long()
    anchor_object = model.anchor_object.long()
    spring_object = model.spring_object.long()
    rates = model.dissipation_rates.to(x.dtype)  # (B, 3) 1/s
    for s in range(substeps):
        if model.damps_rigid_motion:
            v = reference.damp_rigid_motion(x, v, anchor_object, model.num_objects, rates, dt)
        force = reference.spring_forces(x, v, springs, model.rest_lengths, spring_object, k, d, model.spring_exponent)
        force = reference.gripper_forces(x, v, control, (s + 1) / substeps, force)
        x, v = reference.integrate(x, v, force, anchor_object, m, f, rates, model.gravity, dt, model.contact)
    return x, v


def resolve_substeps(model: Model, substeps: int, fps: float, params, stability: str) -> int:
    """stability: 'auto' raises substeps to the stable count, 'error' raises, 'off' trusts the caller."""
    if stability not in ("auto", "error", "off"):
        raise ValueError(f"stability must be 'auto', 'error' or 'off', got {stability!r}")
    if int(substeps) < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")
    if stability == "off":
        return int(substeps)
    needed = model.required_substeps(fps, params)
    if needed <= substeps:
        return int(substeps)
    if stability == "error":
        raise ValueError(f"{substeps} substeps per frame at {fps} fps are unstable for the stiffest spring mode of "
                         f"this model; need >= {needed} (or stability='auto')")
    return needed


class Integrator:
    """Steps one model frame by frame. Built once per model (and params): the Warp views of its arrays, the
    substep count, the time step and the simulation-unit params; then one `step_frame` per frame.

    params: optional (B, 4) paper-convention m, k, d, f (a tensor with requires_grad gives gradients), else the
    model's own. substeps: per frame; stability 'auto' raises them to the stable count for these params,
    'error' raises, 'off' trusts the caller. backend: 'warp' (CPU/CUDA kernels) or 'torch' (reference)."""

    def __init__(self, model: Model, substeps: int = DEFAULT_SUBSTEPS, fps: float = DEFAULT_FPS,
                 params: torch.Tensor | None = None, backend: str = "warp", stability: str = "auto"):
        if backend not in ("warp", "torch"):
            raise ValueError(f"backend must be 'warp' or 'torch', got {backend!r}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be > 0, got {fps}")
        if params is not None:
            if not torch.isfinite(params).all():
                raise ValueError("simulate: params contain NaN or Inf")
            if (params[:, :3] <= 0).any() or (params[:, 3] < 0).any():
                raise ValueError("simulate: mass, stiffness and damping must be > 0 and friction >= 0")
        self.model, self.fps, self.backend = model, fps, backend
        self.sim_params = model.sim_params(params)  # per-object simulation m, k, d, f, each (B,)
        self.substeps = resolve_substeps(model, substeps, fps, params, stability)
        self.runner = WarpFrameRunner(model, self.substeps, fps) if backend == "warp" else None

    def step_frame(self, state: State, control: Control | None = None) -> State:
        """The state one frame later, with the grasp springs `control` (None: none) during the frame."""
        if self.runner is not None:
            self.runner.set_control(control)
            x, v = WarpFrameFunction.apply(state.x, state.v, *self.sim_params, self.runner)
        else:
            x, v = torch_frame(self.model, state.x, state.v, self.sim_params, self.substeps, self.fps, control)
        return State(x, v)


def simulate(model: Model, state: State | None = None, num_frames: int = 30, substeps: int = DEFAULT_SUBSTEPS,
             control=None, params: torch.Tensor | None = None, fps: float = DEFAULT_FPS, backend: str = "warp",
             detach_every_frame: bool = False, stability: str = "auto", check_nan: bool = True,
             return_velocities: bool = False):
    """Roll the model forward. Returns anchor positions after each frame, (T, N_A_total, 3), and with
    return_velocities also velocities (T, N, 3).

    params, substeps, backend, stability: as for Integrator. control: None, a Control (every frame), or an object
    with `frame_control(frame, state, frame_dt) -> Control | None` (e.g. Gripper). detach_every_frame: truncated
    backprop, the state entering each frame is detached (gradients then reach params through each frame only)."""
    if int(num_frames) < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    state = state or model.state()
    if state.x.shape != (model.num_anchors, 3) or state.v.shape != (model.num_anchors, 3):
        raise ValueError(f"state must be ({model.num_anchors}, 3) positions and velocities, got "
                         f"{tuple(state.x.shape)} / {tuple(state.v.shape)}")
    integrator = Integrator(model, substeps, fps, params, backend, stability)
    xs, vs = [], []
    for frame in range(int(num_frames)):
        if detach_every_frame and frame > 0:  # frame 0 keeps the link to the initial state
            state = State(state.x.detach(), state.v.detach())
        ctrl = control.frame_control(frame, state, 1.0 / fps) if hasattr(control, "frame_control") else control
        state = integrator.step_frame(state, ctrl)
        if check_nan:
            check_finite(model, state.x, state.v, frame)
        xs.append(state.x)
        vs.append(state.v)
    positions = torch.stack(xs)
    return (positions, torch.stack(vs)) if return_velocities else positions
