"""Learned Gaussian predictor (Splatter-Image style): one RGB frame + object mask -> 3D Gaussians in the world.

The square crop around the mask is resized to `input_size`^2 and fed (RGB, mask, crop coordinates) to a small
U-Net. Each cell of its `output_size`^2 output grid predicts `layers` Gaussians: a depth along the cell's camera
ray relative to a depth prior (the object's centre depth), a small 3D offset, log-scales, opacity and a colour
residual over the pixel colour. Lengths are in units of the crop's metric width at the prior depth, so the net
never sees absolute size: the depth prior (from the free-fall fit at inference, the true centre in training)
fixes the scale. Only cells inside the (resized) mask emit Gaussians; rotations are identity. At inference,
`split_for_detail` then turns each into 4 smaller Gaussians coloured by the input image (untrained; sharper
texture in the input view).

`load(path, device)` returns a `LearnedGaussianPredictor` whose `predict(image, mask, camera, depth_prior)`
matches the interface of `models/predictors.py`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..gaussians import GaussianCloud
from ..render.camera import Camera
from .checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint
from .mask_inflation import validate_frame_inputs
from .object_depth import DepthPrior, estimate_depth

__all__ = ["GaussianNetConfig", "GaussianNet", "CropWindow", "crop_inputs", "keep_cells", "lift_gaussians",
           "split_for_detail",
           "LearnedGaussianPredictor", "load", "save", "CHECKPOINT_KIND", "CHECKPOINT_VERSION"]

CHECKPOINT_KIND = "gaussian_predictor"
CHECKPOINT_VERSION = 1
CROP_MARGIN = 1.3  # crop side / largest mask bbox side: room for the Gaussians' tails
RAW_CHANNELS = 11  # per Gaussian: depth 1, offset 3, log-scale 3, opacity 1, colour 3


@dataclass(frozen=True)
class GaussianNetConfig:
    input_size: int = 64
    output_size: int = 32
    width: int = 32
    layers: int = 2  # Gaussians per output cell (front / back surface)

    def validate(self) -> "GaussianNetConfig":
        if self.input_size % 8 or self.input_size < 16:
            raise ValueError(f"input_size must be a multiple of 8 and >= 16, got {self.input_size}")
        if self.output_size not in (self.input_size, self.input_size // 2):
            raise ValueError(f"output_size must be input_size or input_size / 2, got {self.output_size}")
        if self.width < 4 or self.layers < 1:
            raise ValueError(f"width must be >= 4 and layers >= 1, got {self.width}, {self.layers}")
        return self


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.SiLU())


class GaussianNet(nn.Module):
    """U-Net: (B, 6, S, S) crop (RGB, mask, u, v) -> (B, layers, 11, S_out, S_out) raw Gaussian parameters."""

    def __init__(self, config: GaussianNetConfig = GaussianNetConfig()):
        super().__init__()
        self.config = config.validate()
        w = config.width
        self.enc1 = _block(6, w)
        self.enc2 = _block(w, 2 * w)
        self.enc3 = _block(2 * w, 4 * w)
        self.mid = _block(4 * w, 4 * w)
        self.dec3 = _block(8 * w, 2 * w)
        self.dec2 = _block(4 * w, w)
        self.dec1 = _block(2 * w, w) if config.output_size == config.input_size else None
        self.head = nn.Conv2d(w, config.layers * RAW_CHANNELS, 1)
        # Start as a thin slab of layers spread in depth around the prior, pixel-sized, fairly opaque.
        with torch.no_grad():
            self.head.weight.mul_(0.1)
            bias = torch.zeros(config.layers, RAW_CHANNELS)
            if config.layers > 1:
                bias[:, 0] = torch.linspace(-0.3, 0.3, config.layers)
            bias[:, 7] = 1.0
            self.head.bias.copy_(bias.reshape(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 6 or x.shape[2] != self.config.input_size:
            raise ValueError(f"GaussianNet input must be (B, 6, {self.config.input_size}, {self.config.input_size}), "
                             f"got {tuple(x.shape)}")
        e1 = self.enc1(x)  # (B, w, S, S)
        e2 = self.enc2(F.avg_pool2d(e1, 2))  # (B, 2w, S/2, S/2)
        e3 = self.enc3(F.avg_pool2d(e2, 2))  # (B, 4w, S/4, S/4)
        m = self.mid(F.avg_pool2d(e3, 2))  # (B, 4w, S/8, S/8)
        d3 = self.dec3(torch.cat([F.interpolate(m, scale_factor=2.0), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0), e2], 1))  # (B, w, S/2, S/2)
        if self.dec1 is not None:
            d2 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        out = self.head(d2)  # (B, L*11, So, So)
        b, _, h, w = out.shape
        return out.reshape(b, self.config.layers, RAW_CHANNELS, h, w)


@dataclass(frozen=True)
class CropWindow:
    """Square crop of the source image: continuous source pixel u = x0 + (x + 0.5) * side / size."""

    x0: float
    y0: float
    side: float  # source pixels


def crop_inputs(rgb: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, CropWindow]:
    """float RGB (H, W, 3) in [0, 1] + bool mask (H, W) -> net input (6, size, size) float32, crop mask
    (size, size) float32 and the crop window."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        raise ValueError("the mask is empty: no object to reconstruct")
    cx, cy = 0.5 * (xs.min() + xs.max() + 1), 0.5 * (ys.min() + ys.max() + 1)
    side = CROP_MARGIN * max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) + 2.0
    window = CropWindow(cx - side / 2, cy - side / 2, float(side))
    s = side / size
    # Inverse map: crop pixel (x, y) samples source index x0 + (x + 0.5) s - 0.5.
    warp = np.array([[s, 0.0, window.x0 + 0.5 * s - 0.5], [0.0, s, window.y0 + 0.5 * s - 0.5]], dtype=np.float64)
    flags = cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR
    crop_rgb = cv2.warpAffine(rgb.astype(np.float32), warp, (size, size), flags=flags | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    crop_mask = cv2.warpAffine(mask.astype(np.float32), warp, (size, size), flags=flags | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    gu, gv = np.meshgrid(grid, grid)
    inp = np.concatenate([crop_rgb.transpose(2, 0, 1), crop_mask[None], gu[None], gv[None]], 0)
    return inp.astype(np.float32), crop_mask.astype(np.float32), window


def lift_gaussians(
    raw: torch.Tensor,  # (L, 11, So, So) one sample's net output
    crop_rgb: torch.Tensor,  # (3, So, So) pixel colours at the output grid
    keep: torch.Tensor,  # (So, So) bool: cells inside the mask
    window: CropWindow,
    camera: Camera,
    depth: float,
) -> GaussianCloud:
    """Raw outputs of the kept cells -> world Gaussians (differentiable w.r.t. `raw`)."""
    if not keep.any():
        raise ValueError("no output cell lies inside the mask: the object is too small for the predictor")
    if not (np.isfinite(depth) and depth > 0):
        raise ValueError(f"the depth prior must be a positive number of metres, got {depth}")
    dev, so = raw.device, raw.shape[-1]
    K = camera.K.to(dev)
    w2c = camera.world_to_cam.to(dev)
    step = window.side / so
    coords = torch.arange(so, device=dev, dtype=torch.float32)
    u = window.x0 + (coords + 0.5) * step  # (So,)
    v = window.y0 + (coords + 0.5) * step
    vv, uu = torch.meshgrid(v, u, indexing="ij")  # (So, So)
    vv, uu = vv[keep], uu[keep]  # (M,)
    rays = torch.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], torch.ones_like(uu)], -1)  # (M, 3)
    focal = 0.5 * float(K[0, 0] + K[1, 1])
    unit = depth * window.side / focal  # metric width of the crop at the prior depth
    p = raw.permute(0, 2, 3, 1)[:, keep]  # (L, M, 11)
    z = depth + unit * 0.5 * torch.tanh(p[..., 0])  # (L, M) camera depth within +-half a crop width
    cam = rays * z[..., None] + unit * 0.05 * p[..., 1:4]  # (L, M, 3)
    world = (cam - w2c[:3, 3]) @ w2c[:3, :3]  # R^T (x - t)
    footprint = unit / so
    log_scales = np.log(0.6 * footprint) + 1.5 * torch.tanh(p[..., 4:7] / 1.5)  # (L, M, 3)
    base = crop_rgb.permute(1, 2, 0)[keep].clamp(0.02, 0.98)  # (M, 3)
    colors = torch.sigmoid(torch.logit(base) + p[..., 8:11])  # (L, M, 3)
    n = world.shape[0] * world.shape[1]
    quats = torch.zeros(n, 4, device=dev)
    quats[:, 0] = 1.0
    return GaussianCloud(means=world.reshape(n, 3), log_scales=log_scales.reshape(n, 3), quats=quats,
                         colors=colors.reshape(n, 3), opacity_logits=p[..., 7].reshape(n))


