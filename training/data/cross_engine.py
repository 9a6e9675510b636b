"""Cross-engine validation set (issue 16): soft bodies simulated and rendered by pybullet, not by this project.

Every clip comes from Bullet's FEM deformables (stable Neo-Hookean tetrahedra, implicit solver) and pybullet's
own CPU renderer (TinyRenderer), so a model trained on the project's spring-mass + Gaussian data is tested on
dynamics and images it has never seen. Objects are the project's procedural shapes (training/data/shapes.py)
at real sizes (5-40 cm), tetrahedralised here (voxel grid, 6 tets per cube, surface nodes snapped to the
shape), textured with the project's solid textures (baked into a per-triangle texture atlas). Each shape
comes as a pair: a soft and a stiff version (Lame parameters mu and lambda 5-10x apart), otherwise identical
(shape, size, mass, friction, damping time, initial state). Half of the pairs are dropped from rest, half
tossed with spin.

Written in the project's data set format (training/data/storage.py, split "test"), readable by
`training.data.dataset.SyntheticDataset`. Differences from the synthetic set: `anchors` are the FEM nodes
(true trajectories), there are no Gaussian arrays, `params` is null (no truth in the project's convention;
the engine's own parameters are in meta["engine_params"]), `background_rgb` (V, H, W, 3) uint8 holds each view
rendered without the object, and `tets` / `surface_faces` give the node connectivity.

Rendering: TinyRenderer draws soft bodies in DIRECT mode (their render mesh, updated at every step) and its
segmentation buffer marks them with the body id, so each frame is the engine's own image of its own state:
rgb composited on pybullet_data's plane (no shadows, so pixels off the object equal `background_rgb`), alpha
from the segmentation (0/1), depth from the linearised z-buffer. The render mesh is an OBJ of the tet surface
loaded with the tets as `simFileName`, which keeps its UVs. K / world_to_cam come from pybullet's view and
projection matrices, with TinyRenderer's half-pixel offset (see `opencv_camera`).

pybullet is an optional dependency of this script only; it is imported inside the functions that use it.
Run `python -m training.data.cross_engine --help`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from training.data.generate import float_range
from training.data.params import quaternion_to_matrix, random_quaternion
from training.data.shapes import SHAPE_KINDS, ProceduralShape, random_shape
from training.data.storage import MANIFEST_FILE, META_FILE, read_meta, sha256_file, write_json, write_sample
from training.data.textures import TEXTURE_KINDS, Texture, random_texture, texture_colors

GRAVITY = 9.81
FPS = 30.0
NUM_VIEWS = 4
GENERATION_FILE = "generation.json"
NEAR, FAR = 0.02, 20.0  # clip planes of the pybullet projection (m)
ATLAS_CELL = 8  # texels per triangle cell of the texture atlas
PATTERNED_TEXTURES = tuple(k for k in TEXTURE_KINDS if k != "solid")  # a uniform colour hides deformation


@contextlib.contextmanager
def _quiet(fds=(1,)):
    """Silence C-level output on file descriptors `fds`: Bullet printf()s mesh statistics to stdout when it loads
    a soft body, and pybullet writes its build time to stderr when imported."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        try:
            import ctypes

            ctypes.CDLL(None).fflush(None)  # C stdio buffers, or the text comes out after the fds are back
        except (OSError, AttributeError):
            pass
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def _import_pybullet():
    try:
        with _quiet((1, 2)):  # the build-time banner; an ImportError is raised, not printed
            import pybullet
        import pybullet_data
    except ImportError as exc:
        raise ImportError("training.data.cross_engine needs pybullet (`pip install pybullet`); it is an optional "
                          "dependency of this script only") from exc
    return pybullet, pybullet_data


def pybullet_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pybullet")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------------------------
# configuration and plan


