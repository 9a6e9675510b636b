"""Learned physics predictor: a clip of T frames + masks -> k/m, d/m, f with a per-quantity uncertainty.

Network (`PhysicsNet`): a small per-frame CNN (the paper's InternViT is not available offline) on the masked
colour, the mask and two coordinate channels, plus five mask statistics per frame (centroid, area, box size),
-> learned frame position embedding -> temporal self-attention (TransformerEncoder) -> mean over frames -> MLP
heads. The heads give, for u = (ln k/m, ln d/m, f), a mean squashed into the paper's ranges by a sigmoid and a
log-variance (one standard deviation per quantity, in ln units for the ratios). With `contact_head` (v10 on), a
second head gives the same for ln(1 + c) of the size-independent contact damping after impact (physics/params.py,
1/s at 1 m; ln(1 + c) keeps c = 0, the paper's contact, inside the range).

Why ratios: from a video only k/m, d/m and f are identifiable (DESIGN.md), so the network predicts those, in the
size-independent form (physics/params.py: the k/m and d/m the same behaviour would have at 1 m), so one network and
one set of ranges serve every object size. It is told the clip's time scale: ln of the frame interval in the
object's own time unit, tau = sqrt(g / L) / fps (L its size): a 5 cm object falls 4.5x as many of its own sizes
per frame as a 1 m one, and a 60 fps camera half as many as a 30 fps one. The metric k/m and d/m follow from the
object's size; the total mass comes from the user (`known_mass`, kg; then k = m k/m and d = m d/m are in absolute
units) or from a density prior times the object's volume (params.mass_prior, with its spread as uncertainty).

`load(path, device)` is the hook of models/predictors.py: it returns a `LearnedPhysicsPredictor`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..asset import PhysicsEstimate
from ..physics.params import (CONTACT_DAMPING_RANGE, GRAVITY_MAGNITUDE, RATIO_RANGES, mass_prior,
                              ratios_from_size_independent)
from .checkpoint import check_state_dict, load_checkpoint

__all__ = ["PHYSICS_CHECKPOINT_KIND", "PHYSICS_CHECKPOINT_VERSION", "PhysicsNetConfig", "PhysicsNet",
           "prepare_clip", "LearnedPhysicsPredictor", "load"]

PHYSICS_CHECKPOINT_KIND = "physics_predictor"
PHYSICS_CHECKPOINT_VERSION = 1
Z90 = 1.6448536  # two-sided 90% interval half-width in standard deviations

_LO = torch.tensor([v[0] for v in RATIO_RANGES.values()])
_HI = torch.tensor([v[1] for v in RATIO_RANGES.values()])
CONTACT_U_RANGE = (0.0, float(np.log1p(CONTACT_DAMPING_RANGE[1])))  # ln(1 + c), c in 1/s at 1 m
NUM_MASK_STATS = 5


@dataclass(frozen=True)
class PhysicsNetConfig:
    image_size: int = 64  # frames are resized to image_size^2
    num_frames: int = 20  # frames the network was trained on (it accepts 3..max_frames)
    max_frames: int = 32
    width: int = 24  # channels of the first conv layer
    embed: int = 96  # token size of the temporal transformer
    heads: int = 4
    layers: int = 2
    time_scale_input: bool = False  # the clip's ln tau as an input (checkpoints before v8 have none)
    crop_to_motion: bool = False  # frames cropped to the square around the clip's masks (v9 on; before: whole frame)
    contact_head: bool = False  # also predicts ln(1 + contact damping) (v10 on)

    @property
    def num_outputs(self) -> int:
        """Quantities predicted: ln k/m, ln d/m at 1 m, f (and ln(1 + c) with the contact head)."""
        return 4 if self.contact_head else 3

    def validate(self) -> "PhysicsNetConfig":
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16 >= 16, got {self.image_size}")
        if not 3 <= self.num_frames <= self.max_frames:
            raise ValueError(f"num_frames must be in [3, max_frames={self.max_frames}], got {self.num_frames}")
        if self.width < 1 or self.layers < 1 or self.heads < 1 or self.embed % self.heads:
            raise ValueError("width, layers, heads must be >= 1 and embed divisible by heads")
        return self


def mask_statistics(masks: torch.Tensor) -> torch.Tensor:
    """(B, T, 1, H, W) coverage in [0, 1] -> (B, T, 5): centroid x, y, area, box width, box height, all in
    units of the image size (the clip's motion in a form attention can compare across frames directly)."""
    B, T, _, H, W = masks.shape
    m = masks[:, :, 0]  # (B, T, H, W)
    ys = (torch.arange(H, dtype=m.dtype, device=m.device) + 0.5) / H
    xs = (torch.arange(W, dtype=m.dtype, device=m.device) + 0.5) / W
    area = m.sum(dim=(2, 3)).clamp_min(1e-6)  # (B, T)
    cx = (m.sum(2) * xs).sum(-1) / area
    cy = (m.sum(3) * ys).sum(-1) / area
    sx = ((m.sum(2) * (xs - cx[..., None]) ** 2).sum(-1) / area).clamp_min(0).sqrt()  # spread as box proxy
    sy = ((m.sum(3) * (ys - cy[..., None]) ** 2).sum(-1) / area).clamp_min(0).sqrt()
    return torch.stack([cx, cy, area / (H * W), 4 * sx, 4 * sy], dim=-1)


def log_frame_interval(size, fps):
    """ln tau, the frame interval in the object's time unit sqrt(L / g): ln(sqrt(g / L) / fps). size L (m) and fps
    (1/s) floats or arrays."""
    return 0.5 * np.log(GRAVITY_MAGNITUDE / np.asarray(size, np.float64)) - np.log(np.asarray(fps, np.float64))


class PhysicsNet(nn.Module):
    """(B, T, 3, S, S) frames in [0, 1] + (B, T, 1, S, S) masks [+ (B,) ln tau] -> mean (B, 3) of the
    size-independent values in RATIO_RANGES order and log_var (B, 3)."""

    def __init__(self, config: PhysicsNetConfig = PhysicsNetConfig()):
        super().__init__()
        self.config = config.validate()
        w, e = config.width, config.embed

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(4, cout), nn.GELU())

        self.encoder = nn.Sequential(block(6, w), block(w, 2 * w), block(2 * w, 2 * w), block(2 * w, 4 * w),
                                     nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16 * w, e))
        self.stats = nn.Linear(NUM_MASK_STATS * 2, e)  # statistics and their change since the previous frame
        self.time_scale = nn.Linear(1, e) if config.time_scale_input else None
        self.position = nn.Parameter(torch.zeros(config.max_frames, e))
        layer = nn.TransformerEncoderLayer(e, config.heads, dim_feedforward=2 * e, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.temporal = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(e), nn.Linear(e, e), nn.GELU(), nn.Linear(e, 6))
        # its own head, so a checkpoint without it initialises everything else unchanged
        self.contact = (nn.Sequential(nn.LayerNorm(e), nn.Linear(e, e), nn.GELU(), nn.Linear(e, 2))
                        if config.contact_head else None)

    def forward(self, frames: torch.Tensor, masks: torch.Tensor,
                log_tau: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _, H, W = frames.shape
        S = self.config.image_size
        if (H, W) != (S, S) or masks.shape != (B, T, 1, H, W):
            raise ValueError(f"PhysicsNet expects frames (B, T, 3, {S}, {S}) and masks (B, T, 1, {S}, {S}); got "
                             f"{tuple(frames.shape)} and {tuple(masks.shape)} (use prepare_clip)")
        if not 3 <= T <= self.config.max_frames:
            raise ValueError(f"PhysicsNet needs 3..{self.config.max_frames} frames, got {T}")
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, H, device=frames.device),
                                torch.linspace(-1, 1, W, device=frames.device), indexing="ij")
        coords = torch.stack([xs, ys]).expand(B * T, 2, H, W)
        x = torch.cat([(frames * masks).reshape(B * T, 3, H, W), masks.reshape(B * T, 1, H, W), coords], dim=1)
        tokens = self.encoder(x).reshape(B, T, -1)  # (B, T, E)
        stats = mask_statistics(masks)  # (B, T, 5)
        delta = torch.cat([torch.zeros_like(stats[:, :1]), stats[:, 1:] - stats[:, :-1]], dim=1)
        tokens = tokens + self.stats(torch.cat([stats, 10.0 * delta], -1)) + self.position[:T]
        if self.time_scale is not None:
            if log_tau is None or log_tau.shape != (B,):
                raise ValueError(f"this PhysicsNet needs log_tau (B,) = ln(sqrt(g / size) / fps) per clip, got "
                                 f"{None if log_tau is None else tuple(log_tau.shape)}")
            # centred on a 30 cm object at 30 fps (ln tau = -1.69)
            tokens = tokens + self.time_scale((log_tau.to(tokens) + 1.69)[:, None])[:, None]
        pooled = self.temporal(tokens).mean(dim=1)  # (B, E)
        raw = self.head(pooled)  # (B, 6)
        lo, hi = _LO.to(raw), _HI.to(raw)
        mean = lo + (hi - lo) * torch.sigmoid(raw[:, :3])
        log_var = 6.0 * torch.tanh(raw[:, 3:] / 6.0) - 2.0  # in (-8, 4): keeps the NLL finite
        if self.contact is not None:
            rc = self.contact(pooled)  # (B, 2)
            u = CONTACT_U_RANGE[1] * torch.sigmoid(rc[:, :1])
            mean = torch.cat([mean, u], 1)  # (B, 4)
            log_var = torch.cat([log_var, 6.0 * torch.tanh(rc[:, 1:] / 6.0) - 2.0], 1)
        return mean, log_var


