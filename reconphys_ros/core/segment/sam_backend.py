"""Optional Segment Anything (SAM) backend, prompted with a box found by the OpenCV backend.

`segment-anything` (and torchvision, which it needs) is not a dependency of this package, and no checkpoint
ships with it: both are checked when the segmenter is built, and the error names whatever is missing.
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from .base import Segmenter, validate_rgb_image
from .opencv_backend import OpenCvSegmenter

__all__ = ["SamSegmenter", "mask_box"]

SAM_MODEL_TYPES = ("vit_b", "vit_l", "vit_h", "default")


def mask_box(mask: np.ndarray, margin: float = 0.1) -> np.ndarray | None:
    """Bounding box (x0, y0, x1, y1) of the non-zero pixels, grown by `margin` x its size and clipped to the
    image; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    pad_x, pad_y = margin * (x1 - x0 + 1), margin * (y1 - y0 + 1)
    h, w = mask.shape[:2]
    return np.array(
        [max(0.0, x0 - pad_x), max(0.0, y0 - pad_y), min(w - 1.0, x1 + pad_x), min(h - 1.0, y1 + pad_y)],
        dtype=np.float32,
    )


class SamSegmenter(Segmenter):
    """SAM mask for the object the OpenCV backend finds: sharper outlines, same choice of object.

    Args:
        checkpoint: path to a SAM checkpoint (e.g. `sam_vit_b_01ec64.pth` from the segment-anything release).
        model_type: SAM registry key matching the checkpoint ("vit_b", "vit_l", "vit_h").
        device: torch device for SAM ("cpu", "cuda").
        box_margin: the prompt box is the OpenCV mask's box grown by this fraction of its size.
        **opencv_options: passed to `OpenCvSegmenter`, which finds the object and its box.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        model_type: str = "vit_b",
        device: str = "cpu",
        box_margin: float = 0.1,
        **opencv_options,
    ) -> None:
        if model_type not in SAM_MODEL_TYPES:
            raise ValueError(f"model_type must be one of {SAM_MODEL_TYPES}, got {model_type!r}")
        if not 0.0 <= box_margin <= 1.0:
            raise ValueError(f"box_margin must lie in [0, 1], got {box_margin}")
        missing = []
        try:
            sam_module = importlib.import_module("segment_anything")
        except ImportError as exc:
            sam_module = None
            missing.append(
                f"the Python package `segment-anything` ({exc}); install it with "
                "`pip install segment-anything torchvision`"
            )
        if not checkpoint:
            missing.append("a SAM checkpoint path (option `checkpoint`, e.g. /path/to/sam_vit_b_01ec64.pth)")
        elif not os.path.isfile(checkpoint):
            missing.append(f"the SAM checkpoint file '{os.fspath(checkpoint)}' (no such file)")
        if missing:
            message = "the `sam` segmentation backend needs " + " and ".join(missing) + \
                "; or use backend='opencv', which needs neither"
            raise (ImportError if sam_module is None else FileNotFoundError)(message)
        model = sam_module.sam_model_registry[model_type](checkpoint=os.fspath(checkpoint))
        model.to(device)
        self._predictor = sam_module.SamPredictor(model)
        self._boxer = OpenCvSegmenter(**opencv_options)
        self.box_margin = float(box_margin)

    def reset(self) -> None:
        self._boxer.reset()

    def segment(self, image_rgb: np.ndarray) -> np.ndarray:
        image = validate_rgb_image(image_rgb, "image_rgb")
        box = mask_box(self._boxer.segment(image), self.box_margin)
        if box is None:
            return np.zeros(image.shape[:2], np.uint8)
        self._predictor.set_image(image)  # SAM expects RGB uint8 (H, W, 3)
        masks, _scores, _logits = self._predictor.predict(box=box, multimask_output=False)
        mask = np.asarray(masks[0]).astype(bool)
        return np.where(mask, 255, 0).astype(np.uint8)