@dataclass(frozen=True)
class CrossEngineConfig:
    """Everything that shapes the data set besides the seed (recorded in generation.json and the manifest)."""

    pairs: int = 12
    resolution: int = 128
    num_frames: int = 30
    substeps: int = 20  # least steps per frame (dt = 1/600 s); raised per pair, see `required_substeps`
    max_substeps: int = 200
    max_nodes: int = 500
    size_range: tuple = (0.05, 0.40)  # m, longest dimension
    density_range: tuple = (80.0, 300.0)  # kg/m^3 (foam to soft rubber toys)
    drop_gap: tuple = (0.2, 0.8)  # m between the lowest point and the ground at t = 0
    toss_up_speed: tuple = (1.0, 2.5)  # m/s
    sideways_speed: tuple = (0.3, 1.0)  # m/s, roughly across the input view
    spin: tuple = (2.0, 5.0)  # rad/s about a random axis
    soft_strain: tuple = (0.5, 0.7)  # target impact strain of the soft version (sets its mu, see `_materials`)
    stiff_factor: tuple = (5.0, 10.0)  # mu and lambda of the stiff version / the soft one
    poisson: tuple = (0.3, 0.4)
    damping_ratio: tuple = (0.1, 0.3)  # of the soft version's first elastic mode; sets NeoHookeanDamping
    friction: tuple = (0.4, 0.9)  # soft body frictionCoeff (the ground's own friction is set to 1)
    fov_deg: tuple = (40.0, 50.0)
    elevation_deg: tuple = (20.0, 40.0)
    distance_m: tuple = (1.0, 2.0)  # camera to the centre of the motion: the nearest that frames it (see frame_cameras)
    # "stiffness": each pair is a soft and a stiff version; "damping" (issue 20): a low- and a high-damping version
    # of the soft material, the high one's damping time damping_factor x the low one's
    pair_kind: str = "stiffness"
    damping_factor: tuple = (8.0, 16.0)

    def validate(self) -> "CrossEngineConfig":
        if self.pairs < 1:
            raise ValueError(f"pairs must be >= 1, got {self.pairs}")
        if not 16 <= self.resolution <= 2048:
            raise ValueError(f"resolution must be in [16, 2048], got {self.resolution}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if not 1 <= self.substeps <= self.max_substeps:
            raise ValueError(f"substeps must be in [1, max_substeps={self.max_substeps}], got {self.substeps}")
        if self.max_nodes < 8:
            raise ValueError(f"max_nodes must be >= 8, got {self.max_nodes}")
        for name in ("size_range", "density_range", "drop_gap", "toss_up_speed", "sideways_speed", "spin",
                     "soft_strain", "stiff_factor", "poisson", "damping_ratio", "friction", "fov_deg",
                     "elevation_deg", "distance_m"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi < float("inf"):
                raise ValueError(f"{name} must satisfy 0 <= min <= max, got {(lo, hi)}")
        if self.size_range[0] <= 0 or self.drop_gap[0] <= 0 or self.soft_strain[0] <= 0:
            raise ValueError("size, drop gap and soft strain must be positive")
        if self.stiff_factor[0] < 4:
            raise ValueError(f"stiff_factor must be >= 4 (a pair must differ clearly), got {self.stiff_factor}")
        if self.poisson[1] >= 0.5:
            raise ValueError(f"poisson ratio must be < 0.5, got {self.poisson}")
        if self.pair_kind not in PAIR_KINDS:
            raise ValueError(f"pair_kind must be one of {PAIR_KINDS}, got {self.pair_kind!r}")
        if self.damping_factor[0] < 4 or self.damping_factor[1] < self.damping_factor[0]:
            raise ValueError(f"damping_factor must satisfy 4 <= min <= max (a pair must differ clearly), got "
                             f"{self.damping_factor}")
        return self

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ClipSpec:
    """One clip: a shape, its material and its initial state (both members of a pair share all but mu/lambda)."""

    sample_id: str
    object_id: str  # = pair id: the soft and the stiff clip are one object
    seed: int  # per pair
    kind: str
    dims: dict = field(hash=False)  # shape recipe at unit size (shapes.ProceduralShape)
    size: float = 0.1  # m, longest dimension
    texture: dict = field(default_factory=dict, hash=False)  # Texture.as_dict()
    stiffness: str = "soft"  # "soft" | "stiff"
    damping_level: str = ""  # damping pairs: "low" | "high" (both of the soft material); "" in stiffness pairs
    mu: float = 1e3  # Pa
    lam: float = 1e3  # Pa
    damping: float = 0.005  # s: NeoHookeanDamping, a time (damping moduli = damping x mu, damping x lambda)
    friction: float = 0.5
    density: float = 200.0  # kg/m^3 (the total mass follows from the tet mesh volume)
    motion: str = "drop"  # "drop" | "toss"
    orientation: tuple = (1.0, 0.0, 0.0, 0.0)  # wxyz applied to the rest shape
    drop_gap: float = 0.3  # m
    velocity: tuple = (0.0, 0.0, 0.0)  # m/s of the centre of mass
    angular_velocity: tuple = (0.0, 0.0, 0.0)  # rad/s (world)
    azimuth_deg: float = 0.0  # input view; views 1-3 at +90, +180, +270
    elevation_deg: tuple = (30.0, 30.0, 30.0, 30.0)
    fov_deg: float = 45.0
    stiff_factor: float = 8.0
    poisson: float = 0.35


def _pair_seed(seed: int, pair: int) -> int:
    from reconphys_ros.core.physics import object_seed

    return object_seed(f"cross_engine/{seed}/{pair}") % (2**31)


def _uniform(rng, bounds) -> float:
    return float(rng.uniform(*bounds))


def _log_uniform(rng, bounds) -> float:
    lo, hi = bounds
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _materials(rng, config: CrossEngineConfig, size: float, density: float, impact_height: float):
    """(mu_soft, lambda_soft, stiff_factor, poisson, damping time) of a pair.

    The soft mu is set so the impact visibly squashes it: the kinetic energy density at impact, rho g h, stored
    as elastic energy ~ mu strain^2 gives strain ~ sqrt(rho g h / mu) (a rough guide: measured peak compressions
    come out at about half the target). A floor keeps it from sagging more than ~10 % under its own weight
    (rho g L / mu). The stiff version multiplies mu and lambda by 5-10.

    Bullet's damping is a time tau (damping stress = tau x elastic moduli x strain rate), so a fixed tau damps a
    small object's faster modes far more: tau = 2 zeta / omega with omega = pi c / L, c = sqrt(mu / rho), gives
    the soft version damping ratio zeta; the stiff one, sharing tau, gets zeta x sqrt(stiff_factor).
    """
    strain = _uniform(rng, config.soft_strain)
    mu = max(density * GRAVITY * impact_height / strain**2, density * GRAVITY * size / 0.1)
    nu = _uniform(rng, config.poisson)
    lam = 2.0 * mu * nu / (1.0 - 2.0 * nu)
    omega = math.pi * math.sqrt(mu / density) / size
    tau = 2.0 * _uniform(rng, config.damping_ratio) / omega
    return mu, lam, _log_uniform(rng, config.stiff_factor), nu, tau


def plan_clips(config: CrossEngineConfig, seed: int = 0) -> list[ClipSpec]:
    """Two clips (soft, stiff) per pair; pair i uses shape kind i mod 7 and draws everything else from its seed.
    Even pairs are drops, odd pairs tosses; sizes are stratified log-uniformly over size_range."""
    config.validate()
    order = np.random.default_rng(seed).permutation(config.pairs)
    lo, hi = (math.log(s) for s in config.size_range)
    specs = []
    for i in range(config.pairs):
        pair_seed = _pair_seed(seed, i)
        rng = np.random.default_rng(pair_seed)
        kind = SHAPE_KINDS[i % len(SHAPE_KINDS)]
        object_id = f"xe-{kind}-{i:02d}"
        # stratified: pair i gets a random size inside its own slice of the log range
        size = float(math.exp(lo + (order[i] + rng.uniform()) / config.pairs * (hi - lo)))
        shape = random_shape(rng, 1.0, kind)
        texture = random_texture(rng, PATTERNED_TEXTURES[int(rng.integers(len(PATTERNED_TEXTURES)))])
        density = _log_uniform(rng, config.density_range)
        motion = "drop" if i % 2 == 0 else "toss"
        gap = _uniform(rng, config.drop_gap)
        azimuth = _uniform(rng, (0.0, 360.0))
        if motion == "toss":
            up = _uniform(rng, config.toss_up_speed)
            # sideways roughly across the input view (within +-45 deg of its image x axis) so it stays in view
            heading = math.radians(azimuth + 90.0 + 180.0 * int(rng.integers(2)) + rng.uniform(-45.0, 45.0))
            side = _uniform(rng, config.sideways_speed)
            velocity = (side * math.cos(heading), side * math.sin(heading), up)
            axis = rng.normal(size=3)
            angular = tuple(float(a) for a in axis / np.linalg.norm(axis) * _uniform(rng, config.spin))
        else:
            up, velocity, angular = 0.0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
        impact_height = gap + up**2 / (2 * GRAVITY)
        mu, lam, factor, nu, tau = _materials(rng, config, size, density, impact_height)
        common = dict(
            object_id=object_id, seed=pair_seed, kind=kind, dims=shape.dims, size=size, texture=texture.as_dict(),
            damping=tau, friction=_uniform(rng, config.friction),
            density=density, motion=motion, orientation=tuple(float(q) for q in random_quaternion(rng)),
            drop_gap=gap, velocity=tuple(float(v) for v in velocity), angular_velocity=angular,
            azimuth_deg=azimuth, elevation_deg=tuple(_uniform(rng, config.elevation_deg) for _ in range(NUM_VIEWS)),
            fov_deg=_uniform(rng, config.fov_deg), stiff_factor=factor, poisson=nu)
        if config.pair_kind == "damping":  # its draw comes last: stiffness pairs of a seed stay as they were
            damping_factor = _log_uniform(rng, config.damping_factor)
            specs.append(ClipSpec(sample_id=f"{object_id}_lowdamp", stiffness="soft", damping_level="low", mu=mu,
                                  lam=lam, **common))
            common["damping"] = tau * damping_factor
            specs.append(ClipSpec(sample_id=f"{object_id}_highdamp", stiffness="soft", damping_level="high", mu=mu,
                                  lam=lam, **common))
            continue
        specs.append(ClipSpec(sample_id=f"{object_id}_soft", stiffness="soft", mu=mu, lam=lam, **common))
        specs.append(ClipSpec(sample_id=f"{object_id}_stiff", stiffness="stiff", mu=mu * factor, lam=lam * factor,
                              **common))
    return specs


# ---------------------------------------------------------------------------------------------------------------
# tetrahedral mesh

# Kuhn / Freudenthal split of a cube into 6 tets along its main diagonal: every cube face is cut along the
# diagonal through its lowest corner, so neighbouring cubes share faces exactly (a conforming mesh).
_KUHN_PATHS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


def _tet_volumes(nodes: np.ndarray, tets: np.ndarray) -> np.ndarray:
    a, b, c, d = (nodes[tets[:, i]] for i in range(4))
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) / 6.0  # (M,)


def _voxel_tets(shape: ProceduralShape, cells: int):
    """nodes (N, 3), tets (M, 4) of the cubes (edge 2 max(half_extent) / cells) whose centres are inside."""
    from scipy import ndimage

    half = shape.half_extent
    h = 2.0 * float(half.max()) / cells
    counts = np.maximum(np.ceil(2.0 * half / h - 1e-9).astype(int), 1)  # cubes per axis
    origin = -counts * h / 2.0
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in counts), indexing="ij"), -1).reshape(-1, 3)
    inside = (shape.sdf(origin + (idx + 0.5) * h) < 0).reshape(tuple(counts))
    labels, num = ndimage.label(inside)  # face connectivity: thin bridges would make loose parts
    if num == 0:
        return np.zeros((0, 3)), np.zeros((0, 4), np.int64), h
    largest = 1 + int(np.argmax(ndimage.sum(inside, labels, range(1, num + 1))))
    cubes = np.argwhere(labels == largest)  # (C, 3)
    corner_id = np.full(tuple(counts + 1), -1, np.int64)
    tets = []
    for path in _KUHN_PATHS:
        corner = cubes.copy()
        tet = [corner.copy()]
        for axis in path:
            corner[:, axis] += 1
            tet.append(corner.copy())
        tets.append(np.stack(tet, 1))  # (C, 4, 3) grid corners
    tets = np.concatenate(tets)  # (6C, 4, 3)
    flat = tets.reshape(-1, 3)
    used = np.unique(flat, axis=0)
    corner_id[tuple(used.T)] = np.arange(len(used))
    nodes = origin + used * h
    tets = corner_id[tuple(flat.T)].reshape(-1, 4)
    flip = _tet_volumes(nodes, tets) < 0  # odd paths are negatively oriented
    tets[flip] = tets[flip][:, [0, 2, 1, 3]]
    return nodes, tets, h


