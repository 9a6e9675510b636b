"""EWA projection of 3D Gaussians to screen-space 2D Gaussians, following gsplat's conventions.

Conventions shared with gsplat 1.5 (so the CPU and CUDA backends agree): the 2D covariance gets a
0.3 px^2 low-pass dilation, Gaussians nearer than `near_plane` are culled, the Jacobian is evaluated at
the mean clamped to 1.3x the field of view, and the screen-space box half-size is
ceil(extend * sigma) with extend = min(3.33, sqrt(2 ln(255 * opacity))), which contains every pixel
where the Gaussian's alpha can reach 1/255.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .conventions import ALPHA_THRESHOLD, BLUR_EPS2D, FAR_PLANE, NEAR_PLANE

__all__ = ["ProjectedGaussians", "quat_to_rotmat", "covariances_3d", "project_gaussians"]


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return rot.reshape(quats.shape[:-1] + (3, 3))


def covariances_3d(quats: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """(N, 4), (N, 3) -> (N, 3, 3) world covariances R S S^T R^T."""
    m = quat_to_rotmat(quats) * log_scales.exp()[..., None, :]  # (N, 3, 3) = R S
    return m @ m.transpose(-1, -2)


@dataclass
class ProjectedGaussians:
    """Per-image screen-space Gaussians; I images (cameras or frames) of the same N Gaussians."""

    means2d: torch.Tensor  # (I, N, 2) pixel coordinates
    conics: torch.Tensor  # (I, N, 3) inverse 2D covariance (a, b, c): sigma = 0.5(a dx^2 + c dy^2) + b dx dy
    depths: torch.Tensor  # (I, N) camera-frame z
    radii: torch.Tensor  # (I, N, 2) int64 box half-sizes in pixels, 0 where culled (no gradient)


def project_gaussians(
    means: torch.Tensor,  # (I, N, 3) or (N, 3) world centres
    covars: torch.Tensor,  # (N, 3, 3) world covariances, shared by all images
    opacities: torch.Tensor,  # (N,) or (I, N) in (0, 1), used only for the opacity-aware box
    world_to_cam: torch.Tensor,  # (I, 4, 4)
    Ks: torch.Tensor,  # (I, 3, 3)
    width: int,
    height: int,
    eps2d: float = BLUR_EPS2D,
    near_plane: float = NEAR_PLANE,
    far_plane: float = FAR_PLANE,
) -> ProjectedGaussians:
    num_images = world_to_cam.shape[0]
    means = means.expand(num_images, -1, -1) if means.dim() == 2 else means
    rot = world_to_cam[:, :3, :3].to(means)  # (I, 3, 3)
    trans = world_to_cam[:, None, :3, 3].to(means)  # (I, 1, 3)
    means_c = torch.einsum("iab,inb->ina", rot, means) + trans  # (I, N, 3), one batched matmul

    Ks = Ks.to(means)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # (I, 1)
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    tx, ty, tz = means_c.unbind(-1)  # (I, N)
    # Clamp the Jacobian's evaluation point to 1.3x the frustum, as gsplat/3DGS do, so that
    # Gaussians far off-screen do not get huge 2D footprints.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    safe_z = torch.where(tz.abs() > 1e-12, tz, torch.full_like(tz, 1e-12))
    jx = safe_z * torch.clamp(tx / safe_z, min=-lim_x_neg, max=lim_x_pos)
    jy = safe_z * torch.clamp(ty / safe_z, min=-lim_y_neg, max=lim_y_pos)
    # Rows of J W (the EWA Jacobian times the camera rotation), each (I, N, 3):
    # J = [[fx/z, 0, -fx jx/z^2], [0, fy/z, -fy jy/z^2]].
    inv_z = 1.0 / safe_z
    row_u = (fx * inv_z)[..., None] * rot[:, None, 0, :] - (fx * jx * inv_z**2)[..., None] * rot[:, None, 2, :]
    row_v = (fy * inv_z)[..., None] * rot[:, None, 1, :] - (fy * jy * inv_z**2)[..., None] * rot[:, None, 2, :]
    # cov2d = (J W) Sigma (J W)^T, written elementwise: tiny batched matmuls are slow on CPU.
    sig_u = (row_u[..., :, None] * covars[None]).sum(-2)  # (I, N, 3) = row_u^T Sigma
    sig_v = (row_v[..., :, None] * covars[None]).sum(-2)
    cov_uu = (sig_u * row_u).sum(-1)  # (I, N)
    cov_uv = (sig_u * row_v).sum(-1)
    cov_vv = (sig_v * row_v).sum(-1)

    means2d = torch.stack([fx * tx / safe_z + cx, fy * ty / safe_z + cy], dim=-1)  # (I, N, 2)
    c00 = cov_uu + eps2d
    c11 = cov_vv + eps2d
    c01 = cov_uv
    det = c00 * c11 - c01 * c01
    valid = (det > 0) & (tz > near_plane) & (tz < far_plane)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c11 / safe_det, -c01 / safe_det, c00 / safe_det], dim=-1)  # (I, N, 3)

    with torch.no_grad():
        opac = opacities.detach().to(means).expand_as(tz)
        culled = valid & (opac >= ALPHA_THRESHOLD)
        extend = torch.sqrt(2.0 * torch.log(opac.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(3.33)
        radius_x = torch.ceil(extend * c00.detach().clamp_min(0).sqrt())
        radius_y = torch.ceil(extend * c11.detach().clamp_min(0).sqrt())
        mx, my = means2d.detach().unbind(-1)
        inside = (mx + radius_x > 0) & (mx - radius_x < width) & (my + radius_y > 0) & (my - radius_y < height)
        culled = culled & inside & (radius_x > 0) & (radius_y > 0)
        radii = torch.stack([radius_x, radius_y], dim=-1).nan_to_num(0.0).long() * culled[..., None]
    return ProjectedGaussians(means2d=means2d, conics=conics, depths=tz, radii=radii)
