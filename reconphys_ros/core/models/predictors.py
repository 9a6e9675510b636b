"""Where the pipeline's Gaussians and physics come from: learned predictors when their weights ship in
`reconphys_ros/weights/`, otherwise the non-learned fallbacks (mask inflation; physics estimation by simulation).

A learned predictor plugs in by shipping `<weights_dir>/<name>.pt` plus a module
`reconphys_ros.core.models.<name>` with `load(path, device)` returning an object with the matching `predict`:
- gaussian_predictor: `predict(image (H, W, 3) uint8, mask (H, W), camera, depth_prior) -> GaussianCloud`
- physics_predictor: `predict_estimate(frames (T, H, W, 3) uint8, masks (T, H, W), size (m), volume (m^3), fps,
  known_mass (kg)) -> PhysicsEstimate` (physics with one standard deviation per quantity)

Shipped: `physics_predictor.pt` (models/physics_predictor.py: CNN + temporal attention -> k/m, d/m, f with
uncertainty) and `gaussian_predictor.pt` (models/gaussian_predictor.py: a Splatter-Image-style U-Net; better shape
and volume than mask inflation, blurrier texture; weights/MODEL_CARD.md has the numbers).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..asset import PhysicsEstimate
from ..files import package_dir
from ..gaussians import GaussianCloud
from ..render import Camera
from .mask_inflation import inflate_mask
from .object_depth import DepthPrior

__all__ = ["GaussianPredictor", "PhysicsPredictor", "MaskInflationPredictor", "default_weights_dir",
           "load_gaussian_predictor", "load_physics_predictor"]

GAUSSIAN_PREDICTOR = "gaussian_predictor"
PHYSICS_PREDICTOR = "physics_predictor"


class GaussianPredictor(Protocol):
    name: str

    def predict(self, image: np.ndarray, mask: np.ndarray, camera: Camera, depth_prior: DepthPrior) -> GaussianCloud:
        ...


class PhysicsPredictor(Protocol):
    name: str

    def predict_estimate(self, frames: np.ndarray, masks: np.ndarray, size: float, volume: float, fps: float,
                         known_mass: float | None) -> PhysicsEstimate:
        """The physics of an object of size L (m, params.object_size of its anchors) and volume (m^3) seen at
        fps, with one standard deviation per quantity, scaled to `known_mass` (total, kg) when given; the pipeline
        uses it as the physics, or as the starting guess of test-time refinement."""
        ...


@dataclass
class MaskInflationPredictor:
    """The non-learned fallback: inflate the first frame's silhouette (models/mask_inflation.py)."""

    max_gaussians: int = 4000
    device: str = "cpu"
    name: str = "mask_inflation"

    def predict(self, image, mask, camera, depth_prior=DepthPrior()) -> GaussianCloud:
        return inflate_mask(image, mask, camera, depth_prior, max_gaussians=self.max_gaussians, device=self.device)


def default_weights_dir() -> str:
    return str(package_dir("weights"))


def _load_learned(name: str, weights_dir: str | None, device: str):
    """The learned predictor `name` when its checkpoint and module exist, else None."""
    path = os.path.join(weights_dir or default_weights_dir(), f"{name}.pt")
    if not os.path.isfile(path):
        return None
    try:
        module = importlib.import_module(f"reconphys_ros.core.models.{name}")
    except ImportError as exc:
        raise ValueError(f"weights {path} exist but the module reconphys_ros.core.models.{name} cannot be "
                         f"imported: {exc}") from exc
    return module.load(path, device)


def load_gaussian_predictor(weights_dir: str | None = None, device: str = "cpu", max_gaussians: int = 4000,
                            learned: bool | None = None) -> GaussianPredictor:
    """learned: None = the learned predictor when its weights are there, else mask inflation; True = the learned
    one or a ValueError; False = mask inflation."""
    predictor = None if learned is False else _load_learned(GAUSSIAN_PREDICTOR, weights_dir, device)
    if predictor is None and learned:
        raise ValueError(f"no {GAUSSIAN_PREDICTOR}.pt in {weights_dir or default_weights_dir()}: the learned "
                         "Gaussian predictor needs its weights (or choose mask inflation)")
    return predictor or MaskInflationPredictor(max_gaussians, device)


def load_physics_predictor(weights_dir: str | None = None, device: str = "cpu") -> PhysicsPredictor | None:
    """None means: estimate the physics by simulation alone (physics_by_simulation.estimate_physics)."""
    return _load_learned(PHYSICS_PREDICTOR, weights_dir, device)
