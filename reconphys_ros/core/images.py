"""Image arrays without ROS: float colour -> uint8 frames, and sensor_msgs/Image buffers -> numpy (the nodes'
rclpy messages and the training stack's rosbags messages decode with the same function)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["IMAGE_ENCODINGS", "image_to_numpy", "to_uint8"]


def to_uint8(image) -> np.ndarray:
    """Colour in [0, 1] (numpy array or torch tensor, any shape) -> uint8 numpy, clipped and rounded half up."""
    if isinstance(image, torch.Tensor):
        return (image.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)

# encoding -> (dtype, channels)
IMAGE_ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "mono8": (np.uint8, 1),
    "32FC1": (np.float32, 1),
}


def image_to_numpy(msg, encoding: str | None = None) -> np.ndarray:
    """sensor_msgs/Image (rclpy's or rosbags' class: any object with encoding, height, width, step, data,
    is_bigendian) -> (H, W, 3) uint8, (H, W) uint8 or (H, W) float32 (a copy, native byte order).

    encoding: convert rgb8 <-> bgr8 on the way (None = keep the message's encoding)."""
    if msg.encoding not in IMAGE_ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    height, width = int(msg.height), int(msg.width)
    if height <= 0 or width <= 0:
        raise ValueError(f"image has no pixels: {width}x{height}")
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if msg.step < row_bytes:
        raise ValueError(f"image step {msg.step} is smaller than one row of {width} {msg.encoding} pixels "
                         f"({row_bytes} bytes)")
    expected = msg.step * height
    if len(msg.data) != expected:
        raise ValueError(f"image data has {len(msg.data)} bytes, expected step x height = {msg.step} x {height} "
                         f"= {expected} for {width}x{height} {msg.encoding}")
    raw = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, msg.step)[:, :row_bytes]
    big = bool(msg.is_bigendian)
    pixel_dtype = np.dtype(dtype).newbyteorder(">" if big else "<") if np.dtype(dtype).itemsize > 1 else dtype
    image = np.ascontiguousarray(raw).view(pixel_dtype).reshape(height, width, channels)
    image = image.astype(dtype, copy=True)  # native byte order, owned memory
    if channels == 1:
        image = image[:, :, 0]
    if encoding is not None and encoding != msg.encoding:
        if {encoding, msg.encoding} == {"rgb8", "bgr8"}:
            image = np.ascontiguousarray(image[:, :, ::-1])
        else:
            raise ValueError(f"cannot convert image from {msg.encoding!r} to {encoding!r}")
    return image
