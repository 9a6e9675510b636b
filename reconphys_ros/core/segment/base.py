"""The `Segmenter` interface shared by all segmentation backends, and input validation."""
from __future__ import annotations

import abc

import numpy as np

__all__ = ["Segmenter", "validate_rgb_image"]


def validate_rgb_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return `image` as a C-contiguous uint8 (H, W, 3) array or raise a ValueError saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 RGB (0..255), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


class Segmenter(abc.ABC):
    """Turns a stream of RGB frames into masks of the (falling) object.

    Backends may keep state between frames (a background model), so feed frames of one video in order and
    call `reset()` before a new video.
    """

    @abc.abstractmethod
    def segment(self, image_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 mask with values in {0, 255}; all zeros when no object is seen."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget everything learned from previous frames."""
