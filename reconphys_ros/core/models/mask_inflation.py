"""Non-learned Gaussian reconstruction: inflate the silhouette of one frame into a volume of Gaussians.

Works with no weights at all (the fallback of the learned Gaussian predictor). The silhouette is lifted into
3D like an inflated balloon: at a pixel whose distance to the silhouette boundary is d (pixels), the object
is 2 h(d) thick, with h(d) = sqrt(d (2R - d)) ("round": a disk of radius R becomes a sphere) or h = d
("linear"). The object's mid-plane sits at the camera depth chosen by a `DepthPrior` (models/object_depth.py);
pixel sizes turn into metres at that depth, so the volume has metric size. Gaussians fill the volume on a regular
grid, all on the camera rays of their pixel, coloured by that pixel, with isotropic scales that match the grid
spacing.
"""
from __future__ import annotations


import cv2
import numpy as np
import torch

from ..gaussians import GaussianCloud
from ..render.camera import Camera
from .object_depth import DepthPrior, camera_arrays, estimate_depth, pixel_rays

__all__ = ["inflate_mask", "validate_frame_inputs"]

PROFILES = ("round", "linear")
# Isotropic Gaussian sigma as a fraction of the sampling grid spacing: overlapping enough to look solid,
# small enough that the rendered silhouette stays within about a pixel of the mask.
SIGMA_PER_SPACING = 0.5
INSET_PER_SPACING = 1.0
def validate_frame_inputs(image: np.ndarray, mask: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """One frame handed to a Gaussian reconstruction (inflation or the learned predictor): image (H, W, 3) uint8
    or float in [0, 1], mask (H, W) (object > 0), the camera that took it -> float RGB (H, W, 3), bool mask (H, W)."""
    if not isinstance(camera, Camera):
        raise ValueError(f"camera must be a Camera, got {type(camera).__name__}")
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    if mask.ndim != 2 or mask.shape != image.shape[:2]:
        raise ValueError(f"mask must be (H, W) matching the image {image.shape[:2]}, got {mask.shape}")
    if (camera.height, camera.width) != mask.shape:
        raise ValueError(f"camera is {camera.width}x{camera.height} but the image is {mask.shape[1]}x{mask.shape[0]}")
    if image.dtype == np.uint8:
        rgb = image.astype(np.float32) / 255.0
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
            raise ValueError("a float image must be finite and lie in [0, 1]")
        rgb = image.astype(np.float32)
    else:
        raise ValueError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")
    object_pixels = mask > 0
    if not object_pixels.any():
        raise ValueError("the mask is empty: no object to reconstruct")
    return rgb, object_pixels


def _boundary_distance(object_pixels: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance in pixels from each object pixel's centre to the silhouette boundary (0 outside)."""
    inside = cv2.distanceTransform(object_pixels.astype(np.uint8), cv2.DIST_L2, 5)
    return (np.maximum(inside - 0.5, 0.5) * object_pixels).astype(np.float32)


def _half_thickness(distance: np.ndarray, profile: str) -> np.ndarray:
    """(H, W) float32 half-thickness in pixels at each object pixel (0 outside)."""
    if profile == "linear":
        return distance
    radius = float(distance.max())
    return np.sqrt(np.clip(distance * (2.0 * radius - distance), 0.0, None)).astype(np.float32)


def _sample_layout(
    distance: np.ndarray, half: np.ndarray, spacing: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled pixels (u, v) and their layer counts along depth.

    Centres sit on a grid of `spacing` pixels plus the outline of the sampled region, so the edge stays sharp.
    The region is the silhouette shrunk by INSET_PER_SPACING x spacing: the Gaussians' tails grow the rendered
    silhouette by about that much (measured: rendered-vs-mask IoU 0.97-1.0 at spacings 1-4, 0.7-0.86 without)."""
    core = distance >= INSET_PER_SPACING * spacing
    if not core.any():  # thinner than the inset everywhere: keep the whole silhouette
        core = distance > 0
    h, w = core.shape
    rows, cols = np.mgrid[0:h, 0:w]
    offset = spacing // 2
    on_grid = ((rows % spacing) == offset) & ((cols % spacing) == offset)
    outline = core & ~cv2.erode(core.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    on_outline = outline & (((rows + cols) % spacing) == 0)
    v, u = np.nonzero(core & (on_grid | on_outline))
    layers = np.floor(2.0 * half[v, u] / spacing).astype(np.int64) + 1
    return u, v, layers


def inflate_mask(
    image: np.ndarray,
    mask: np.ndarray,
    camera: Camera,
    depth_prior: DepthPrior = DepthPrior(),
    *,
    max_gaussians: int = 8_000,
    thickness: float = 1.0,
    profile: str = "round",
    layer_axis: str = "ray",
    opacity: float = 0.95,
    device: torch.device | str = "cpu",
) -> GaussianCloud:
    """First frame + mask -> Gaussians of the object in world coordinates.

    Args:
        image: (H, W, 3) RGB, uint8 or float in [0, 1].
        mask: (H, W), object where > 0; same size as the image and the camera.
        camera: the camera that took the image (OpenCV convention, world z up).
        depth_prior: how to choose the object's depth (module docstring).
        max_gaussians: the sampling grid coarsens until the cloud has at most this many Gaussians.
        thickness: multiplies the inflated half-thickness (1 = as thick as wide for round silhouettes).
        profile: "round" (balloon-like) or "linear" (thickness proportional to the boundary distance).
        layer_axis: "ray" (depth layers along each pixel's ray: the cloud renders exactly onto the mask) or
            "horizontal" (along the horizontal viewing direction: upright, not sheared by a downward view).
        opacity: opacity of every Gaussian, in (0, 1).
        device: torch device of the returned cloud.
    Returns:
        GaussianCloud with identity rotations, isotropic scales from the pixel footprint, pixel colours.
    """
    _check_options(layer_axis, profile, thickness, opacity, max_gaussians)
    rgb, object_pixels = validate_frame_inputs(image, mask, camera)
    depth = estimate_depth(object_pixels, camera, depth_prior)
    if not (np.isfinite(depth) and depth > 0):
        raise ValueError(f"the object's depth must be positive and finite, got {depth}")
    distance = _boundary_distance(object_pixels)  # (H, W) pixels
    half = _half_thickness(distance, profile) * float(thickness)  # (H, W) pixels
    u, v, layers, spacing = _fit_layout(distance, half, int(max_gaussians), max(object_pixels.shape))
    world, z, pixel, metres_per_px = _place_layers(u, v, layers, half, camera, depth, layer_axis)

    n = world.shape[0]
    sigma = SIGMA_PER_SPACING * spacing * z * (metres_per_px / depth)  # (N,) footprint grows with depth
    log_scales = np.repeat(np.log(sigma)[:, None], 3, axis=1)
    quats = np.zeros((n, 4))
    quats[:, 0] = 1.0
    colors = rgb[v[pixel], u[pixel]]
    logit = np.log(opacity / (1.0 - opacity))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    return GaussianCloud(
        means=t(world), log_scales=t(log_scales), quats=t(quats), colors=t(colors),
        opacity_logits=t(np.full(n, logit)),
    ).validate()


def _check_options(layer_axis: str, profile: str, thickness: float, opacity: float, max_gaussians: int) -> None:
    if layer_axis not in ("ray", "horizontal"):
        raise ValueError(f"layer_axis must be 'ray' or 'horizontal', got {layer_axis!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if not (np.isfinite(thickness) and thickness > 0):
        raise ValueError(f"thickness must be positive, got {thickness}")
    if not 0.0 < opacity < 1.0:
        raise ValueError(f"opacity must lie in (0, 1), got {opacity}")
    if int(max_gaussians) < 1:
        raise ValueError(f"max_gaussians must be >= 1, got {max_gaussians}")


def _fit_layout(distance: np.ndarray, half: np.ndarray, max_gaussians: int, max_spacing: int):
    """The finest sampling grid whose layers hold at most `max_gaussians` -> u, v (P,) pixels, layers (P,) per
    pixel, grid spacing (px)."""
    spacing = 1
    u, v, layers = _sample_layout(distance, half, spacing)
    while layers.sum() > max_gaussians and spacing < max_spacing:
        spacing += 1
        u, v, layers = _sample_layout(distance, half, spacing)
    if layers.sum() > max_gaussians:  # a huge budget cut: keep one layer on the coarsest grid
        layers = np.ones_like(layers)
        keep = np.linspace(0, u.size - 1, min(max_gaussians, u.size)).astype(np.int64)
        u, v, layers = u[keep], v[keep], layers[keep]
    return u, v, layers, spacing


def _place_layers(u, v, layers, half: np.ndarray, camera: Camera, depth: float, layer_axis: str):
    """Sampled pixels and their layer counts -> world centres (N, 3), camera depths (N,), the sampled pixel of each
    Gaussian (N,), metres per pixel at the object's depth."""
    K, rot, trans = camera_arrays(camera)
    metres_per_px = depth / (0.5 * (K[0, 0] + K[1, 1]))
    pixel = np.repeat(np.arange(u.size), layers)  # (N,) which sampled pixel each Gaussian belongs to
    first = np.cumsum(layers) - layers
    layer = np.arange(pixel.size) - first[pixel]
    # Layers evenly spread over [-h, h] around the mid-plane (a single layer sits on it).
    frac = np.where(layers[pixel] > 1, layer / np.maximum(layers[pixel] - 1, 1) * 2.0 - 1.0, 0.0)
    offset = frac * half[v[pixel], u[pixel]] * metres_per_px  # (N,) metres in front of / behind the mid-plane
    rays = pixel_rays(K, u[pixel] + 0.5, v[pixel] + 0.5)  # (N, 3)
    if layer_axis == "ray":
        z = depth + offset  # (N,) camera depths
        world = (rays * z[:, None] - trans) @ rot  # (N, 3): R^T (x - t)
    else:
        # Mid-plane points on their rays, thickness along the horizontal viewing direction: an upright object
        # seen from above is not sheared along the (downward) rays.
        mid = (rays * depth - trans) @ rot  # (N, 3)
        axis = rot[2].copy()  # optical axis in the world
        axis[2] = 0.0
        norm = float(np.linalg.norm(axis))
        axis = axis / norm if norm > 1e-6 else rot[2]
        world = mid + offset[:, None] * axis
        z = (world @ rot.T + trans)[:, 2]
    return world, z, pixel, metres_per_px
