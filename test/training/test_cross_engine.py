"""Cross-engine validation set (training/data/cross_engine.py): a tiny pybullet pair written and read back,
plus the pybullet-free parts (plan, tet mesh, the missing-dependency message)."""
import json
import os
import sys

import numpy as np
import pytest

from training.data import cross_engine
from training.data.dataset import SyntheticDataset, list_samples
from training.data.shapes import ProceduralShape, random_shape

FRAMES, RES = 12, 32
ARGS = ["--pairs", "1", "--resolution", str(RES), "--frames", str(FRAMES), "--max-nodes", "80",
        "--drop-gap", "0.2,0.25", "--size", "0.2,0.3", "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def clip_set(tmp_path_factory):
    """One soft/stiff pair (a dropped ellipsoid, 12 frames at 32^2, <= 80 nodes) through the real CLI."""
    pytest.importorskip("pybullet")  # the optional dependency of this script; meshing and planning need none
    out = str(tmp_path_factory.mktemp("cross_engine") / "data")
    assert cross_engine.main(["--out", out] + ARGS) == 0
    return out


def _pair(root):
    ds = SyntheticDataset(root, "test", views=(0, 1, 2, 3))
    ids = [e["sample_id"] for e in ds.entries]
    soft, stiff = ids.index("xe-ellipsoid-00_soft"), ids.index("xe-ellipsoid-00_stiff")
    return ds, (ds[soft], ds.meta(soft)), (ds[stiff], ds.meta(stiff))


def test_round_trip_through_dataset(clip_set):
    ds, (item, meta), _ = _pair(clip_set)
    assert len(ds) == 2
    N = item["anchors"].shape[1]
    assert 8 <= N <= 80
    assert item["rgb"].shape == (4, FRAMES, 3, RES, RES) and item["alpha"].shape == (4, FRAMES, 1, RES, RES)
    assert item["depth"].shape == (4, FRAMES, 1, RES, RES) and item["anchors"].shape == (FRAMES, N, 3)
    assert item["gaussians"] is None and item["gaussian_means"] is None and item["params"] is None
    assert item["background"].shape == (4, RES, RES, 3) and item["background"].dtype == np.uint8
    assert bool(item["mask"][0].any(dim=(1, 2, 3)).all()), "object visible in the input view at every frame"
    # cameras as stored: OpenCV intrinsics from the recorded field of view, rigid extrinsics
    K, w2c = item["K"].numpy().astype(np.float64), item["world_to_cam"].numpy().astype(np.float64)
    for v, cam in enumerate(meta["cameras"]):
        f = RES / 2 / np.tan(np.radians(cam["fov_deg"]) / 2)
        # TinyRenderer's half-pixel shift in the project's pixel-centre convention (see opencv_camera)
        np.testing.assert_allclose(K[v], [[f, 0, RES / 2 + 0.5], [0, f, RES / 2 - 0.5], [0, 0, 1]], rtol=1e-5)
        R = w2c[v, :3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-5)
        assert 1.0 - 1e-6 <= cam["distance_m"] <= 2.0 + 1e-6
    # input view looks down 20-40 degrees: the camera's forward axis (row 2 of R) points below the horizon
    forward = w2c[0, 2, :3]
    assert 20 - 1e-3 <= np.degrees(np.arcsin(-forward[2])) <= 40 + 1e-3
    # single view: background follows the view
    single = SyntheticDataset(clip_set, "test", views=2)[0]
    assert single["background"].shape == (RES, RES, 3) and single["rgb"].shape == (FRAMES, 3, RES, RES)


def test_meta_and_manifest(clip_set):
    entries = list_samples(clip_set, "test")
    assert [e["sample_id"] for e in entries] == ["xe-ellipsoid-00_soft", "xe-ellipsoid-00_stiff"]
    assert all(e["params"] is None and e["pair"]["pair_id"] == "xe-ellipsoid-00" for e in entries)
    with open(os.path.join(clip_set, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["splits"] == {"train": [], "val": [], "test": ["xe-ellipsoid-00"]}
    _, (_, soft), (_, stiff) = _pair(clip_set)
    for meta in (soft, stiff):
        assert meta["engine"].startswith("pybullet ") and meta["params"] is None and meta["split"] == "test"
        assert meta["motion"] == "drop" and meta["fps"] == 30.0 and meta["primary_view"] == 0
        assert 0.2 <= meta["size_m"] <= 0.3 and 0.2 <= meta["initial_state"]["drop_gap"] <= 0.25
        assert set(meta["engine_params"]) >= {"neo_hookean_mu", "neo_hookean_lambda", "neo_hookean_damping",
                                              "friction", "total_mass_kg", "timestep_s"}
        assert "late_motion_px_per_frame" in meta["stats"]
        assert meta["replay_max_error_m"] == 0.0  # the framing run and the rendered run agree exactly
    # a pair differs only in mu and lambda, by the recorded factor (>= 4)
    es, eS = soft["engine_params"], stiff["engine_params"]
    factor = es["stiff_factor"]
    assert factor >= 4
    assert eS["neo_hookean_mu"] == pytest.approx(factor * es["neo_hookean_mu"])
    assert eS["neo_hookean_lambda"] == pytest.approx(factor * es["neo_hookean_lambda"])
    for key in ("neo_hookean_damping", "friction", "total_mass_kg", "timestep_s"):
        assert es[key] == eS[key]
    assert soft["initial_state"] == stiff["initial_state"] and soft["size_m"] == stiff["size_m"]


def test_physics_falls_lands_and_soft_differs(clip_set):
    _, (soft, meta), (stiff, _) = _pair(clip_set)
    a, b = soft["anchors"].numpy().astype(np.float64), stiff["anchors"].numpy().astype(np.float64)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    np.testing.assert_array_equal(a[0], b[0])  # identical initial state
    np.testing.assert_array_equal(soft["world_to_cam"], stiff["world_to_cam"])  # one camera set per pair
    np.testing.assert_array_equal(soft["background"], stiff["background"])
    # free fall at first: the second difference of the centroid height is -g / fps^2; from rest z1 - z0 is
    # -g / 2 / fps^2 up to the semi-implicit Euler bias (+5 % at 20 steps per frame)
    z = a[:4].mean(1)[:, 2]
    assert (z[1] - z[0]) * 900 == pytest.approx(-9.81 / 2, rel=0.1)
    assert np.diff(z, 2).mean() * 900 == pytest.approx(-9.81, rel=0.05)
    # it lands (a 0.25 m gap takes 7 frames) and neither sinks through the ground nor explodes
    size = meta["size_m"]
    for traj in (a, b):
        assert traj[:, :, 2].min() < 0.01 + 0.02 * size  # touches the ground (it may bounce off again)
        assert traj[:, :, 2].min() > -0.1 * size
        assert np.ptp(traj[-1], axis=0).max() < 1.5 * size
    # after impact the pair differs, and the soft one deforms more
    assert np.abs(a - b).max() > 0.01 * size
    _, (_, ms), (_, mS) = _pair(clip_set)
    assert ms["deformation"]["max_nonrigid_rms_rel"] > mS["deformation"]["max_nonrigid_rms_rel"]


def test_true_nodes_project_into_the_rendered_mask(clip_set):
    """K / world_to_cam derived from pybullet's matrices put every node on the engine's own segmentation."""
    ds, _, _ = _pair(clip_set)
    for index in range(len(ds)):
        item = ds[index]
        K, w2c = item["K"].numpy().astype(np.float64), item["world_to_cam"].numpy().astype(np.float64)
        mask = item["mask"][:, :, 0].numpy()  # (V, T, H, W)
        depth = item["depth"][:, :, 0].numpy()
        # tolerate a 1-pixel rim (8-neighbourhood): the renderer samples one point per pixel and surface nodes
        # sit on the silhouette
        grown = mask.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(mask, (dy, dx), axis=(2, 3))
        nodes = item["anchors"].numpy().astype(np.float64)  # (T, N, 3)
        margins = []
        for v in range(4):
            uv, z = cross_engine.project(K[v], w2c[v], nodes)  # (T, N, 2), (T, N)
            px = np.floor(uv).astype(int)
            inside = (px >= 0).all(-1) & (px < RES).all(-1)
            assert inside.mean() > 0.95, f"view {v}: nodes leave the image"
            t, n = np.nonzero(inside)
            hit = grown[v, t, px[t, n, 1], px[t, n, 0]]
            assert hit.all(), f"view {v}: {np.count_nonzero(~hit)} of {hit.size} projected nodes miss the mask"
            assert mask[v, t, px[t, n, 1], px[t, n, 0]].mean() > 0.6  # most fall right inside, the rest on the rim
            # no sub-pixel shift: the mask's first / last lit pixel centres sit as far inside the projected node
            # extent on the left as on the right (and top / bottom); a half-pixel error in K breaks this by ~1 px
            for t in range(FRAMES):
                ys, xs = np.nonzero(mask[v, t])
                margins.append([xs.min() + 0.5 - uv[t, :, 0].min(), uv[t, :, 0].max() - xs.max() - 0.5,
                                ys.min() + 0.5 - uv[t, :, 1].min(), uv[t, :, 1].max() - ys.max() - 0.5])
            # depth is metric along the camera axis: the nearest visible point is the nearest node (the
            # surface is made of nodes), the farthest visible point is no farther than the farthest node
            for t in range(FRAMES):
                seen = depth[v, t][mask[v, t]]
                assert (seen > 0).all() and (depth[v, t][~mask[v, t]] == 0).all()
                assert seen.min() == pytest.approx(z[t].min(), abs=0.01)
                assert seen.max() <= z[t].max() + 0.002
        left, right, top, bottom = np.mean(margins, axis=0)
        assert abs(left - right) < 0.3 and abs(top - bottom) < 0.3, np.mean(margins, axis=0)
        # outside the object the frame is exactly the stored background (no shadows)
        rgb = np.round(item["rgb"].permute(0, 1, 3, 4, 2).numpy() * 255).astype(np.uint8)
        outside = ~mask
        np.testing.assert_array_equal(rgb[outside], np.broadcast_to(item["background"][:, None], rgb.shape)[outside])


def test_resume_keeps_finished_clips(clip_set):
    path = os.path.join(clip_set, "samples", "xe-ellipsoid-00_soft", "meta.json")
    before = os.path.getmtime(path)
    assert cross_engine.main(["--out", clip_set] + ARGS) == 0
    assert os.path.getmtime(path) == before
    assert cross_engine.main(["--out", clip_set] + ARGS[:-1] + ["--seed", "3", "--no-progress"]) == 2  # other settings


def test_plan_is_deterministic_and_paired():
    config = cross_engine.CrossEngineConfig()
    a, b = cross_engine.plan_clips(config, 0), cross_engine.plan_clips(config, 0)
    assert a == b and a != cross_engine.plan_clips(config, 1)
    assert len(a) == 24 and sum(s.motion == "toss" for s in a) == 12
    assert len({s.object_id for s in a}) == 12
    for soft, stiff in zip(a[::2], a[1::2]):
        assert (soft.stiffness, stiff.stiffness) == ("soft", "stiff") and soft.object_id == stiff.object_id
        assert stiff.mu >= 4 * soft.mu and stiff.lam >= 4 * soft.lam
        assert 0.05 <= soft.size <= 0.40
        if soft.motion == "toss":
            speed = np.hypot(*soft.velocity[:2])
            assert 0.3 <= speed <= 1.0 and 1.0 <= soft.velocity[2] <= 2.5
            assert 2.0 <= np.linalg.norm(soft.angular_velocity) <= 5.0


def test_damping_pairs_differ_only_in_damping_and_leave_stiffness_pairs_as_they_were():
    stiffness = cross_engine.plan_clips(cross_engine.CrossEngineConfig(), 0)
    damping = cross_engine.plan_clips(cross_engine.CrossEngineConfig(pair_kind="damping"), 0)
    assert len(damping) == 24
    for soft, low, high in zip(stiffness[::2], damping[::2], damping[1::2]):
        assert (low.damping_level, high.damping_level) == ("low", "high") and low.object_id == high.object_id
        assert low.sample_id.endswith("_lowdamp") and high.sample_id.endswith("_highdamp")
        assert 8.0 <= high.damping / low.damping <= 16.0
        # the same soft material, shape and motion as the stiffness pair's soft clip (its draws come first)
        assert (low.mu, low.lam, low.damping, low.velocity, low.orientation) == \
            (soft.mu, soft.lam, soft.damping, soft.velocity, soft.orientation)
        assert (high.mu, high.size, high.friction) == (low.mu, low.size, low.friction)
    with pytest.raises(ValueError, match="pair_kind"):
        cross_engine.CrossEngineConfig(pair_kind="mass").validate()


@pytest.mark.parametrize("kind", ["ellipsoid", "torus", "letter"])
def test_tet_mesh_is_valid(kind):
    shape = random_shape(np.random.default_rng(1), 1.0, kind)
    nodes, tets, _ = cross_engine.tet_mesh(ProceduralShape(shape.kind, shape.dims), 0.2, max_nodes=300)
    assert len(nodes) <= 300 and np.ptp(nodes, axis=0).max() == pytest.approx(0.2)
    vol = cross_engine._tet_volumes(nodes, tets)
    assert (vol > 0).all()
    faces = cross_engine.boundary_faces(nodes, tets)
    # closed surface: every edge in exactly two faces; outward: its enclosed volume equals the tets'
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts % 2 == 0).all()  # voxel meshes may meet along an edge: 4 faces there
    a, b, c = (nodes[faces[:, i]] for i in range(3))
    enclosed = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
    assert enclosed == pytest.approx(vol.sum(), rel=1e-6)


def test_missing_pybullet_names_the_optional_dependency(monkeypatch):
    monkeypatch.setitem(sys.modules, "pybullet", None)
    with pytest.raises(ImportError, match="optional dependency"):
        cross_engine._import_pybullet()