def boundary_faces(nodes: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """(F, 3) triangles of the tet mesh surface, counter-clockwise seen from outside (outward normals)."""
    faces = np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 3, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 1]]])
    opposite = np.concatenate([tets[:, 0], tets[:, 1], tets[:, 2], tets[:, 3]])
    _, inverse, counts = np.unique(np.sort(faces, axis=1), axis=0, return_inverse=True, return_counts=True)
    once = counts[inverse.ravel()] == 1
    faces, opposite = faces[once], opposite[once]
    a, b, c = (nodes[faces[:, i]] for i in range(3))
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), nodes[opposite] - a) > 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    return faces


def _snap_to_surface(shape: ProceduralShape, nodes: np.ndarray, tets: np.ndarray, h: float) -> np.ndarray:
    """Move the surface nodes onto the shape's zero level set (a voxel staircase looks and rolls wrong).

    Newton steps on the SDF (gradient by central differences over half a cell: robust for the rasterised
    letters); moves are capped at one cell. Nodes of tets that would flatten below 20 % of their volume
    (slivers stiffen the implicit solve) take a smaller share of their move, in steps of a quarter.
    """
    surface = np.unique(boundary_faces(nodes, tets))
    x = nodes[surface].copy()
    eps = 0.5 * h
    for _ in range(4):
        d = shape.sdf(x)
        grad = np.stack([(shape.sdf(x + e) - shape.sdf(x - e)) / (2 * eps) for e in np.eye(3) * eps], 1)
        g2 = np.maximum((grad**2).sum(1, keepdims=True), 1e-6)
        x = x - np.clip(d[:, None] * grad / g2, -h, h)
    move = np.zeros_like(nodes)
    move[surface] = x - nodes[surface]
    norm = np.linalg.norm(move, axis=1, keepdims=True)
    move *= np.minimum(1.0, h / np.maximum(norm, 1e-12))
    share = np.full(len(nodes), 4)  # quarters of the move each node takes
    rest = h**3 / 6.0
    for _ in range(200):
        out = nodes + move * (share[:, None] / 4.0)
        bad = _tet_volumes(out, tets) < 0.2 * rest
        if not bad.any():
            return out
        share[np.unique(tets[bad])] -= 1
        share = np.maximum(share, 0)
    return nodes


def tet_mesh(shape: ProceduralShape, size: float, max_nodes: int = 500, max_cells: int = 12):
    """Tetrahedral mesh of `shape` scaled to longest dimension `size` (m), centred on its bounding box.

    Uses the finest voxel grid (at most `max_cells` cubes across) with at most `max_nodes` nodes.
    Returns nodes (N, 3) float64, tets (M, 4) int64 positively oriented, cells across.
    """
    for cells in range(max_cells, 1, -1):
        nodes, tets, h = _voxel_tets(shape, cells)
        if 4 <= len(nodes) <= max_nodes and len(tets):
            break
    else:
        raise ValueError(f"no voxel mesh of {shape.kind} with 4..{max_nodes} nodes")
    nodes = _snap_to_surface(shape, nodes, tets, h)
    lo, hi = nodes.min(0), nodes.max(0)
    nodes = (nodes - (lo + hi) / 2) * (size / float((hi - lo).max()))
    if (_tet_volumes(nodes, tets) <= 0).any():
        raise ValueError(f"inverted tet in the mesh of {shape.kind}")
    return nodes, tets, cells


# ---------------------------------------------------------------------------------------------------------------
# files for pybullet


def write_vtk(path: str, nodes: np.ndarray, tets: np.ndarray) -> None:
    """Legacy ASCII VTK unstructured grid of tets (cell type 10). Bullet's reader wants one point per line."""
    lines = ["# vtk DataFile Version 2.0", "reconphys_ros cross-engine tet mesh", "ASCII", "DATASET UNSTRUCTURED_GRID",
             f"POINTS {len(nodes)} double"]
    lines += [f"{x:.9f} {y:.9f} {z:.9f}" for x, y, z in nodes]
    lines += ["", f"CELLS {len(tets)} {5 * len(tets)}"]
    lines += [f"4 {a} {b} {c} {d}" for a, b, c, d in tets]
    lines += ["", f"CELL_TYPES {len(tets)}"] + ["10"] * len(tets)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def texture_atlas(rest_nodes: np.ndarray, faces: np.ndarray, texture: Texture, size: float):
    """Bake a solid texture onto the surface: one ATLAS_CELL^2 texel cell per triangle.

    rest_nodes (N, 3) in the object frame (the texture moves with the material), faces (F, 3).
    Returns the image (S, S, 3) uint8 and per-corner UVs (F, 3, 2) in OBJ convention (v up).
    """
    F = len(faces)
    grid = int(math.ceil(math.sqrt(F)))
    S = grid * ATLAS_CELL
    m = 0.75 / ATLAS_CELL  # keep corners off the cell border: nearest-texel lookups stay in the cell
    local = np.array([[m, m], [1 - m, m], [m, 1 - m]])  # (3, 2) corner positions in the cell, (x right, y down)
    t = (np.arange(ATLAS_CELL) + 0.5) / ATLAS_CELL
    tx, ty = np.meshgrid(t, t)  # (c, c) texel centres, y down
    l1 = np.clip((tx - m) / (1 - 2 * m), 0, 1)
    l2 = np.clip((ty - m) / (1 - 2 * m), 0, 1)
    over = np.maximum(l1 + l2, 1.0)  # texels outside the triangle take the nearest edge's colour
    l1, l2 = l1 / over, l2 / over
    bary = np.stack([1 - l1 - l2, l1, l2], -1).reshape(-1, 3)  # (c*c, 3)
    points = np.einsum("kj,fjd->fkd", bary, rest_nodes[faces])  # (F, c*c, 3)
    colors = texture_colors(texture, points.reshape(-1, 3), size).reshape(F, ATLAS_CELL, ATLAS_CELL, 3)
    image = np.zeros((S, S, 3), np.float32)
    rows, cols = np.divmod(np.arange(F), grid)
    for f in range(F):  # F <= ~1500: a plain loop is clearer than fancy indexing
        r, c = rows[f], cols[f]
        image[r * ATLAS_CELL:(r + 1) * ATLAS_CELL, c * ATLAS_CELL:(c + 1) * ATLAS_CELL] = colors[f]
    u = (cols[:, None] + local[None, :, 0]) / grid  # (F, 3)
    v = 1.0 - (rows[:, None] + local[None, :, 1]) / grid  # OBJ: v = 0 is the bottom row of the image
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8), np.stack([u, v], -1)


