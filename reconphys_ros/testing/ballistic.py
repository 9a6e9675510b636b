"""Exact silhouettes of a tossed, spinning body made of ellipsoids (ray-ellipsoid intersection per pixel): mask tracks
with a known frame-0 state for tests of the initial-state fit. After its lowest point reaches the ground the body
stays where it landed (an idealised, fully inelastic impact). A body of two unequal ellipsoids has a silhouette
centroid that wobbles as it spins."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reconphys_ros.core.models.initial_state import rotation_matrices
from reconphys_ros.core.physics.params import GRAVITY
from reconphys_ros.core.render import Camera

__all__ = ["Blob", "TossTrack", "toss_track", "ellipsoid_masks", "ellipsoid_points", "body_points"]


@dataclass(frozen=True)
class Blob:
    """One ellipsoid of a body: semi-axes (m) and its centre in the body frame (m, relative to the body's centre)."""

    radii: tuple
    offset: tuple = (0.0, 0.0, 0.0)


@dataclass
class TossTrack:
    masks: np.ndarray  # (T, H, W) uint8, 255 on the object
    centres: np.ndarray  # (T, 3) world centre per frame, m
    rotations: np.ndarray  # (T, 3, 3) body -> world per frame
    impact_frame: int | None  # first frame at or after the lowest point reaches z = 0 (None: not in the clip)


def _blobs(body) -> list:
    """A body: semi-axes (3,) of one ellipsoid, or a list of Blob."""
    if isinstance(body, (list, tuple)) and body and isinstance(body[0], Blob):
        return list(body)
    return [Blob(tuple(np.asarray(body, np.float64)))]


def _lowest(centre: np.ndarray, rotation: np.ndarray, body) -> float:
    """z of the body's lowest point (support function of each ellipsoid along -z)."""
    return float(min(centre[2] + (rotation @ np.asarray(b.offset))[2] - np.sqrt(np.sum((rotation[2] * b.radii) ** 2))
                     for b in _blobs(body)))


def ellipsoid_masks(camera: Camera, centres: np.ndarray, rotations: np.ndarray, body) -> np.ndarray:
    """(T, H, W) uint8 silhouettes of the body (semi-axes (3,) of one ellipsoid, or Blobs) at centres (T, 3) and
    rotations (T, 3, 3)."""
    K = camera.K.detach().cpu().double().numpy()
    w2c = camera.world_to_cam.detach().cpu().double().numpy()
    rot, trans = w2c[:3, :3], w2c[:3, 3]
    eye = -rot.T @ trans
    u, v = np.meshgrid(np.arange(camera.width) + 0.5, np.arange(camera.height) + 0.5)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ rot  # (H, W, 3) world
    masks = np.zeros((len(centres), camera.height, camera.width), np.uint8)
    for t, (centre, rotation) in enumerate(zip(centres, rotations)):
        for blob in _blobs(body):
            Q = rotation @ np.diag(1.0 / np.asarray(blob.radii, np.float64) ** 2) @ rotation.T
            o = eye - (centre + rotation @ np.asarray(blob.offset, np.float64))
            a = np.einsum("hwi,ij,hwj->hw", rays, Q, rays)
            b = 2.0 * rays @ (Q @ o)
            c = o @ Q @ o - 1.0
            masks[t][b * b - 4 * a * c >= 0.0] = 255
    return masks


def ellipsoid_points(radii, centre, rotation=np.eye(3), num: int = 2000, seed: int = 0) -> np.ndarray:
    """(num, 3) points uniform inside the ellipsoid (world)."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(num, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    pts *= rng.uniform(0, 1, (num, 1)) ** (1 / 3)
    return (pts * np.asarray(radii)) @ np.asarray(rotation).T + np.asarray(centre)


def body_points(body, centre, rotation=np.eye(3), num: int = 2000, seed: int = 0) -> np.ndarray:
    """(M, 3) points inside the body (each ellipsoid gets a share by volume), world frame."""
    blobs = _blobs(body)
    volumes = np.array([np.prod(b.radii) for b in blobs])
    counts = np.maximum((num * volumes / volumes.sum()).astype(int), 1)
    rotation = np.asarray(rotation, np.float64)
    parts = [ellipsoid_points(b.radii, np.asarray(centre) + rotation @ np.asarray(b.offset), rotation, n, seed + i)
             for i, (b, n) in enumerate(zip(blobs, counts))]
    return np.concatenate(parts)


def toss_track(camera: Camera, body, centre0, velocity, angular_velocity, rotation0=np.eye(3), fps: float = 30.0,
               num_frames: int = 20) -> TossTrack:
    """Ballistic flight of the body (semi-axes (3,) or Blobs, rotating about its `centre0`) with a constant spin
    until its lowest point touches z = 0, then at rest there."""
    g = np.asarray(GRAVITY)
    times = np.arange(num_frames) / fps
    centres = np.asarray(centre0, np.float64) + np.outer(times, velocity) + 0.5 * np.outer(times**2, g)
    rotations = rotation_matrices(np.outer(times, angular_velocity)) @ np.asarray(rotation0, np.float64)
    impact = None
    for t in range(num_frames):
        if _lowest(centres[t], rotations[t], body) <= 0.0:
            impact = t
            break
    if impact is not None:  # landed between frames impact-1 and impact: lies still from there on
        centres[impact:] = centres[impact]
        centres[impact:, 2] -= _lowest(centres[impact], rotations[impact], body)
        rotations[impact:] = rotations[impact]
    return TossTrack(ellipsoid_masks(camera, centres, rotations, body), centres, rotations, impact)
