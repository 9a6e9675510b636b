"""Reconstruction models: image -> Gaussians, video -> physics parameters.

`mask_inflation` is the non-learned fallback Gaussian reconstruction, usable with no weights.
"""
from .mask_inflation import DepthPrior, FallTrack, depth_from_free_fall, estimate_depth, inflate_mask

__all__ = ["DepthPrior", "FallTrack", "depth_from_free_fall", "estimate_depth", "inflate_mask"]