def write_obj(folder: str, nodes: np.ndarray, faces: np.ndarray, uvs: np.ndarray, image: np.ndarray) -> str:
    """Render mesh (surface nodes only, per-corner UVs) with its material and texture; returns the .obj path."""
    import cv2

    cv2.imwrite(os.path.join(folder, "atlas.png"), image[..., ::-1])
    with open(os.path.join(folder, "surface.mtl"), "w") as f:
        f.write("newmtl atlas\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nmap_Kd atlas.png\n")
    used = np.unique(faces)
    local = np.full(len(nodes), -1, np.int64)
    local[used] = np.arange(len(used))
    lines = ["mtllib surface.mtl", "o surface"]
    lines += [f"v {x:.9f} {y:.9f} {z:.9f}" for x, y, z in nodes[used]]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uvs.reshape(-1, 2)]
    lines.append("usemtl atlas")
    for i, face in enumerate(faces):
        lines.append("f " + " ".join(f"{local[n] + 1}/{3 * i + k + 1}" for k, n in enumerate(face)))
    path = os.path.join(folder, "surface.obj")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
# cameras


def _view_matrix(p, target, azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    eye = np.asarray(target) + distance * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                                                    math.sin(el)])
    view = p.computeViewMatrix(eye.tolist(), list(map(float, target)), [0, 0, 1])
    return np.asarray(view, np.float64).reshape(4, 4).T  # pybullet gives column-major OpenGL matrices


def _projection_matrix(p, fov_deg: float) -> np.ndarray:
    return np.asarray(p.computeProjectionMatrixFOV(fov_deg, 1.0, NEAR, FAR), np.float64).reshape(4, 4).T


def opencv_camera(view_gl: np.ndarray, proj_gl: np.ndarray, width: int, height: int):
    """K (3, 3) and world_to_cam (4, 4) in the OpenCV optical frame from pybullet's OpenGL view / projection.

    OpenGL eye space has y up and looks down -z; flipping y and z gives x right, y down, z forward, and
    fx = P00 W / 2, fy = P11 H / 2. The principal point is not (W / 2, H / 2): TinyRenderer maps NDC to
    x = (x_ndc + 1) W / 2, y = (y_ndc + 1) H / 2 (y up) and lights a pixel when its integer corner (i, j) is
    covered, then pybullet flips the rows. In the project's convention (pixel (u, v) centred at
    (u + 0.5, v + 0.5), row 0 at the top) its images are shifted by half a pixel: cx = W / 2 + 0.5,
    cy = H / 2 - 0.5 (measured: mask and projected node extents then agree on every side).
    """
    if abs(proj_gl[0, 2]) > 1e-9 or abs(proj_gl[1, 2]) > 1e-9:
        raise ValueError("off-centre projection matrices are not supported")
    K = np.array([[proj_gl[0, 0] * width / 2, 0, width / 2 + 0.5], [0, proj_gl[1, 1] * height / 2, height / 2 - 0.5],
                  [0, 0, 1]])
    world_to_cam = np.diag([1.0, -1.0, -1.0, 1.0]) @ view_gl
    return K, world_to_cam


def project(K: np.ndarray, world_to_cam: np.ndarray, points: np.ndarray):
    """Pixel coordinates (..., 2) (centre convention u + 0.5) and camera depth (...) of world points (..., 3)."""
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[..., 2]
    uv = (cam @ K.T)[..., :2] / np.maximum(z, 1e-9)[..., None]
    return uv, z


def frame_cameras(p, spec: ClipSpec, trajectory: np.ndarray, config: CrossEngineConfig):
    """Cameras that see the whole motion: all 4 aim at the centre of the trajectory's bounding box; each takes
    the nearest distance in distance_m whose image holds every node of every frame (5 % margin) and that keeps
    the object at t = 0 at least distance_m[0] away.

    Returns a list of dicts with view_gl, proj_gl, K, world_to_cam and the choices made.
    """
    W = H = config.resolution
    pts = trajectory.reshape(-1, 3)
    target = (pts.min(0) + pts.max(0)) / 2
    proj = _projection_matrix(p, spec.fov_deg)
    margin = 0.05 * W
    cameras = []
    for v in range(NUM_VIEWS):
        azimuth = spec.azimuth_deg + 90.0 * v
        chosen = None
        for distance in np.linspace(*config.distance_m, 41):
            view = _view_matrix(p, target, azimuth, spec.elevation_deg[v], float(distance))
            K, w2c = opencv_camera(view, proj, W, H)
            uv, z = project(K, w2c, pts)
            start = np.linalg.norm(np.linalg.inv(w2c)[:3, 3] - trajectory[0].mean(0))
            fits = bool((z > NEAR).all() and (uv >= margin).all() and (uv <= W - margin).all()
                        and start >= config.distance_m[0])
            chosen = (float(distance), view, K, w2c, fits)
            if fits:
                break
        distance, view, K, w2c, fits = chosen
        eye = np.linalg.inv(w2c)[:3, 3]
        cameras.append({"view_gl": view, "proj_gl": proj, "K": K, "world_to_cam": w2c, "azimuth_deg": azimuth % 360,
                        "elevation_deg": spec.elevation_deg[v], "fov_deg": spec.fov_deg, "distance_m": distance,
                        "distance_to_object_m": float(np.linalg.norm(eye - trajectory[0].mean(0))),
                        "motion_in_view": fits, "target": target.tolist()})
    return cameras


# ---------------------------------------------------------------------------------------------------------------
# simulation and rendering


@dataclass
class PreparedObject:
    nodes: np.ndarray  # (N, 3) world, initial pose (the files are written in world coordinates)
    rest: np.ndarray  # (N, 3) object frame
    tets: np.ndarray  # (M, 4)
    faces: np.ndarray  # (F, 3)
    cells: int  # voxel cells across the longest dimension
    cell_m: float  # edge of a voxel cell in metres
    substeps: int  # simulation steps per frame
    volume: float  # m^3
    folder: str
    vtk_path: str
    obj_path: str


