"""Real meshes from pybullet's `pybullet_data` (loaded with trimesh), normalised in size.

`duck` and `bunny` are reserved for evaluation (see `RESERVED_TEST_MESHES`): the split logic in
`objects.py` forces them into the test split.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

# name -> path relative to pybullet_data; single closed-ish objects that make sense as deformables.
NAMED_MESHES = {
    "duck": "duck.obj",
    "bunny": "bunny.obj",
    "teddy": "teddy2_VHACD_CHs.obj",
    "soccerball": "soccerball.obj",
    "torus": "torus/torus_textured.obj",
    "lego": "lego/lego.obj",
    "mug": "objects/mug.obj",
    "jenga": "jenga/jenga.obj",
    "domino": "domino/domino.obj",
    "textured_sphere": "textured_sphere_smooth.obj",
    "cube": "cube.obj",
}
RESERVED_TEST_MESHES = ("duck", "bunny")
NUM_RANDOM_URDFS = 1000


def pybullet_data_path() -> str:
    try:
        import pybullet_data
    except ImportError as exc:  # optional dependency: procedural objects still work without it
        raise ImportError("real meshes need pybullet_data: `pip install pybullet`") from exc
    return pybullet_data.getDataPath()


def mesh_names() -> list[str]:
    """All mesh names in a fixed order: named meshes first, then `random_urdfs/NNN`."""
    return list(NAMED_MESHES) + [f"random_urdfs/{i:03d}" for i in range(NUM_RANDOM_URDFS)]


def mesh_path(name: str) -> str:
    if name in NAMED_MESHES:
        rel = NAMED_MESHES[name]
    elif name.startswith("random_urdfs/") and name[13:].isdigit() and int(name[13:]) < NUM_RANDOM_URDFS:
        rel = f"{name}/{name[13:]}.obj"
    else:
        raise ValueError(f"unknown mesh {name!r}; use one of NAMED_MESHES or random_urdfs/000..999")
    path = os.path.join(pybullet_data_path(), rel)
    if not os.path.exists(path):
        raise FileNotFoundError(f"mesh {name!r} not found at {path}")
    return path


@lru_cache(maxsize=64)
def load_normalised_mesh(name: str):
    """The mesh centred on its bounding box with longest extent 1 (a trimesh.Trimesh)."""
    import trimesh

    mesh = trimesh.load(mesh_path(name), force="mesh", process=True)
    if len(mesh.faces) == 0:
        raise ValueError(f"mesh {name!r} has no faces")
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(1.0 / float((hi - lo).max()))
    return mesh


def has_texture(mesh) -> bool:
    material = getattr(mesh.visual, "material", None)
    return getattr(mesh.visual, "uv", None) is not None and getattr(material, "image", None) is not None


def sample_mesh_points(name: str, size: float, num_surface: int, num_volume: int, rng: np.random.Generator):
    """Surface and volume points of mesh `name` scaled to longest extent `size` (m).

    Returns (surface (S, 3), surface_colors (S, 3) or None when the mesh has no texture image, volume (V, 3)).
    Volume points come from a filled voxelisation (no ray casting library needed); meshes that are not
    closed fall back to jittered surface points pushed inwards.
    """
    import trimesh

    mesh = load_normalised_mesh(name)
    textured = has_texture(mesh)
    seed = int(rng.integers(2**31))
    if textured:
        surface, _, colors = trimesh.sample.sample_surface(mesh, num_surface, sample_color=True, seed=seed)
        colors = np.asarray(colors[:, :3], dtype=np.float32) / 255.0
    else:
        surface, _ = trimesh.sample.sample_surface(mesh, num_surface, seed=seed)
        colors = None
    pitch = 1.0 / 32
    filled = mesh.voxelized(pitch).fill().points
    if len(filled) < 8:
        filled = surface * 0.8
    pick = rng.integers(0, len(filled), num_volume)
    volume = filled[pick] + rng.uniform(-pitch / 2, pitch / 2, size=(num_volume, 3))
    return (surface * size).astype(np.float64), colors, (volume * size).astype(np.float64)
