"""Objects of the synthetic data set: stable ids, splits by object, and their Gaussian clouds.

An object id fully determines the object (shape or mesh, texture, aspect): every random choice is seeded
by a hash of the id, so the same id is the same object in every run and at every data-set size.
Ids: `proc-<kind>-<index>` for procedural shapes and `mesh-<name>` for pybullet_data meshes
(`mesh-random_urdfs-005`). The split of an object is a function of its id alone, which makes splits
disjoint by construction; `mesh-duck` and `mesh-bunny` are always test objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from reconphys_ros.core.physics.anchors import object_seed
from training.data import meshes
from training.data.shapes import SHAPE_KINDS, random_shape
from training.data.textures import Texture, random_texture, texture_colors

SPLITS = ("train", "val", "test")
TEST_FRACTION = 0.10
VAL_FRACTION = 0.05
MESH_SLOTS = (1, 3)  # candidates i with i % 5 in MESH_SLOTS are meshes: 40 % real meshes
OPACITY = 0.95


def split_of(object_id: str) -> str:
    """The split an object belongs to (a pure function of its id)."""
    if object_id in {f"mesh-{name}" for name in meshes.RESERVED_TEST_MESHES}:
        return "test"
    u = object_seed(object_id + "/split") / 2.0**64
    return "test" if u < TEST_FRACTION else "val" if u < TEST_FRACTION + VAL_FRACTION else "train"


def _rng(object_id: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng(object_seed(f"{object_id}/{purpose}"))


def candidate_ids(use_meshes: bool = True):
    """Endless, fixed order of object ids: procedural shapes interleaved with meshes (named ones first)."""
    mesh_list = meshes.mesh_names() if use_meshes else []
    next_mesh = 0
    i = 0
    while True:
        if use_meshes and i % 5 in MESH_SLOTS and next_mesh < len(mesh_list):
            yield "mesh-" + mesh_list[next_mesh].replace("/", "-")
            next_mesh += 1
        else:
            kind = SHAPE_KINDS[int(_rng(f"proc-{i:05d}", "kind").integers(len(SHAPE_KINDS)))]
            yield f"proc-{kind}-{i:05d}"
        i += 1


def build_catalogue(num_train: int, num_val: int, num_test: int, use_meshes: bool = True) -> dict[str, list[str]]:
    """Object ids per split, taken in candidate order until each split is full."""
    wanted = {"train": num_train, "val": num_val, "test": num_test}
    for split, n in wanted.items():
        if int(n) != n or n < 0:
            raise ValueError(f"number of {split} objects must be a non-negative integer, got {n}")
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    max_candidates = 50 * (num_train + num_val + num_test) + 100
    for count, object_id in enumerate(candidate_ids(use_meshes)):
        if all(len(out[s]) >= wanted[s] for s in SPLITS):
            break
        if count > max_candidates:
            raise RuntimeError("could not fill the splits; fractions too small for the request")
        split = split_of(object_id)
        if len(out[split]) < wanted[split]:
            out[split].append(object_id)
    return out


@dataclass
class ObjectAsset:
    """Gaussians of one object at rest, in its own frame (bounding-box centre at the origin), metres."""

    object_id: str
    recipe: dict  # JSON-able description (shape dims or mesh name, texture, size)
    means: np.ndarray  # (N, 3) float32
    log_scales: np.ndarray  # (N, 3) float32
    quats: np.ndarray  # (N, 4) float32, wxyz
    colors: np.ndarray  # (N, 3) float32 in [0, 1]
    opacity_logits: np.ndarray  # (N,) float32

    @property
    def size(self) -> float:
        return float(self.recipe["size"])

    def to_gaussian_cloud(self, device="cpu"):
        import torch

        from reconphys_ros.core.gaussians import GaussianCloud

        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
        return GaussianCloud(t(self.means), t(self.log_scales), t(self.quats), t(self.colors), t(self.opacity_logits))


def _shape_points(shape, num: int, shell: float, rng: np.random.Generator, inside_only_shell: bool):
    """Rejection-sample `num` points with sdf < 0 (volume) or -shell < sdf < 0 (surface shell)."""
    half = shape.half_extent
    found, total = [], 0
    for _ in range(200):
        cand = rng.uniform(-half, half, size=(max(4 * num, 4096), 3))
        d = shape.sdf(cand)
        keep = (d < 0) & (d > -shell) if inside_only_shell else d < 0
        found.append(cand[keep])
        total += int(keep.sum())
        if total >= num:
            break
    points = np.concatenate(found)
    if len(points) < num:
        raise RuntimeError(f"shape {shape.kind} {shape.dims}: only {len(points)} of {num} points sampled")
    return points[:num]


def build_object(object_id: str, size: float, num_gaussians: int, surface_fraction: float = 0.7) -> ObjectAsset:
    """Gaussians on (surface) and in (volume) the object; colours from its texture.

    `size` is the longest dimension in metres. Plays the role of the paper's TRELLIS assets.
    """
    if not size > 0:
        raise ValueError(f"size must be positive, got {size}")
    if num_gaussians < 16:
        raise ValueError(f"num_gaussians must be >= 16, got {num_gaussians}")
    if not 0.0 < surface_fraction <= 1.0:
        raise ValueError(f"surface_fraction must be in (0, 1], got {surface_fraction}")
    rng = _rng(object_id, "points")
    texture: Texture = random_texture(_rng(object_id, "texture"))
    num_surface = int(round(num_gaussians * surface_fraction))
    num_volume = num_gaussians - num_surface
    if object_id.startswith("proc-"):
        kind = object_id.split("-")[1]
        shape = random_shape(_rng(object_id, "shape"), 1.0, kind)
        shell = 0.03
        surface = _shape_points(shape, num_surface, shell, rng, inside_only_shell=True) * size
        volume = _shape_points(shape, num_volume, shell, rng, inside_only_shell=False) * size
        surface_colors = None
        recipe = {"source": "procedural", "shape": shape.kind, "dims": shape.dims}
    elif object_id.startswith("mesh-"):
        name = object_id[5:]
        name = name.replace("random_urdfs-", "random_urdfs/")
        surface, surface_colors, volume = meshes.sample_mesh_points(name, size, num_surface, num_volume, rng)
        recipe = {"source": "pybullet_data", "mesh": name}
    else:
        raise ValueError(f"object id {object_id!r} must start with 'proc-' or 'mesh-'")
    points = np.concatenate([surface, volume])  # (N, 3)
    if surface_colors is None:
        colors = texture_colors(texture, points, size)
        recipe["texture"] = texture.as_dict()
    else:
        # Interior points take the colour of the nearest textured surface point.
        _, nearest = cKDTree(surface).query(volume)
        colors = np.concatenate([surface_colors, surface_colors[nearest]])
        recipe["texture"] = {"kind": "mesh_texture"}
    lo, hi = points.min(0), points.max(0)
    points = points - (lo + hi) / 2
    # Isotropic scale from the local spacing so neighbouring splats overlap without blurring the texture.
    dist, _ = cKDTree(points).query(points, k=4)
    sigma = np.clip(0.6 * dist[:, 1:].mean(1), 1e-3 * size, 0.05 * size)
    recipe["size"] = float(size)
    n = len(points)
    return ObjectAsset(
        object_id=object_id,
        recipe=recipe,
        means=points.astype(np.float32),
        log_scales=np.repeat(np.log(sigma)[:, None], 3, axis=1).astype(np.float32),
        quats=np.tile(np.array([1, 0, 0, 0], np.float32), (n, 1)),
        colors=np.clip(colors, 0, 1).astype(np.float32),
        opacity_logits=np.full(n, np.log(OPACITY / (1 - OPACITY)), np.float32),
    )