def required_substeps(spec: ClipSpec, cell_m: float, minimum: int, maximum: int) -> int:
    """Steps per frame so that (1) the fastest impact moves at most 0.2 of a mesh cell per step and (2) a
    pressure wave in the stiff version crosses at most 0.8 of a cell per step (dt c / h <= 0.8, c =
    sqrt((lambda + 2 mu) / rho)). Both clips of a pair get the same dt (rule 2 uses the stiff material).

    Measured on the default set: at dt = 1/600 s for all, objects with 5-17 mm cells sank 1-21 mm into the
    ground on impact and some stayed crumpled (node paths 13-270 % of the size away from a dt/4 run); rule 1
    alone (20-113 steps) kept the deepest node at -2.3 mm but left stiff clips unconverged (implicit Euler is
    stable there, yet node paths moved 5-13 % of the size when dt was halved; the stiff cylinder: 13.5 % from
    32 to 64 steps, 1.6 % from 64 to 128). With rule 2 (31-173 steps) the deepest node reaches -1.0 mm.
    """
    v_up = max(spec.velocity[2], 0.0)
    impact = math.sqrt(v_up**2 + 2 * GRAVITY * spec.drop_gap) + np.linalg.norm(spec.angular_velocity) * spec.size / 2
    # to the stiff clip's moduli (a damping pair's two clips share the soft material)
    scale = spec.stiff_factor if spec.stiffness == "soft" and not spec.damping_level else 1.0
    wave = math.sqrt((spec.lam + 2 * spec.mu) * scale / spec.density)
    steps = math.ceil(max(impact / (0.2 * cell_m), wave / (0.8 * cell_m)) / FPS)
    return int(min(max(steps, minimum), maximum))


def prepare_object(spec: ClipSpec, folder: str, config: CrossEngineConfig) -> PreparedObject:
    """Mesh, pose and files of one clip's object (the initial pose is baked into the files, because pybullet
    shows the render mesh at its file coordinates until the first step)."""
    shape = ProceduralShape(spec.kind, spec.dims)
    rest, tets, cells = tet_mesh(shape, spec.size, config.max_nodes)
    cell_m = float(np.cbrt(6 * np.median(_tet_volumes(rest, tets))))  # Kuhn tets hold h^3 / 6
    faces = boundary_faces(rest, tets)
    nodes = rest @ quaternion_to_matrix(spec.orientation).T
    nodes[:, 2] += spec.drop_gap - nodes[:, 2].min()
    texture = Texture(spec.texture["kind"], np.asarray(spec.texture["colors"], np.float32),
                      spec.texture["frequency"], np.asarray(spec.texture["direction"]), spec.texture["seed"])
    image, uvs = texture_atlas(rest, faces, texture, spec.size)
    vtk_path = os.path.join(folder, "object.vtk")
    write_vtk(vtk_path, nodes, tets)
    obj_path = write_obj(folder, nodes, faces, uvs, image)
    substeps = required_substeps(spec, cell_m, config.substeps, config.max_substeps)
    return PreparedObject(nodes, rest, tets, faces, cells, cell_m, substeps, float(_tet_volumes(rest, tets).sum()),
                          folder, vtk_path, obj_path)


def _new_world(p, pybullet_data, timestep: float):
    client = p.connect(p.DIRECT)
    p.resetSimulation(p.RESET_USE_DEFORMABLE_WORLD, physicsClientId=client)
    p.setGravity(0, 0, -GRAVITY, physicsClientId=client)
    p.setTimeStep(timestep, physicsClientId=client)
    plane = p.loadURDF(os.path.join(pybullet_data.getDataPath(), "plane.urdf"), physicsClientId=client)
    # deformable-rigid friction multiplies both sides' coefficients: the ground's 1 leaves the body's own value
    p.changeDynamics(plane, -1, lateralFriction=1.0, physicsClientId=client)
    return client


def _load_body(p, client, spec: ClipSpec, obj: PreparedObject) -> int:
    margin = float(np.clip(0.01 * spec.size, 0.0005, 0.003))
    with _quiet():
        body = p.loadSoftBody(obj.obj_path, simFileName=obj.vtk_path, basePosition=[0, 0, 0], scale=1.0,
                              mass=spec.density * obj.volume, useNeoHookean=1, NeoHookeanMu=spec.mu,
                              NeoHookeanLambda=spec.lam, NeoHookeanDamping=spec.damping,
                              frictionCoeff=spec.friction, useSelfCollision=0, collisionMargin=margin,
                              physicsClientId=client)
    if body < 0:
        raise RuntimeError(f"pybullet could not load the soft body of {spec.sample_id}")
    if any(spec.velocity) or any(spec.angular_velocity):
        # sets every node's velocity to v + w x (x - centre of mass)
        p.resetBaseVelocity(body, list(spec.velocity), list(spec.angular_velocity), physicsClientId=client)
    return body


def _nodes(p, client, body) -> np.ndarray:
    count, verts = p.getMeshData(body, flags=p.MESH_DATA_SIMULATION_MESH, physicsClientId=client)
    return np.asarray(verts, np.float64).reshape(count, 3)


def simulate(spec: ClipSpec, obj: PreparedObject, num_frames: int, substeps: int, render=None) -> np.ndarray:
    """Node trajectory (T, N, 3) in world metres; `render(p, client, body, frame)` is called at every frame."""
    p, pybullet_data = _import_pybullet()
    client = _new_world(p, pybullet_data, 1.0 / (FPS * substeps))
    try:
        if render is not None:
            render(p, client, None, -1)  # background pass: the scene before the object exists
        body = _load_body(p, client, spec, obj)
        frames = []
        for t in range(num_frames):
            if t:
                for _ in range(substeps):
                    p.stepSimulation(physicsClientId=client)
            frames.append(_nodes(p, client, body))
            if render is not None:
                render(p, client, body, t)
    finally:
        p.disconnect(client)
    traj = np.stack(frames)
    if traj.shape[1] != len(obj.nodes):
        raise RuntimeError(f"pybullet returned {traj.shape[1]} nodes, the mesh has {len(obj.nodes)}")
    if not np.isfinite(traj).all() or np.abs(traj).max() > 50.0:
        raise RuntimeError(f"{spec.sample_id}: simulation diverged (non-finite or > 50 m)")
    return traj


