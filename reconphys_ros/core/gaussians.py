"""Gaussian cloud data model and 3DGS PLY read/write (standard INRIA layout).

A `GaussianCloud` stores the parameters in their unconstrained form, as 3DGS trains them:
log-scales, unit quaternions (w, x, y, z), RGB colours and opacity logits. The PLY layout is the
one written by the reference 3DGS code and read by the usual viewers (SIBR, SuperSplat, antimatter15):
x y z nx ny nz f_dc_0..2 f_rest_0..44 opacity scale_0..2 rot_0..3, all float32, binary little endian.
"""
from __future__ import annotations

import math

import os
from dataclasses import dataclass, fields

import numpy as np
import torch

# Zeroth-order spherical-harmonic basis constant: rgb = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814
# Degree-3 SH has 15 extra coefficients per channel; viewers expect the f_rest slots to exist.
NUM_F_REST = 45
QUAT_NORM_TOLERANCE = 1e-4

__all__ = ["GaussianCloud", "SH_C0", "rgb_to_sh_dc", "sh_dc_to_rgb", "write_ply", "read_ply"]


@dataclass
class GaussianCloud:
    """N anisotropic 3D Gaussians; all tensors share one device and a floating dtype."""

    means: torch.Tensor  # (N, 3) world positions
    log_scales: torch.Tensor  # (N, 3) natural log of the per-axis standard deviations
    quats: torch.Tensor  # (N, 4) unit quaternions, (w, x, y, z)
    colors: torch.Tensor  # (N, 3) RGB in [0, 1]
    opacity_logits: torch.Tensor  # (N,) opacity = sigmoid(logit)

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def scales(self) -> torch.Tensor:  # (N, 3)
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:  # (N,)
        return torch.sigmoid(self.opacity_logits)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def validate(self) -> "GaussianCloud":
        """Check shapes, dtype, device, finiteness, unit quaternions and colour range; return self."""
        expected_tail = {"means": (3,), "log_scales": (3,), "quats": (4,), "colors": (3,), "opacity_logits": ()}
        tensors = self._tensors()
        for name, tensor in tensors.items():
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"GaussianCloud.{name} must be a torch.Tensor, got {type(tensor).__name__}")
        n = self.means.shape[0] if self.means.dim() >= 1 else -1
        for name, tensor in tensors.items():
            want = (n,) + expected_tail[name]
            if tuple(tensor.shape) != want:
                raise ValueError(f"GaussianCloud.{name} has shape {tuple(tensor.shape)}, expected {want} (N = {n})")
            if not tensor.is_floating_point():
                raise ValueError(f"GaussianCloud.{name} must be floating point, got {tensor.dtype}")
            if tensor.dtype != self.means.dtype:
                raise ValueError(f"GaussianCloud.{name} has dtype {tensor.dtype}, means have {self.means.dtype}")
            if tensor.device != self.means.device:
                raise ValueError(f"GaussianCloud.{name} is on {tensor.device}, means are on {self.means.device}")
            bad = ~torch.isfinite(tensor.detach())
            if bad.any():
                first = int(bad.reshape(n, -1).any(dim=1).nonzero()[0, 0])
                raise ValueError(f"GaussianCloud.{name} has non-finite values (first at Gaussian {first})")
        if n > 0:
            norm_err = (self.quats.detach().norm(dim=1) - 1.0).abs()
            if float(norm_err.max()) > QUAT_NORM_TOLERANCE:
                first = int(norm_err.argmax())
                raise ValueError(
                    f"GaussianCloud.quats must be unit quaternions; Gaussian {first} has norm "
                    f"{float(self.quats[first].detach().norm()):.6f} (normalise with torch.nn.functional.normalize)"
                )
            c = self.colors.detach()
            if float(c.min()) < 0.0 or float(c.max()) > 1.0:
                raise ValueError(
                    f"GaussianCloud.colors must lie in [0, 1], got range [{float(c.min()):.4g}, {float(c.max()):.4g}]"
                )
        return self

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GaussianCloud":
        return GaussianCloud(**{k: v.to(device=device, dtype=dtype) for k, v in self._tensors().items()})

    def detach(self) -> "GaussianCloud":
        return GaussianCloud(**{k: v.detach() for k, v in self._tensors().items()})

    def clone(self) -> "GaussianCloud":
        return GaussianCloud(**{k: v.clone() for k, v in self._tensors().items()})

    def with_means(self, new_means: torch.Tensor) -> "GaussianCloud":
        """Same appearance at new centres (e.g. after deformation); shares the other tensors."""
        if tuple(new_means.shape) != tuple(self.means.shape):
            raise ValueError(f"new means have shape {tuple(new_means.shape)}, expected {tuple(self.means.shape)}")
        tensors = self._tensors()
        tensors["means"] = new_means
        return GaussianCloud(**tensors)

    def scaled_about(self, centre, factor: float) -> "GaussianCloud":
        """The cloud scaled by `factor` about the point `centre` (3,): about a camera's centre, the same image at
        `factor` times the distance (the monocular scale)."""
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"scale factor must be a positive number, got {factor}")
        tensors = self._tensors()
        centre = torch.as_tensor(centre, dtype=self.means.dtype, device=self.means.device).reshape(1, 3)
        tensors["means"] = centre + factor * (self.means - centre)
        tensors["log_scales"] = self.log_scales + math.log(factor)
        return GaussianCloud(**tensors)

    def subset(self, index: torch.Tensor | slice) -> "GaussianCloud":
        """Gaussians selected by a boolean mask, index tensor or slice."""
        return GaussianCloud(**{k: v[index] for k, v in self._tensors().items()})

    @staticmethod
    def concatenate(clouds: list["GaussianCloud"]) -> "GaussianCloud":
        if not clouds:
            raise ValueError("concatenate needs at least one GaussianCloud")
        return GaussianCloud(**{f.name: torch.cat([getattr(c, f.name) for c in clouds]) for f in fields(GaussianCloud)})

    @staticmethod
    def from_activated(
        means: torch.Tensor,  # (N, 3)
        scales: torch.Tensor,  # (N, 3) standard deviations, > 0
        quats: torch.Tensor,  # (N, 4) any non-zero quaternions (normalised here)
        colors: torch.Tensor,  # (N, 3)
        opacities: torch.Tensor,  # (N,) in (0, 1)
    ) -> "GaussianCloud":
        """Build from physical values (scales, opacities) instead of log / logit parameters."""
        if (scales <= 0).any():
            raise ValueError("scales must be strictly positive")
        if ((opacities <= 0) | (opacities >= 1)).any():
            raise ValueError("opacities must lie strictly inside (0, 1)")
        return GaussianCloud(
            means=means,
            log_scales=scales.log(),
            quats=torch.nn.functional.normalize(quats, dim=-1),
            colors=colors,
            opacity_logits=torch.logit(opacities),
        ).validate()


