"""Object segmentation: `make_segmenter("opencv" | "sam", **options)` -> `Segmenter`."""
from __future__ import annotations

from .base import Segmenter, validate_rgb_image
from .opencv_backend import OpenCvSegmenter
from .sam_backend import SamSegmenter, mask_box

__all__ = ["Segmenter", "OpenCvSegmenter", "SamSegmenter", "make_segmenter", "mask_box", "validate_rgb_image",
           "SEGMENTER_BACKENDS"]

SEGMENTER_BACKENDS = ("opencv", "sam")


def make_segmenter(backend: str = "opencv", **options) -> Segmenter:
    """Build a segmenter; `options` are the backend's constructor arguments (see OpenCvSegmenter, SamSegmenter)."""
    if backend == "opencv":
        return OpenCvSegmenter(**options)
    if backend == "sam":
        return SamSegmenter(**options)
    raise ValueError(f"unknown segmentation backend {backend!r}; choose one of {SEGMENTER_BACKENDS}")