def render_clip(spec: ClipSpec, obj: PreparedObject, cameras, config: CrossEngineConfig):
    """Simulate again while rendering every frame from every view with TinyRenderer.

    Returns anchors (T, N, 3), rgb (V, T, H, W, 3) float, alpha (V, T, H, W), depth (V, T, H, W) metres,
    background (V, H, W, 3) uint8.
    """
    W = H = config.resolution
    T, V = config.num_frames, len(cameras)
    rgb = np.zeros((V, T, H, W, 3), np.float32)
    alpha = np.zeros((V, T, H, W), np.float32)
    depth = np.zeros((V, T, H, W), np.float32)
    background = np.zeros((V, H, W, 3), np.uint8)

    def shoot(p, client, view, proj):
        _, _, color, zbuf, seg = p.getCameraImage(
            W, H, viewMatrix=view["view_gl"].T.ravel().tolist(), projectionMatrix=proj.T.ravel().tolist(),
            renderer=p.ER_TINY_RENDERER, shadow=0, physicsClientId=client)  # no shadow: background stays exact
        color = np.asarray(color, np.uint8).reshape(H, W, 4)[..., :3]
        zbuf = np.asarray(zbuf, np.float64).reshape(H, W)
        seg = np.asarray(seg, np.int64).reshape(H, W)
        return color, zbuf, seg

    def render(p, client, body, t):
        for v, cam in enumerate(cameras):
            color, zbuf, seg = shoot(p, client, cam, cam["proj_gl"])
            if body is None:
                background[v] = color
                continue
            mask = (seg >= 0) & ((seg & ((1 << 24) - 1)) == body)  # low 24 bits: body unique id
            z = FAR * NEAR / (FAR - (FAR - NEAR) * zbuf)  # OpenGL depth buffer -> distance along the view axis
            rgb[v, t] = color / 255.0
            alpha[v, t] = mask
            depth[v, t] = np.where(mask, z, 0.0)

    anchors = simulate(spec, obj, T, obj.substeps, render)
    return anchors, rgb, alpha, depth, background


# ---------------------------------------------------------------------------------------------------------------
# one clip


