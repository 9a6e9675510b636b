"""Reconstruction models: image -> Gaussians, video -> physics parameters.

`mask_inflation` is the non-learned fallback Gaussian reconstruction, usable with no weights.
"""
from .mask_inflation import inflate_mask
from .object_depth import DepthPrior, FallTrack, depth_from_free_fall, estimate_depth

__all__ = ["DepthPrior", "FallTrack", "depth_from_free_fall", "estimate_depth", "inflate_mask"]
