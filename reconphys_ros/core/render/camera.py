"""Pinhole cameras in the OpenCV / ROS optical convention (x right, y down, z forward).

`K` is the 3x3 intrinsic matrix, `world_to_cam` the 4x4 extrinsic taking world points into the
camera frame. Pixel (u, v) has its centre at (u + 0.5, v + 0.5), as in gsplat and 3DGS.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

__all__ = ["Camera", "look_at", "orbit_cameras", "dataset_views", "focal_from_fov", "camera_from_calibration",
           "check_intrinsics", "FOV_RANGE_DEG", "PRINCIPAL_POINT_RANGE"]

# Plausible pinhole intrinsics: the full field of view across the image (each axis), degrees, and how far the principal
# point may lie from the image centre, in image sizes. Outside these a K is a unit, layout or calibration error (cx =
# 1e30 made assets 0.00 m across, fx = 1e-3 one 600 km across).
FOV_RANGE_DEG = (1.0, 170.0)
PRINCIPAL_POINT_RANGE = 2.0


def _as_tensor(value, shape: tuple[int, ...], name: str, device=None) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device)
    if tensor.numel() == math.prod(shape) and tuple(tensor.shape) != shape:
        tensor = tensor.reshape(shape)  # e.g. CameraInfo.k is a flat 9-vector
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} has non-finite values")
    return tensor


def check_intrinsics(K, width: int, height: int, name: str = "K") -> None:
    """Raise ValueError unless K (3x3) is a plausible pinhole intrinsic matrix for (width, height) images:
    finite, bottom row [0, 0, 1], K[1, 0] = 0 and zero skew K[0, 1] (the renderers ignore skew), principal point
    within PRINCIPAL_POINT_RANGE image sizes of the image centre, and a field of view within FOV_RANGE_DEG across
    each image axis (so positive focal lengths)."""
    k = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
    if k.size == 9:
        k = k.reshape(3, 3)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        raise ValueError(f"{name} must be a finite 3x3 matrix, got {k.tolist()}")
    if not np.allclose(k[2], [0.0, 0.0, 1.0], rtol=0.0, atol=1e-6) or abs(k[1, 0]) > 1e-6:
        raise ValueError(f"{name} is not a pinhole intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]: bottom row "
                         f"{k[2].tolist()} (must be [0, 0, 1]), K[1][0] = {k[1, 0]:g} (must be 0)")
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{name} focal lengths must be positive, got fx={fx:g}, fy={fy:g}")
    if abs(k[0, 1]) > 1e-6 * max(fx, fy):
        raise ValueError(f"{name} has skew K[0][1] = {k[0, 1]:g}: only zero-skew cameras are supported (the renderers "
                         "ignore skew); rectify the images first")
    lo, hi = FOV_RANGE_DEG
    for axis, focal, size in (("horizontal", fx, width), ("vertical", fy, height)):
        fov = math.degrees(2.0 * math.atan(0.5 * size / focal))
        if not lo <= fov <= hi:
            raise ValueError(f"{name}: focal length {focal:g} px gives a {axis} field of view of {fov:.3g} degrees "
                             f"across {size} px; a real camera has {lo:g}-{hi:g} (is K calibrated for another image "
                             "size, or in other units?)")
    r = PRINCIPAL_POINT_RANGE
    if abs(cx - 0.5 * width) > r * width or abs(cy - 0.5 * height) > r * height:
        raise ValueError(f"{name}: principal point ({cx:g}, {cy:g}) lies more than {r:g} image sizes from the centre "
                         f"of the {width}x{height} image")


@dataclass
class Camera:
    K: torch.Tensor  # (3, 3) float32 intrinsics
    world_to_cam: torch.Tensor  # (4, 4) float32 extrinsics
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K = _as_tensor(self.K, (3, 3), "Camera.K")
        self.world_to_cam = _as_tensor(self.world_to_cam, (4, 4), "Camera.world_to_cam", device=self.K.device)
        if int(self.width) != self.width or int(self.height) != self.height or self.width <= 0 or self.height <= 0:
            raise ValueError(f"Camera width/height must be positive integers, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)
        check_intrinsics(self.K, self.width, self.height, "Camera.K")
        bottom = self.world_to_cam[3].cpu()
        if not torch.allclose(bottom, torch.tensor([0.0, 0.0, 0.0, 1.0]), atol=1e-6):
            raise ValueError(f"Camera.world_to_cam last row must be [0, 0, 0, 1], got {bottom.tolist()}")
        rot = self.world_to_cam[:3, :3].double().cpu()
        if not torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-4):
            raise ValueError("Camera.world_to_cam rotation block is not orthonormal")

    @property
    def device(self) -> torch.device:
        return self.K.device

    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def cam_to_world(self) -> torch.Tensor:  # (4, 4)
        rot, trans = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        out = torch.eye(4, dtype=self.world_to_cam.dtype, device=self.device)
        out[:3, :3] = rot.T
        out[:3, 3] = -rot.T @ trans
        return out

    @property
    def center(self) -> torch.Tensor:  # (3,) camera position in the world
        return self.cam_to_world[:3, 3]

    def to(self, device: torch.device | str) -> "Camera":
        return Camera(self.K.to(device), self.world_to_cam.to(device), self.width, self.height)

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points (..., 3) -> pixel coordinates (..., 2) and camera depths (...,)."""
        rot, trans = self.world_to_cam[:3, :3].to(points), self.world_to_cam[:3, 3].to(points)
        cam = points @ rot.T + trans
        uv = cam @ self.K.to(points).T
        return uv[..., :2] / cam[..., 2:3], cam[..., 2]

    @staticmethod
    def from_camera_info(K, width: int, height: int, world_to_cam=None, device=None) -> "Camera":
        """From a sensor_msgs/CameraInfo-like K (flat 9 or 3x3) and an optional world->camera
        transform (identity: the world is the camera's optical frame)."""
        K = _as_tensor(K, (3, 3), "CameraInfo K", device=device)
        w2c = torch.eye(4) if world_to_cam is None else world_to_cam
        return Camera(K, _as_tensor(w2c, (4, 4), "world_to_cam", device=K.device), int(width), int(height))