def _rigid_fit(rest: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """`rest` (N, 3) moved by the rotation + translation that best matches `frame` (N, 3) (Kabsch)."""
    a, b = rest - rest.mean(0), frame - frame.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    rot = (u @ np.diag([1, 1, d]) @ vt).T
    return a @ rot.T + frame.mean(0)


def deformation_summary(anchors: np.ndarray, size: float) -> dict:
    """How much the object deforms: per frame the z extent against its best rigid fit's, and the RMS distance
    of the nodes from that rigid fit (relative to the size)."""
    ratios, residual = [], []
    for frame in anchors:
        fitted = _rigid_fit(anchors[0], frame)
        ratios.append(np.ptp(frame[:, 2]) / max(np.ptp(fitted[:, 2]), 1e-9))
        residual.append(float(np.sqrt(((frame - fitted) ** 2).sum(1).mean())) / size)
    lowest = anchors[:, :, 2].min(1)  # (T,)
    contact = np.nonzero(lowest < 0.01 * size + 0.003)[0]
    bounce = float(lowest[contact[0]:].max()) if len(contact) else None
    return {"max_compression": float(1.0 - min(ratios)), "final_height_vs_rigid": float(ratios[-1]),
            "max_nonrigid_rms_rel": float(max(residual)), "final_nonrigid_rms_rel": float(residual[-1]),
            "first_contact_frame": int(contact[0]) if len(contact) else None,
            "max_rebound_m": bounce}


def first_run(spec: ClipSpec, config: CrossEngineConfig) -> np.ndarray:
    """Node trajectory (T, N, 3) of a clip, without rendering: the pair's cameras are framed on it."""
    with tempfile.TemporaryDirectory(prefix="cross_engine_") as folder:
        obj = prepare_object(spec, folder, config)
        return simulate(spec, obj, config.num_frames, obj.substeps)


def pair_cameras(spec: ClipSpec, trajectories: list[np.ndarray], config: CrossEngineConfig) -> list[dict]:
    """One set of cameras for both clips of a pair (framed on both trajectories), so their images compare."""
    p, _ = _import_pybullet()
    return frame_cameras(p, spec, np.concatenate(trajectories, axis=1), config)  # (T, N_soft + N_stiff, 3)


def generate_clip(root: str, spec: ClipSpec, config: CrossEngineConfig, cameras: list[dict],
                  first: np.ndarray) -> dict:
    """Simulate again while rendering from the pair's `cameras`, write one sample; returns its meta.
    `first` (T, N, 3) is the clip's trajectory from `first_run` (the replay must match it)."""
    from training.data.sample import motion_statistics

    with tempfile.TemporaryDirectory(prefix="cross_engine_") as folder:
        obj = prepare_object(spec, folder, config)
        anchors, rgb, alpha, depth, background = render_clip(spec, obj, cameras, config)
    # Bullet is deterministic in a fresh world; the cameras were framed on the first run
    replay_error = float(np.abs(anchors - first).max())
    K = np.stack([c["K"] for c in cameras]).astype(np.float32)
    w2c = np.stack([c["world_to_cam"] for c in cameras]).astype(np.float32)
    arrays = {
        "anchors": anchors.astype(np.float32),  # (T, N, 3) FEM nodes: the true trajectories
        "K": K,  # (V, 3, 3)
        "world_to_cam": w2c,  # (V, 4, 4)
        "background_rgb": background,  # (V, H, W, 3) uint8, each view without the object
        "tets": obj.tets.astype(np.int32),  # (M, 4) node indices
        "surface_faces": obj.faces.astype(np.int32),  # (F, 3) outward triangles
    }
    mass = spec.density * obj.volume
    meta = {
        "sample_id": spec.sample_id,
        "object_id": spec.object_id,
        "split": "test",
        "seed": int(spec.seed),
        "engine": f"pybullet {pybullet_version()}",
        "params": None,  # no truth in the project's parameter convention
        "engine_params": {"neo_hookean_mu": spec.mu, "neo_hookean_lambda": spec.lam,
                          "neo_hookean_damping": spec.damping, "friction": spec.friction, "ground_friction": 1.0,
                          "total_mass_kg": mass, "density_kg_m3": spec.density,
                          "timestep_s": 1.0 / (FPS * obj.substeps),
                          "substeps_per_frame": obj.substeps,
                          "poisson_ratio": spec.poisson, "stiff_factor": spec.stiff_factor,
                          "collision_margin_m": float(np.clip(0.01 * spec.size, 0.0005, 0.003)),
                          "model": "Bullet deformable world: stable Neo-Hookean tets, implicit Euler; damping "
                                   "moduli = neo_hookean_damping x (mu, lambda)"},
        "pair": ({"pair_id": spec.object_id, "stiffness": spec.stiffness} if not spec.damping_level else
                 {"pair_id": spec.object_id, "damping": spec.damping_level}),
        "motion": spec.motion,
        "initial_state": {"velocity": list(spec.velocity), "angular_velocity": list(spec.angular_velocity),
                          "orientation": list(spec.orientation), "drop_gap": spec.drop_gap},
        "size_m": spec.size,
        "object": {"source": "procedural", "shape": spec.kind, "dims": spec.dims, "texture": spec.texture,
                   "mesh": {"nodes": len(obj.nodes), "tets": len(obj.tets), "surface_faces": len(obj.faces),
                            "grid_cells": obj.cells, "cell_m": obj.cell_m,
                            "volume_m3": obj.volume}},
        "render": {"renderer": "pybullet ER_TINY_RENDERER (DIRECT)", "soft_body": "drawn natively from its render "
                   "mesh (the tet surface, texture atlas)", "ground": "pybullet_data plane.urdf", "shadows": False},
        "cameras": [{k: c[k] for k in ("azimuth_deg", "elevation_deg", "fov_deg", "distance_m",
                                       "distance_to_object_m", "motion_in_view", "target")} for c in cameras],
        "fps": FPS,
        "primary_view": 0,
        "replay_max_error_m": replay_error,
        "deformation": deformation_summary(anchors, spec.size),
        "stats": motion_statistics(anchors, K.astype(np.float64), w2c.astype(np.float64)),
    }
    meta = json.loads(json.dumps(meta))  # plain JSON types (numpy floats in dims / texture)
    return write_sample(os.path.join(root, "samples", spec.sample_id), rgb, alpha, depth, arrays, meta)


def timestep_study(spec: ClipSpec, config: CrossEngineConfig, factor: int = 2) -> dict:
    """Simulate a clip at dt and dt / factor; the largest node distance between the runs says whether dt is
    small enough (implicit Euler stays stable at large dt but damps more, so compare rather than look)."""
    with tempfile.TemporaryDirectory(prefix="cross_engine_") as folder:
        obj = prepare_object(spec, folder, config)
        a = simulate(spec, obj, config.num_frames, obj.substeps)
        b = simulate(spec, obj, config.num_frames, obj.substeps * factor)
    diff = np.linalg.norm(a - b, axis=-1)  # (T, N)
    return {"sample_id": spec.sample_id, "substeps": obj.substeps, "max_m": float(diff.max()),
            "max_rel_size": float(diff.max() / spec.size), "mean_rel_size": float(diff.mean() / spec.size)}


# ---------------------------------------------------------------------------------------------------------------
# data set


def _job(args):
    """A worker's job: ("simulate", spec, config) -> trajectory, or ("render", spec, config, root, cameras, first)
    -> meta. Returns (spec, result, error message or None, seconds)."""
    kind, spec, config, *rest = args
    start = time.perf_counter()
    try:
        result = first_run(spec, config) if kind == "simulate" else generate_clip(rest[0], spec, config, *rest[1:])
    except Exception as exc:  # one bad clip must not stop the run: report it at the end
        return spec, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start
    return spec, result, None, time.perf_counter() - start


def _run_jobs(jobs: list, pool, desc: str, progress: bool) -> list:
    from tqdm import tqdm

    results = pool.imap_unordered(_job, jobs, chunksize=1) if pool is not None else map(_job, jobs)
    with tqdm(total=len(jobs), disable=not progress or not jobs, unit="clip", desc=desc, file=sys.stderr) as bar:
        out = []
        for result in results:
            bar.update(1)
            out.append(result)
    return out


def write_manifest(root: str, specs: list[ClipSpec], config: CrossEngineConfig, seed: int) -> dict:
    """manifest.json over the finished clips (the format of training.data.generate, split "test")."""
    entries = []
    for spec in sorted(specs, key=lambda s: s.sample_id):
        sample_dir = os.path.join(root, "samples", spec.sample_id)
        if not os.path.exists(os.path.join(sample_dir, META_FILE)):
            continue
        meta = read_meta(sample_dir)
        entries.append({"sample_id": spec.sample_id, "object_id": spec.object_id, "split": "test",
                        "seed": spec.seed, "params": None, "engine": meta["engine"], "pair": meta["pair"],
                        "motion": meta["motion"], "size_m": meta["size_m"], "stats": meta["stats"],
                        "meta_sha256": sha256_file(os.path.join(sample_dir, META_FILE))})
    splits = {"train": [], "val": [], "test": sorted({e["object_id"] for e in entries})}
    manifest = {"format_version": 1, "seed": seed, "source": "training.data.cross_engine",
                "engine": f"pybullet {pybullet_version()}", "config": config.to_dict(), "splits": splits,
                "samples": entries}
    write_json(os.path.join(root, MANIFEST_FILE), manifest)
    return manifest


def generate_dataset(root: str, config: CrossEngineConfig, seed: int = 0, workers: int = 1, progress: bool = True,
                     log=print) -> dict:
    """Generate (or resume: clips whose meta.json exists are kept) the whole set; returns a report dict."""
    _import_pybullet()  # fail early with the clear message
    specs = plan_clips(config, seed)
    os.makedirs(os.path.join(root, "samples"), exist_ok=True)
    settings = {"seed": seed, "config": config.to_dict(), "source": "training.data.cross_engine"}
    gen_path = os.path.join(root, GENERATION_FILE)
    if os.path.exists(gen_path):
        with open(gen_path) as f:
            if json.load(f) != json.loads(json.dumps(settings)):
                raise ValueError(f"{root} holds a data set made with other settings ({gen_path}); "
                                 "use another --out folder or delete it")
    write_json(gen_path, settings)
    done = {s.sample_id for s in specs if os.path.exists(os.path.join(root, "samples", s.sample_id, META_FILE))}
    pairs = [specs[i:i + 2] for i in range(0, len(specs), 2)]  # (soft, stiff)
    open_pairs = [pair for pair in pairs if any(s.sample_id not in done for s in pair)]
    log(f"{len(specs)} clips planned ({config.pairs} {config.pair_kind} pairs), {len(done)} already done, "
        f"{len(specs) - len(done)} to generate")
    failures, durations, rendered = [], [], 0
    start = time.perf_counter()
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 and open_pairs else None
    try:
        # 1. both clips of every unfinished pair without images, to frame the pair's cameras on both motions
        firsts = {}
        for spec, traj, error, _ in _run_jobs([("simulate", s, config) for pair in open_pairs for s in pair], pool,
                                               "simulate", progress):
            if error:
                failures.append(f"{spec.sample_id}: {error}")
            firsts[spec.sample_id] = traj
        # 2. the missing clips again, rendered
        jobs = []
        for pair in open_pairs:
            trajectories = [firsts[s.sample_id] for s in pair]
            if any(t is None for t in trajectories):
                failures += [f"{s.sample_id}: not rendered, its pair failed to simulate" for s in pair
                             if s.sample_id not in done and firsts[s.sample_id] is not None]
                continue
            cameras = pair_cameras(pair[0], trajectories, config)
            jobs += [("render", s, config, root, cameras, firsts[s.sample_id]) for s in pair if s.sample_id not in done]
        for spec, _, error, seconds in _run_jobs(jobs, pool, "render", progress):
            durations.append(seconds)
            rendered += error is None
            if error:
                failures.append(f"{spec.sample_id}: {error}")
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    manifest = write_manifest(root, specs, config, seed)
    return {"planned": len(specs), "generated": rendered, "failed": failures, "seconds": time.perf_counter() - start,
            "render_seconds_per_clip": float(np.mean(durations)) if durations else None,
            "samples": len(manifest["samples"])}


def summary_table(root: str) -> list[str]:
    """One line per pair: shape, size, motion, and how the soft and the stiff clip differ."""
    from training.data.dataset import list_samples

    metas = {e["sample_id"]: read_meta(os.path.join(root, "samples", e["sample_id"])) for e in list_samples(root)}
    header = (f"{'pair':<20} {'size':>6} {'motion':<5} {'nodes':>5} {'steps':>5} {'mu soft':>8} {'x':>4} "
              f"{'max compr s/S':>13} {'nonrigid s/S':>12} {'final h s/S':>11} {'rebound s/S cm':>14} "
              f"{'late px s/S':>11}")
    lines = [header]
    for pair in sorted({m["pair"]["pair_id"] for m in metas.values()}):
        soft, stiff = metas.get(f"{pair}_soft"), metas.get(f"{pair}_stiff")
        if soft is None or stiff is None:
            continue
        ds, dS = soft["deformation"], stiff["deformation"]
        reb = lambda d: f"{100 * d['max_rebound_m']:.1f}" if d["max_rebound_m"] is not None else "-"  # noqa: E731
        lines.append(
            f"{pair:<20} {100 * soft['size_m']:5.1f}c {soft['motion']:<5} {soft['object']['mesh']['nodes']:>5} "
            f"{soft['engine_params']['substeps_per_frame']:>5} "
            f"{soft['engine_params']['neo_hookean_mu']:8.0f} {soft['engine_params']['stiff_factor']:4.1f} "
            f"{ds['max_compression']:6.2f}/{dS['max_compression']:.2f} "
            f"{ds['max_nonrigid_rms_rel']:5.3f}/{dS['max_nonrigid_rms_rel']:.3f} "
            f"{soft['stats']['final_height_ratio']:5.2f}/{stiff['stats']['final_height_ratio']:.2f} "
            f"{reb(ds):>6}/{reb(dS):<6} "
            f"{soft['stats']['late_motion_px_per_frame']:5.2f}/{stiff['stats']['late_motion_px_per_frame']:.2f}")
    return lines


PAIR_KINDS = ("stiffness", "damping")
RANGE_OPTIONS = {  # option -> (config field, help)
    "size": ("size_range", "object size, longest dimension in m"),
    "drop-gap": ("drop_gap", "gap under the object at t = 0 in m"),
    "toss-up": ("toss_up_speed", "upward speed of tossed objects in m/s"),
    "sideways": ("sideways_speed", "sideways speed of tossed objects in m/s"),
    "spin": ("spin", "spin of tossed objects in rad/s"),
    "stiff-factor": ("stiff_factor", "stiff mu, lambda / soft mu, lambda (>= 4)"),
    "damping-factor": ("damping_factor", "damping pairs: high-damping time / low-damping time (>= 4)"),
    "soft-strain": ("soft_strain", "target impact strain of the soft version (sets its mu)"),
    "density": ("density_range", "density in kg/m^3 (mass = density x mesh volume)"),
    "fov": ("fov_deg", "vertical field of view in degrees"),
}


def build_parser() -> argparse.ArgumentParser:
    defaults = CrossEngineConfig()
    p = argparse.ArgumentParser(
        prog="python -m training.data.cross_engine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Cross-engine validation set: the project's procedural shapes at real sizes (5-40 cm) as FEM soft\n"
            "bodies in pybullet (stable Neo-Hookean tets from our own voxel tetrahedralisation), each in a soft and\n"
            "a stiff version (mu, lambda 5-10x apart, all else equal), half dropped from rest, half tossed with\n"
            "spin; 4 views x 30 frames at 30 fps rendered by pybullet's TinyRenderer (view 0: input camera\n"
            "1-2 m away looking down 20-40 deg; views 1-3 around it). Written in the project's data set format\n"
            "(split 'test'; read it with training.data.dataset.SyntheticDataset): anchors = true FEM node\n"
            "trajectories, background_rgb = each view without the object, params = null (engine parameters in\n"
            "meta.json). Deterministic from --seed; resumable (clips with a meta.json are kept).\n"
            "Needs pybullet (an optional dependency of this script only)."),
        epilog=(
            "examples:\n"
            "  python -m training.data.cross_engine --out data/cross_engine            # 24 clips, 128^2\n"
            "  python -m training.data.cross_engine --out /tmp/xe --pairs 1 --resolution 32 --frames 12 \\\n"
            "      --max-nodes 80                                                       # seconds; test size\n"
            "  python -m training.data.cross_engine --out data/cross_engine --summary  # table of the pairs\n"
            "  python -m training.data.cross_engine --out data/cross_engine --check-timestep  # dt vs dt/2"))
    p.add_argument("--out", required=True, help="data set folder (created; resumed if it exists)")
    p.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    p.add_argument("--pairs", type=int, default=defaults.pairs,
                   help=f"pairs, one shape each, 2 clips per pair (default {defaults.pairs})")
    p.add_argument("--resolution", type=int, default=defaults.resolution, help="image size, square (default 128)")
    p.add_argument("--frames", type=int, default=defaults.num_frames, help="frames at 30 fps (default 30)")
    p.add_argument("--substeps", type=int, default=defaults.substeps,
                   help=f"least simulation steps per frame (default {defaults.substeps}: dt = 1/600 s); raised per "
                        f"pair (up to {defaults.max_substeps}) so an impact moves <= 0.2 mesh cell and a pressure "
                        "wave in the stiff material <= 0.8 cell per step")
    p.add_argument("--max-nodes", type=int, default=defaults.max_nodes,
                   help=f"largest tet mesh (nodes); the finest grid up to 12 cells across that fits (default "
                        f"{defaults.max_nodes})")
    for option, (name, text) in RANGE_OPTIONS.items():
        lo, hi = getattr(defaults, name)
        p.add_argument(f"--{option}", type=float_range, default=None, metavar="MIN,MAX",
                       help=f"{text} (default {lo:g},{hi:g})")
    p.add_argument("--pair-kind", choices=PAIR_KINDS, default=defaults.pair_kind,
                   help="what the two clips of a pair differ in: stiffness (soft / stiff, default) or damping (low / "
                        "high damping time of the soft material, --damping-factor apart; issue 20)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--summary", action="store_true", help="only print the per-pair table of an existing set")
    p.add_argument("--check-timestep", action="store_true",
                   help="write nothing: simulate every clip at dt and dt/2 and print how far the nodes differ")
    return p