# Children per Gaussian of `split_for_detail`: offsets in the camera's image plane, in parent standard deviations.
SPLIT_OFFSETS = ((-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5), (0.5, 0.5))
SPLIT_SCALE = 0.6  # child / parent standard deviation in the image plane (depth extent kept)


def split_for_detail(cloud: GaussianCloud, rgb: np.ndarray, object_pixels: np.ndarray,
                     camera: Camera) -> GaussianCloud:
    """Inference-time detail (not trained): each Gaussian becomes 4 smaller ones spread over its image-plane
    footprint, each coloured by the input image where it projects inside the mask. The net predicts one
    Gaussian per 2x2 crop pixels at best and averages colours over views in training, so its clouds are blurry
    in the view they came from; the split gives back the input's texture. rgb (H, W, 3) float in [0, 1]."""
    dev = cloud.device
    n, k = cloud.num_gaussians, len(SPLIT_OFFSETS)
    rot = camera.world_to_cam[:3, :3].to(dev)  # rows: camera x, y, z axes in the world
    sigma = cloud.scales  # (N, 3) axis-aligned in the world (identity rotations)
    offsets = torch.tensor(SPLIT_OFFSETS, device=dev, dtype=cloud.dtype)  # (k, 2)
    # Parent extent along the camera x / y axes (a Gaussian with axis-aligned scales seen along those axes).
    extent = torch.stack([(sigma * rot[0].abs()).norm(dim=-1), (sigma * rot[1].abs()).norm(dim=-1)], -1)  # (N, 2)
    shift = (offsets[None, :, :, None] * extent[:, None, :, None] * rot[None, None, :2]).sum(2)  # (N, k, 3)
    means = (cloud.means[:, None] + shift).reshape(n * k, 3)
    log_scales = (cloud.log_scales + np.log(SPLIT_SCALE)).repeat_interleave(k, 0)
    h, w = object_pixels.shape

    def pixels(points: torch.Tensor):  # (M, 3) -> row (M,), col (M,) of the pixel each projects to, on-object (M,)
        uv, _ = camera.to(dev).project(points)
        col = uv[:, 0].floor().long().clamp(0, w - 1).cpu().numpy()
        row = uv[:, 1].floor().long().clamp(0, h - 1).cpu().numpy()
        return row, col, torch.from_numpy(object_pixels[row, col]).to(dev)

    # Children off the silhouette stay at their parent's centre, so the cloud (whose extent sets the anchors'
    # volume) does not spread beyond it; every child over the object takes the colour of its pixel.
    _, _, inside = pixels(means)
    means = torch.where(inside[:, None], means, cloud.means.repeat_interleave(k, 0))
    row, col, inside = pixels(means)
    colors = cloud.colors.repeat_interleave(k, 0).clone()
    colors[inside] = torch.from_numpy(rgb[row, col]).to(colors)[inside]
    return GaussianCloud(means=means, log_scales=log_scales, quats=cloud.quats.repeat_interleave(k, 0),
                         colors=colors, opacity_logits=cloud.opacity_logits.repeat_interleave(k, 0))