def focal_from_fov(fov_deg: float, size: int) -> float:
    """Focal length in pixels for a full field of view `fov_deg` across `size` pixels."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
    return 0.5 * size / math.tan(math.radians(fov_deg) / 2.0)


def _intrinsics(fx: float, fy: float | None, width: int, height: int, cx: float | None, cy: float | None) -> torch.Tensor:
    fy = fx if fy is None else fy
    if fx <= 0 or fy <= 0:
        raise ValueError(f"focal lengths must be positive, got fx={fx}, fy={fy}")
    cx = width / 2.0 if cx is None else cx
    cy = height / 2.0 if cy is None else cy
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32)


def look_at(
    eye: Sequence[float],
    target: Sequence[float],
    up: Sequence[float] = (0.0, 0.0, 1.0),
    fx: float = 500.0,
    fy: float | None = None,
    width: int = 512,
    height: int = 512,
    cx: float | None = None,
    cy: float | None = None,
) -> Camera:
    """Camera at `eye` looking at `target`, image 'up' along -y as close to world `up` as possible."""
    eye_t = torch.as_tensor(eye, dtype=torch.float64)
    forward = torch.as_tensor(target, dtype=torch.float64) - eye_t
    if forward.norm() < 1e-9:
        raise ValueError("look_at: eye and target coincide")
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, torch.as_tensor(up, dtype=torch.float64))
    if right.norm() < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to `up`; pick another up vector")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    w2c = torch.eye(4, dtype=torch.float64)
    w2c[:3, :3] = rot
    w2c[:3, 3] = -rot @ eye_t
    return Camera(_intrinsics(fx, fy, width, height, cx, cy), w2c.float(), width, height)


def camera_from_calibration(
    K,
    calibrated_size: tuple[int, int],
    image_size: tuple[int, int],
    cam_to_world=None,
    eye: Sequence[float] | None = None,
    target: Sequence[float] | None = None,
) -> Camera:
    """The camera that took (width, height) = `image_size` images: intrinsics K (3x3, calibrated at
    `calibrated_size`), placed by `cam_to_world` (4x4, the camera optical frame in the world, e.g. a camera pose)
    when known, else at `eye` looking at `target`. Raises ValueError when the sizes differ (K would not fit)."""
    (info_w, info_h), (width, height) = calibrated_size, image_size
    if (info_w, info_h) != (width, height):
        raise ValueError(f"camera_info is {info_w}x{info_h} but the images are {width}x{height}")
    if cam_to_world is not None:
        w2c = np.linalg.inv(cam_to_world)
    elif eye is not None and target is not None:
        w2c = look_at(eye, target).world_to_cam.numpy()
    else:
        raise ValueError("camera_from_calibration needs cam_to_world, or eye and target")
    return Camera.from_camera_info(K, width, height, w2c)


def orbit_cameras(
    target: Sequence[float],
    distance: float,
    elevation_deg: float,
    num_views: int,
    fx: float,
    width: int,
    height: int,
    start_azimuth_deg: float = 0.0,
    fy: float | None = None,
) -> list[Camera]:
    """`num_views` cameras evenly spaced in azimuth on a circle around `target` (z up)."""
    if num_views < 1 or distance <= 0:
        raise ValueError(f"orbit_cameras needs num_views >= 1 and distance > 0, got {num_views}, {distance}")
    if not -90.0 < elevation_deg < 90.0:
        raise ValueError(f"elevation must be in (-90, 90) degrees, got {elevation_deg}")
    elev = math.radians(elevation_deg)
    cams = []
    for i in range(num_views):
        az = math.radians(start_azimuth_deg + 360.0 * i / num_views)
        offset = (distance * math.cos(elev) * math.cos(az), distance * math.cos(elev) * math.sin(az), distance * math.sin(elev))
        eye = [t + o for t, o in zip(target, offset)]
        cams.append(look_at(eye, target, (0.0, 0.0, 1.0), fx, fy, width, height))
    return cams


def dataset_views(
    target: Sequence[float] = (0.0, 0.0, 0.5),
    distance: float = 3.0,
    height: float = 1.0,
    fov_deg: float | None = 40.0,
    width: int = 512,
    image_height: int = 512,
    focal: float | None = None,
) -> list[Camera]:
    """The dataset's 4 orthogonal views: cameras at horizontal `distance` from `target` along +x, +y,
    -x, -y, at absolute height `height` above the ground plane z = 0, all looking at `target`.
    Give either `fov_deg` (horizontal field of view) or `focal` (pixels)."""
    if focal is None:
        if fov_deg is None:
            raise ValueError("dataset_views needs fov_deg or focal")
        focal = focal_from_fov(fov_deg, width)
    if distance <= 0:
        raise ValueError(f"distance must be positive, got {distance}")
    cams = []
    for az in (0.0, 90.0, 180.0, 270.0):
        a = math.radians(az)
        eye = (target[0] + distance * math.cos(a), target[1] + distance * math.sin(a), height)
        cams.append(look_at(eye, target, (0.0, 0.0, 1.0), focal, None, width, image_height))
    return cams