def config_from_args(args) -> CrossEngineConfig:
    changes = {name: getattr(args, option.replace("-", "_")) for option, (name, _) in RANGE_OPTIONS.items()
               if getattr(args, option.replace("-", "_")) is not None}
    return CrossEngineConfig(pairs=args.pairs, resolution=args.resolution, num_frames=args.frames,
                             substeps=args.substeps, max_nodes=args.max_nodes, pair_kind=args.pair_kind,
                             **changes).validate()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.summary:
        print("\n".join(summary_table(args.out)))
        return 0
    try:
        config = config_from_args(args)
        if args.check_timestep:
            jobs = [(spec, config) for spec in plan_clips(config, args.seed)]
            if args.workers > 1:
                with mp.get_context("spawn").Pool(args.workers) as pool:
                    results = pool.starmap(timestep_study, jobs, chunksize=1)
            else:
                results = (timestep_study(*job) for job in jobs)
            for r in results:
                print(f"{r['sample_id']:<24} {r['substeps']:3d} steps/frame: max {1000 * r['max_m']:7.2f} mm = "
                      f"{100 * r['max_rel_size']:5.2f} % of size, mean {100 * r['mean_rel_size']:5.2f} %", flush=True)
            return 0
        report = generate_dataset(args.out, config, args.seed, args.workers, not args.no_progress)
    except (ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {report['generated']} clips generated in {report['seconds']:.1f} s"
          + (f" with {args.workers} worker(s) (rendering pass {report['render_seconds_per_clip']:.1f} s per clip; "
             "each clip is also simulated once before, to frame the cameras)"
             if report["render_seconds_per_clip"] else "") + f"; {report['samples']} clips in {args.out}")
    for failure in report["failed"]:
        print(f"FAILED {failure}", file=sys.stderr)
    if report["samples"]:
        print("\n".join(summary_table(args.out)))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
