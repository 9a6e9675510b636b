"""gsplat (CUDA) backend: the same inputs and outputs as the torch rasterizer."""
from __future__ import annotations

import functools

import torch

from .conventions import BLUR_EPS2D, FAR_PLANE, NEAR_PLANE


@functools.lru_cache(maxsize=1)
def gsplat_available() -> bool:
    """True when CUDA is present and gsplat's CUDA kernels load (gsplat may JIT-compile them once)."""
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # noqa: BLE001 - missing package, failed JIT build, ...: fall back to torch
        return False
    return _C is not None


def rasterize_gsplat(
    means: torch.Tensor,  # (B, N, 3) centres per batch entry (frames)
    quats: torch.Tensor,  # (N, 4)
    log_scales: torch.Tensor,  # (N, 3)
    opacities: torch.Tensor,  # (N,)
    colors: torch.Tensor,  # (N, C)
    world_to_cam: torch.Tensor,  # (V, 4, 4) views shared by all batch entries
    Ks: torch.Tensor,  # (V, 3, 3)
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns colour without background (B, V, H, W, C), alpha (B, V, H, W) and alpha-weighted
    depth sum (B, V, H, W), matching `rasterize_pairs`."""
    if means.device.type != "cuda":
        raise ValueError(
            f"the gsplat backend renders only CUDA tensors (got {means.device}); use backend='torch' on CPU"
        )
    if means.dtype != torch.float32:
        raise ValueError(f"the gsplat backend needs float32 Gaussians, got {means.dtype}; use backend='torch'")
    try:
        from gsplat import rasterization
    except ImportError as exc:
        raise ValueError("the gsplat backend needs the `gsplat` package (pip install gsplat)") from exc
    b, n = means.shape[:2]
    v = world_to_cam.shape[0]
    render, alpha, _ = rasterization(
        means=means,
        quats=quats.expand(b, n, 4).contiguous(),
        scales=log_scales.exp().expand(b, n, 3).contiguous(),
        opacities=opacities.expand(b, n).contiguous(),
        colors=colors.expand(b, n, colors.shape[-1]).contiguous(),
        viewmats=world_to_cam.to(means).expand(b, v, 4, 4).contiguous(),
        Ks=Ks.to(means).expand(b, v, 3, 3).contiguous(),
        width=width,
        height=height,
        near_plane=NEAR_PLANE,
        far_plane=FAR_PLANE,
        eps2d=BLUR_EPS2D,
        render_mode="RGB+D",
        rasterize_mode="classic",
        packed=False,
    )  # (B, V, H, W, C + 1), (B, V, H, W, 1)
    return render[..., :-1], alpha[..., 0], render[..., -1]