def rgb_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """RGB -> zeroth SH coefficient, computed in float64 then rounded once to float32."""
    return ((np.asarray(rgb, dtype=np.float64) - 0.5) / SH_C0).astype(np.float32)


def sh_dc_to_rgb(f_dc: np.ndarray) -> np.ndarray:
    return (np.asarray(f_dc, dtype=np.float64) * SH_C0 + 0.5).astype(np.float32)


def _ply_dtype() -> list[tuple[str, str]]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(NUM_F_REST)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return [(name, "<f4") for name in names]


def write_ply(cloud: GaussianCloud, path: str | os.PathLike) -> None:
    """Write `cloud` as a binary 3DGS PLY (SH degree 3 layout with zero higher-order terms)."""
    from plyfile import PlyData, PlyElement

    cloud.validate()
    c = cloud.detach().to("cpu", torch.float32)
    vertices = np.zeros(c.num_gaussians, dtype=_ply_dtype())
    means, log_scales, quats = c.means.numpy(), c.log_scales.numpy(), c.quats.numpy()
    for i, axis in enumerate("xyz"):
        vertices[axis] = means[:, i]
    f_dc = rgb_to_sh_dc(c.colors.numpy())
    for i in range(3):
        vertices[f"f_dc_{i}"] = f_dc[:, i]
        vertices[f"scale_{i}"] = log_scales[:, i]
    for i in range(4):
        vertices[f"rot_{i}"] = quats[:, i]
    vertices["opacity"] = c.opacity_logits.numpy()
    try:
        PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<").write(os.fspath(path))
    except OSError as exc:
        raise OSError(f"cannot write Gaussian PLY '{os.fspath(path)}': {exc}") from exc


def read_ply(path: str | os.PathLike, device: torch.device | str = "cpu") -> GaussianCloud:
    """Read a 3DGS PLY (ours or any viewer's). Higher SH orders are dropped; colours come from f_dc,
    clamped to [0, 1]; quaternions are normalised if the file stores them unnormalised (3DGS training does)."""
    from plyfile import PlyData

    path = os.fspath(path)
    try:
        ply = PlyData.read(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # plyfile raises assorted errors for malformed headers/bodies
        raise ValueError(f"'{path}' is not a readable PLY file: {exc}") from exc
    if "vertex" not in [el.name for el in ply.elements]:
        raise ValueError(f"'{path}' has no 'vertex' element, so it is not a 3DGS PLY")
    v = ply["vertex"].data
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    required += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    missing = [name for name in required if name not in v.dtype.names]
    if missing:
        raise ValueError(f"'{path}' lacks 3DGS vertex properties {missing} (has {list(v.dtype.names)})")

    def stack(names: list[str]) -> np.ndarray:
        return np.stack([np.asarray(v[n], dtype=np.float32) for n in names], axis=-1)

    means = stack(["x", "y", "z"])
    log_scales = stack([f"scale_{i}" for i in range(3)])
    quats = stack([f"rot_{i}" for i in range(4)])
    colors = np.clip(sh_dc_to_rgb(stack([f"f_dc_{i}" for i in range(3)])), 0.0, 1.0)
    opacity_logits = np.asarray(v["opacity"], dtype=np.float32)

    norms = np.linalg.norm(quats.astype(np.float64), axis=1)
    if len(norms) and (norms < 1e-12).any():
        raise ValueError(f"'{path}' has a zero quaternion at vertex {int(np.argmin(norms))}")
    # Leave unit quaternions untouched so a round trip stays bit-exact.
    needs_norm = np.abs(norms - 1.0) > 1e-6
    quats[needs_norm] = (quats[needs_norm] / norms[needs_norm, None]).astype(np.float32)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    cloud = GaussianCloud(t(means), t(log_scales), t(quats), t(colors), t(opacity_logits))
    try:
        return cloud.validate()
    except ValueError as exc:
        raise ValueError(f"'{path}': {exc}") from exc
