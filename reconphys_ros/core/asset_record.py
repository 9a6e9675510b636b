"""The asset record: <object_id>.json, written next to <object_id>.ply by the reconstruction node, read back by the
demo and by users. One writer and one reader, so the two cannot drift apart.

JSON keys (stable: users read them):
- object_id
- physics (SI, PhysicsEstimate.derived): total_mass (kg), friction, stiffness_per_mass (1/s^2), damping_per_mass (1/s),
  size (m), stiffness_per_mass_at_1m, damping_per_mass_at_1m (the size-independent values), each with a *_std (one
  standard deviation); mass_given; paper: {mass, stiffness, damping, friction, std, convention} (derived, the
  paper's per-anchor / per-spring convention; ignored when read)
- num_gaussians, num_anchors, num_springs, binding: {neighbors, power}
- camera: {K (3x3), world_to_cam (4x4), width, height} (OpenCV convention, render/camera.py)
- frame_stamps (s, the clip handed to the pipeline), latency_s (last frame to the published asset)
- notes, timings (pipeline stage -> s)
- initial_motion (optional, null when unknown): the fitted motion at the first frame, world frame: velocity (m/s of
  the anchors' centroid), angular_velocity (rad/s about it), their *_std, depth and depth_std (m, camera frame),
  depth_trusted (false: a fallback depth, see notes), impact_time (s after the first frame, null: not in the clip)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from .asset import InitialMotion, PhysicsEstimate, SimAsset
from .files import atomic_write_text
from .render.camera import Camera

__all__ = ["AssetRecord", "PHYSICS_CONVENTION", "RECORD_KEYS", "read_asset_record", "write_asset_record"]

PHYSICS_CONVENTION = "paper: mass per anchor, k and d per spring, reference lattice 2048/K=256"
RECORD_KEYS = ("object_id", "physics", "num_gaussians", "num_anchors", "num_springs", "binding", "camera",
               "frame_stamps", "latency_s", "notes", "timings")


@dataclass
class AssetRecord:
    object_id: str
    physics: PhysicsEstimate
    num_gaussians: int
    num_anchors: int
    num_springs: int
    binding_neighbors: int  # n_b
    binding_power: float  # p_b
    camera: Camera  # the camera that took the clip
    frame_stamps: list[float]  # (T,) s
    latency_s: float
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    initial_motion: InitialMotion | None = None

    @classmethod
    def of_asset(cls, asset: SimAsset, camera: Camera, frame_stamps, latency_s: float, notes=(),
                 timings: dict | None = None) -> "AssetRecord":
        return cls(asset.object_id, asset.physics, asset.gaussians.num_gaussians, asset.num_anchors,
                   asset.num_springs, asset.binding_neighbors, asset.binding_power, camera,
                   np.asarray(frame_stamps, np.float64).tolist(), latency_s, list(notes), dict(timings or {}),
                   asset.initial_motion)

    def to_dict(self) -> dict:
        physics = self.physics
        return {
            "object_id": self.object_id,
            "physics": {**physics.derived(), "mass_given": physics.mass_given,
                        "paper": {**physics.params.to_dict(), "std": dict(physics.std),
                                  "convention": PHYSICS_CONVENTION}},
            "num_gaussians": self.num_gaussians,
            "num_anchors": self.num_anchors,
            "num_springs": self.num_springs,
            "binding": {"neighbors": self.binding_neighbors, "power": self.binding_power},
            "camera": {"K": self.camera.K.tolist(), "world_to_cam": self.camera.world_to_cam.tolist(),
                       "width": self.camera.width, "height": self.camera.height},
            "frame_stamps": list(self.frame_stamps),
            "latency_s": self.latency_s,
            "notes": list(self.notes),
            "timings": dict(self.timings),
            "initial_motion": None if self.initial_motion is None else self.initial_motion.to_dict(),
        }

    @classmethod
    def from_dict(cls, data) -> "AssetRecord":
        """The inverse of to_dict; raises ValueError naming what is missing or malformed."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        missing = [key for key in RECORD_KEYS if key not in data]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        ph, binding, cam = _section(data, "physics"), _section(data, "binding"), _section(data, "camera")
        if not isinstance(ph.get("mass_given"), bool):
            raise ValueError("physics needs a boolean 'mass_given'")
        missing = [k for k in ("total_mass", "stiffness_per_mass", "damping_per_mass", "friction", "size")
                   if k not in ph]
        if missing:
            raise ValueError(f"physics is missing {missing}")
        physics = PhysicsEstimate.from_si(ph["total_mass"], ph["stiffness_per_mass"], ph["damping_per_mass"],
                                          ph["friction"], ph["size"], {k: v for k, v in ph.items() if
                                                                       k.endswith("_std")},
                                          ph["mass_given"], ph.get("contact_damping", 0.0)).validate()
        camera = Camera(torch.tensor(cam["K"], dtype=torch.float32),
                        torch.tensor(cam["world_to_cam"], dtype=torch.float32), cam["width"], cam["height"])
        stamps = np.asarray(data["frame_stamps"], np.float64)
        if stamps.ndim != 1 or not np.isfinite(stamps).all():
            raise ValueError("frame_stamps must be a list of finite numbers")
        return cls(_object_id(data["object_id"]), physics, int(data["num_gaussians"]), int(data["num_anchors"]),
                   int(data["num_springs"]), int(binding["neighbors"]), float(binding["power"]), camera,
                   stamps.tolist(), float(data["latency_s"]), [str(n) for n in data["notes"]],
                   {str(k): float(v) for k, v in dict(data["timings"]).items()},
                   None if data.get("initial_motion") is None else InitialMotion.from_dict(data["initial_motion"]))


def _section(data: dict, key: str) -> dict:
    if not isinstance(data[key], dict):
        raise ValueError(f"'{key}' must be a JSON object, got {type(data[key]).__name__}")
    return data[key]


def _object_id(value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"object_id must be a string, got {value!r}")
    return value


def write_asset_record(path: str | os.PathLike, record: AssetRecord) -> None:
    """<object_id>.json, atomically (a reader never sees half a record; a crash leaves no partial file)."""
    atomic_write_text(path, json.dumps(record.to_dict(), indent=1, sort_keys=True, default=float))


def write_refusal_record(path: str | os.PathLike, object_id: str, reason: str, frame_stamps) -> None:
    """<object_id>.refused.json: a drop the pipeline refused (no asset was published), with the reason in words and
    the stamps of the clip it was given, so a refusal leaves a trace next to the assets."""
    data = {"object_id": str(object_id), "refused": str(reason),
            "frame_stamps": np.asarray(frame_stamps, np.float64).tolist()}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def read_asset_record(path: str | os.PathLike) -> AssetRecord:
    """The record written by write_asset_record; ValueError naming the file when it is truncated or corrupt."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{os.fspath(path)}: not a complete asset record (truncated or corrupt JSON: {exc})") \
            from None
    try:
        return AssetRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a valid asset record: {exc}") from None
