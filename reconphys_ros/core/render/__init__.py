"""Differentiable Gaussian splatting: `render` one view, `render_sequence` deformed frames.

Backends: "torch" (pure torch, any device, differentiable by autograd), "gsplat" (CUDA only) and
"auto" (gsplat for CUDA tensors when installed, torch otherwise). Both follow gsplat's conventions,
so images agree between them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..gaussians import GaussianCloud
from .camera import (Camera, camera_from_calibration, check_intrinsics, dataset_views, focal_from_fov, look_at,
                     orbit_cameras)
from .gsplat_backend import gsplat_available, rasterize_gsplat
from .projection import covariances_3d, project_gaussians
from .rasterize_torch import DEFAULT_MAX_PAIRS, rasterize_pairs

BACKENDS = ("auto", "torch", "gsplat")

__all__ = [
    "Camera",
    "RenderOutput",
    "render",
    "render_views",
    "render_sequence",
    "resolve_backend",
    "look_at",
    "orbit_cameras",
    "dataset_views",
    "focal_from_fov",
    "camera_from_calibration",
    "check_intrinsics",
    "BACKENDS",
]


@dataclass
class RenderOutput:
    rgb: torch.Tensor  # (..., H, W, 3) composited over the background
    alpha: torch.Tensor  # (..., H, W) accumulated opacity
    depth: torch.Tensor  # (..., H, W) expected camera z of the visible Gaussians (0 where alpha = 0)


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        return "gsplat" if device.type == "cuda" and gsplat_available() else "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, but the Gaussians are on {device}; use 'torch'")
    return backend


def _background_tensor(background, device, dtype) -> torch.Tensor:
    bg = torch.as_tensor(background, dtype=dtype, device=device)
    if tuple(bg.shape) != (3,):
        raise ValueError(f"background must be 3 values (RGB), got shape {tuple(bg.shape)}")
    if not torch.isfinite(bg).all():
        raise ValueError("background has non-finite values")
    return bg


def _stack_cameras(cameras: Sequence[Camera], device, dtype) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    if len(cameras) == 0:
        raise ValueError("need at least one camera")
    width, height = cameras[0].width, cameras[0].height
    for cam in cameras:
        if not isinstance(cam, Camera):
            raise ValueError(f"expected Camera objects, got {type(cam).__name__}")
        if (cam.width, cam.height) != (width, height):
            raise ValueError(f"all cameras must share one image size; got {width}x{height} and {cam.width}x{cam.height}")
    w2c = torch.stack([c.world_to_cam for c in cameras]).to(device=device, dtype=dtype)  # (V, 4, 4)
    Ks = torch.stack([c.K for c in cameras]).to(device=device, dtype=dtype)  # (V, 3, 3)
    return w2c, Ks, width, height


def _render_frames_views(
    gaussians: GaussianCloud,
    means_seq: torch.Tensor,  # (T, N, 3)
    cameras: Sequence[Camera],
    background,
    backend: str,
    max_pairs: int,
) -> RenderOutput:
    """Core: T frames x V views -> RenderOutput with leading (T, V)."""
    device, dtype = gaussians.device, gaussians.dtype
    bg = _background_tensor(background, device, dtype)
    w2c, Ks, width, height = _stack_cameras(cameras, device, dtype)
    num_frames, num_views = means_seq.shape[0], w2c.shape[0]
    opacities = gaussians.opacities  # (N,)
    backend = resolve_backend(backend, device)

    if backend == "gsplat":
        color, alpha, depth_sum = rasterize_gsplat(
            means_seq, gaussians.quats, gaussians.log_scales, opacities, gaussians.colors, w2c, Ks, width, height
        )
    else:
        # Appearance (covariance, opacity, colour) is shared by all frames: computed once.
        covars = covariances_3d(gaussians.quats, gaussians.log_scales)  # (N, 3, 3)
        means_iv = means_seq[:, None].expand(-1, num_views, -1, -1).reshape(num_frames * num_views, -1, 3)
        proj = project_gaussians(
            means_iv, covars, opacities, w2c.repeat(num_frames, 1, 1), Ks.repeat(num_frames, 1, 1), width, height
        )
        color, alpha, depth_sum = rasterize_pairs(proj, opacities, gaussians.colors, width, height, max_pairs)
        lead = (num_frames, num_views)
        color = color.reshape(lead + color.shape[1:])
        alpha, depth_sum = alpha.reshape(lead + alpha.shape[1:]), depth_sum.reshape(lead + depth_sum.shape[1:])

    rgb = color + (1.0 - alpha)[..., None] * bg
    depth = depth_sum / alpha.clamp_min(1e-10)
    return RenderOutput(rgb=rgb, alpha=alpha, depth=depth)


def _check_inputs(gaussians: GaussianCloud, means_seq: torch.Tensor | None = None) -> None:
    if not isinstance(gaussians, GaussianCloud):
        raise ValueError(f"expected a GaussianCloud, got {type(gaussians).__name__}")
    gaussians.validate()
    if means_seq is not None:
        n = gaussians.num_gaussians
        if means_seq.dim() != 3 or tuple(means_seq.shape[1:]) != (n, 3):
            raise ValueError(f"means_seq must have shape (T, {n}, 3), got {tuple(means_seq.shape)}")
        if means_seq.shape[0] == 0:
            raise ValueError("means_seq has no frames")
        if not torch.isfinite(means_seq.detach()).all():
            raise ValueError("means_seq has non-finite values")
        if means_seq.device != gaussians.device:
            raise ValueError(f"means_seq is on {means_seq.device} but the Gaussians are on {gaussians.device}")


def _squeeze(out: RenderOutput, dims: tuple[int, ...]) -> RenderOutput:
    def sq(t):
        for d in sorted(dims, reverse=True):
            t = t.squeeze(d)
        return t

    return RenderOutput(rgb=sq(out.rgb), alpha=sq(out.alpha), depth=sq(out.depth))


def render(
    gaussians: GaussianCloud,
    camera: Camera,
    background=(1.0, 1.0, 1.0),
    backend: str = "auto",
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> RenderOutput:
    """Render one view: rgb (H, W, 3), alpha (H, W), depth (H, W); differentiable w.r.t. all
    Gaussian parameters. `max_pairs` bounds the candidate (pixel, Gaussian) pairs per chunk (torch backend)."""
    _check_inputs(gaussians)
    out = _render_frames_views(gaussians, gaussians.means[None], [camera], background, backend, max_pairs)
    return _squeeze(out, (0, 1))


def render_views(
    gaussians: GaussianCloud,
    cameras: Sequence[Camera],
    background=(1.0, 1.0, 1.0),
    backend: str = "auto",
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> RenderOutput:
    """Render several same-size views in one batch: outputs with a leading V."""
    _check_inputs(gaussians)
    out = _render_frames_views(gaussians, gaussians.means[None], list(cameras), background, backend, max_pairs)
    return _squeeze(out, (0,))


def render_sequence(
    gaussians: GaussianCloud,
    means_seq: torch.Tensor,  # (T, N, 3)
    camera: Camera | Sequence[Camera],
    background=(1.0, 1.0, 1.0),
    backend: str = "auto",
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> RenderOutput:
    """Render T deformed frames (centres `means_seq`, appearance from `gaussians`) in one batch.
    One camera: outputs (T, H, W, ...); a list of V cameras: (T, V, H, W, ...)."""
    _check_inputs(gaussians, means_seq)
    if isinstance(camera, Camera):
        return _squeeze(_render_frames_views(gaussians, means_seq, [camera], background, backend, max_pairs), (1,))
    return _render_frames_views(gaussians, means_seq, list(camera), background, backend, max_pairs)