MOTION_CROP_MARGIN = 0.15  # of the masks' union box, on each side


def motion_crop_box(masks) -> tuple[int, int, int]:
    """(T, H, W) masks -> (top, left, side) of the square around the union of all masks, with MOTION_CROP_MARGIN
    on each side (may reach outside the image; at least 8 px)."""
    rows = np.nonzero((np.asarray(masks) > 0).any(axis=(0, 2)))[0]
    cols = np.nonzero((np.asarray(masks) > 0).any(axis=(0, 1)))[0]
    if rows.size == 0:
        raise ValueError("every mask of the clip is empty: nothing to crop to")
    side = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    side = max(int(np.ceil(side * (1.0 + 2.0 * MOTION_CROP_MARGIN))), 8)
    cy, cx = 0.5 * (rows[0] + rows[-1] + 1), 0.5 * (cols[0] + cols[-1] + 1)
    return int(round(cy - side / 2)), int(round(cx - side / 2)), side


def _crop(images: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """(T, H, W[, C]) -> (T, side, side[, C]), zeros outside the image."""
    top, left, side = box
    H, W = images.shape[1:3]
    pad = [(0, 0), (max(0, -top), max(0, top + side - H)), (max(0, -left), max(0, left + side - W))]
    pad += [(0, 0)] * (images.ndim - 3)
    padded = np.pad(images, pad)
    t, l = top + pad[1][0], left + pad[2][0]
    return padded[:, t:t + side, l:l + side]


def prepare_clip(frames, masks, image_size: int, crop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, H, W, 3) uint8 (or float in [0, 1]) frames + (T, H, W) masks (object > 0) -> network inputs
    (T, 3, S, S) float in [0, 1] and (T, 1, S, S) coverage (area-averaged resize to S = image_size). crop: first cut
    the square around the clip's masks (motion_crop_box), so a small or distant object fills the input as a near
    one does."""
    frames, masks = np.asarray(frames), np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != frames.shape[:3]:
        raise ValueError(f"need frames (T, H, W, 3) and masks (T, H, W) of the same T, H, W; got {frames.shape}, "
                         f"{masks.shape}")
    if frames.shape[0] < 3:
        raise ValueError(f"need at least 3 frames, got {frames.shape[0]}")
    f = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    if not np.isfinite(f).all():
        raise ValueError("frames contain NaN or Inf")
    size = (image_size, image_size)
    binary = (masks > 0).astype(np.float32)
    if crop:
        box = motion_crop_box(masks)
        f, binary = _crop(f, box), _crop(binary, box)
    rgb = np.stack([cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in f])
    cov = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in binary])
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(cov)[:, None].contiguous()


class LearnedPhysicsPredictor:
    """Inference wrapper of a trained PhysicsNet (what the pipeline calls)."""

    name = "learned_physics"

    def __init__(self, net: PhysicsNet, device: str = "cpu"):
        self.net = net.to(device).eval()
        self.device = device

    @property
    def predicts_contact_damping(self) -> bool:
        return bool(self.net.config.contact_head)

    @torch.no_grad()
    def predict_raw(self, frames, masks, size: float, fps: float) -> tuple[np.ndarray, np.ndarray]:
        """One clip of an object of size L (m) at fps -> (mean (Q,), sigma (Q,)) of the size-independent
        (ln k/m at 1 m, ln d/m at 1 m, f[, ln(1 + contact damping)])."""
        n = min(self.net.config.num_frames, len(frames))
        rgb, cov = prepare_clip(np.asarray(frames)[:n], np.asarray(masks)[:n], self.net.config.image_size,
                                self.net.config.crop_to_motion)
        log_tau = torch.tensor([float(log_frame_interval(size, fps))], dtype=torch.float32, device=self.device)
        mean, log_var = self.net(rgb[None].to(self.device), cov[None].to(self.device), log_tau)
        return mean[0].cpu().numpy().astype(np.float64), (0.5 * log_var[0]).exp().cpu().numpy().astype(np.float64)

    def predict_estimate(self, frames, masks, size: float, volume: float, fps: float = 30.0,
                         known_mass: float | None = None) -> PhysicsEstimate:
        """frames (T, H, W, 3), masks (T, H, W) of an object of size L (m) and volume (m^3) -> PhysicsEstimate
        (inside the size-independent ranges) with one standard deviation per quantity. known_mass: total, kg."""
        mean, sigma = self.predict_raw(frames, masks, size, fps)
        return estimate_from_prediction(mean, sigma, size, volume, known_mass)


def estimate_from_prediction(mean, sigma, size: float, volume: float,
                             known_mass: float | None = None) -> PhysicsEstimate:
    """Size-independent (ln k/m, ln d/m, f[, ln(1 + c)]) means and standard deviations of an object of size L (m)
    and volume (m^3) -> PhysicsEstimate at that size (clamped into the ranges), the mass the user's (kg) or the
    prior's; the contact damping c (1/s at 1 m) and its std (first order in ln(1 + c)) when predicted, else 0."""
    total_mass, given = mass_prior(known_mass, volume)
    lo, hi = _LO.double().numpy(), _HI.double().numpy()
    ratios = ratios_from_size_independent(np.clip(np.asarray(mean[:3], np.float64), lo, hi), size)
    c = c_std = 0.0
    if len(mean) > 3:
        u = float(np.clip(mean[3], *CONTACT_U_RANGE))
        c, c_std = float(np.expm1(u)), float((1.0 + np.expm1(u)) * sigma[3])
    return PhysicsEstimate.from_ratios(ratios, total_mass, sigma[:3], given, size, c, c_std).validate()


def build_net(config: dict) -> PhysicsNet:
    known = set(PhysicsNetConfig.__dataclass_fields__)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"unknown PhysicsNet config keys {sorted(unknown)}; known: {sorted(known)}")
    return PhysicsNet(PhysicsNetConfig(**config))


def net_config_dict(net: PhysicsNet) -> dict:
    return asdict(net.config)


def load_net(path: str, device: str = "cpu") -> PhysicsNet:
    payload = load_checkpoint(path, PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION, map_location=device)
    net = build_net(payload["config"])
    check_state_dict(net.state_dict(), payload["model"], path)
    net.load_state_dict(payload["model"])
    return net.to(device)


def load(path: str, device: str = "cpu") -> LearnedPhysicsPredictor:
    """Hook of models/predictors.py."""
    return LearnedPhysicsPredictor(load_net(path, device), device)