def keep_cells(crop_mask: torch.Tensor, output_size: int) -> torch.Tensor:
    """(S, S) crop mask -> (So, So) bool cells whose area is at least half object."""
    m = crop_mask[None, None]
    if crop_mask.shape[-1] != output_size:
        m = F.adaptive_avg_pool2d(m, output_size)
    return m[0, 0] >= 0.5


class LearnedGaussianPredictor:
    name = "gaussian_predictor"

    def __init__(self, net: GaussianNet, device: torch.device | str = "cpu", detail: bool = True):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.detail = detail  # split_for_detail after the net (inference only)

    def predict(self, image: np.ndarray, mask: np.ndarray, camera: Camera,
                depth_prior: DepthPrior = DepthPrior()) -> GaussianCloud:
        """image (H, W, 3) uint8 (or float in [0, 1]), mask (H, W) object > 0 -> GaussianCloud (world)."""
        rgb, object_pixels = validate_frame_inputs(image, mask, camera)
        depth = estimate_depth(object_pixels, camera, depth_prior)
        cfg = self.net.config
        inp, crop_mask, window = crop_inputs(rgb, object_pixels, cfg.input_size)
        x = torch.from_numpy(inp).to(self.device)[None]
        keep = keep_cells(x[0, 3], cfg.output_size)
        if not keep.any():  # tiny silhouettes: keep the cell with the most object
            pooled = F.adaptive_avg_pool2d(x[:, 3:4], cfg.output_size)[0, 0]
            keep = pooled == pooled.max()
        with torch.no_grad():
            raw = self.net(x)[0]
            crop_rgb = F.adaptive_avg_pool2d(x[:, :3], cfg.output_size)[0]
            cloud = lift_gaussians(raw, crop_rgb, keep, window, camera.to(self.device), depth)
            if self.detail:
                cloud = split_for_detail(cloud, rgb, object_pixels, camera)
        return cloud.validate()


def save(path: str, net: GaussianNet, **extra) -> None:
    save_checkpoint(path, CHECKPOINT_KIND, CHECKPOINT_VERSION, asdict(net.config), net.state_dict(), **extra)


def load(path: str, device: torch.device | str = "cpu") -> LearnedGaussianPredictor:
    """Checkpoint -> predictor; CheckpointError (a ValueError) names what is wrong with the file."""
    payload = load_checkpoint(path, CHECKPOINT_KIND, CHECKPOINT_VERSION)
    try:
        config = GaussianNetConfig(**payload["config"]).validate()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} has an unusable network config: {exc}") from None
    net = GaussianNet(config)
    check_state_dict(net.state_dict(), payload["model"], path)
    net.load_state_dict(payload["model"])
    return LearnedGaussianPredictor(net, device)
