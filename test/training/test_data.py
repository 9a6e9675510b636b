"""Synthetic data pipeline: objects, splits, params, storage, determinism, physics sanity, loader."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from reconphys_ros.core.physics import PARAM_RANGES, PhysicsParams
from reconphys_ros.core.physics.params import RATIO_RANGES, object_size, object_volume, ratios_from_paper
from training.data import generate
from training.data.dataset import SyntheticDataset
from training.data.objects import build_catalogue, build_object, split_of
from training.data.params import DENSITY_RANGE, SIZE_INDEPENDENT_NAMES, sample_params
from training.data.shapes import SHAPE_KINDS, random_shape
from training.data.storage import CorruptSampleError, read_npz, verify_sample


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tiny") / "ds")
    assert generate.main(["--out", root, "--tiny", "--workers", "1", "--no-progress"]) == 0
    return root


def test_tiny_is_deterministic_and_resumable(tiny_root, tmp_path):
    other = str(tmp_path / "again")
    assert generate.main(["--out", other, "--tiny", "--workers", "1", "--no-progress"]) == 0
    for dirpath, _, files in os.walk(tiny_root):
        for name in files:
            a = os.path.join(dirpath, name)
            b = os.path.join(other, os.path.relpath(a, tiny_root))
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), f"{name} differs between two runs"
    # resume: nothing left to do, files untouched
    report = generate.generate_dataset(other, generate.plan_samples(generate.TINY_SIZES),
                                       generate.config_from_args(generate.build_parser().parse_args(
                                           ["--out", other, "--tiny"]))[1], progress=False, log=lambda *_: None)
    assert report["generated"] == 0 and not report["failed"]


def test_splits_are_disjoint_and_reserve_duck_and_bunny():
    cat = build_catalogue(450, 24, 46)
    assert [len(cat[s]) for s in ("train", "val", "test")] == [450, 24, 46]
    train, val, test = (set(cat[s]) for s in ("train", "val", "test"))
    assert not (train & test) and not (train & val) and not (val & test)
    assert {"mesh-duck", "mesh-bunny"} <= test
    # stable: a smaller request is a prefix of the same assignment
    small = build_catalogue(10, 2, 4)
    assert small["train"] == cat["train"][:10] and small["test"] == cat["test"][:4]
    assert all(split_of(o) == "train" for o in cat["train"])


def _box_anchors(size, n=200, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 3)) * np.array([1.0, 0.7, 0.5]) * size


def test_param_sampling_is_size_independent():
    """m_p, k_p, d_p, f are drawn in the paper's ranges; their ratios are the size-independent values, the metric
    simulator params follow at the object's size, and the mass from a density in DENSITY_RANGE."""
    rng = np.random.default_rng(0)
    for size in (0.05, 0.3, 1.0):
        anchors = _box_anchors(size)
        L, V = object_size(anchors), object_volume(anchors)
        draws = [sample_params(rng, anchors) for _ in range(500)]
        for params, sampling, physics in draws:
            paper = PhysicsParams.from_dict(physics["paper_draw"])
            for name, (lo, hi) in PARAM_RANGES.items():
                assert lo <= getattr(paper, name) <= hi
            values = params.size_independent(L)
            np.testing.assert_allclose(values, ratios_from_paper(np.array(paper.to_tuple())), rtol=0, atol=1e-9)
            for v, (lo, hi) in zip(values, RATIO_RANGES.values()):
                assert lo - 1e-9 <= v <= hi + 1e-9
            # the metric k/m follows the similarity law: (k_p/m_p) / L
            assert params.stiffness_per_mass == pytest.approx(paper.stiffness_per_mass / L, rel=1e-9)
            assert params.damping_per_mass == pytest.approx(paper.damping_per_mass / np.sqrt(L), rel=1e-9)
            assert params.total_mass == pytest.approx(physics["density"] * V, rel=1e-9)
            assert DENSITY_RANGE[0] <= physics["density"] <= DENSITY_RANGE[1]
            assert sampling["form"] == "size-independent" and sampling["stiffness"] == "log-uniform"
        # log-uniform stiffness: its median sits at the geometric mean, not the arithmetic one
        k = np.array([d[2]["paper_draw"]["stiffness"] for d in draws])
        assert abs(np.log(np.median(k)) - 0.5 * np.log(10 * 1200)) < 0.3


def test_sideways_heading_is_uniform_towards_and_away():
    from training.data.params import MotionRanges, sample_choices

    rng = np.random.default_rng(3)
    anchors = _box_anchors(0.3)
    ranges = MotionRanges(sideways_speed=(0.5, 0.8))
    heading = np.array([np.arctan2(*sample_choices(rng, 0.3, ranges, anchors=anchors).velocity[1::-1])
                        for _ in range(800)])
    counts = np.histogram(heading, bins=8, range=(-np.pi, np.pi))[0]
    assert counts.min() > 0.6 * 100 and counts.max() < 1.4 * 100, counts  # every direction, about evenly
    with pytest.raises(ValueError, match="anchors"):
        sample_choices(rng, 0.3, ranges)


@pytest.mark.parametrize("kind", SHAPE_KINDS)
def test_procedural_shapes_are_closed_and_sized(kind):
    shape = random_shape(np.random.default_rng(1), 0.5, kind)
    half = shape.half_extent
    assert 0.15 < 2 * half.max() < 0.65
    pts = np.random.default_rng(2).uniform(-half, half, (4000, 3))
    inside = shape.sdf(pts) < 0
    assert 0.05 < inside.mean() < 1.0
    far = shape.sdf(np.array([[5.0, 5.0, 5.0]]))
    assert far[0] > 0


def test_object_gaussians_have_valid_fields():
    asset = build_object("proc-rounded_box-00009", 0.6, 600)
    assert asset.means.shape == (600, 3) and asset.colors.shape == (600, 3)
    assert np.isclose(np.ptp(asset.means, axis=0).max(), 0.6, rtol=0.1)
    cloud = asset.to_gaussian_cloud()
    cloud.validate()
    again = build_object("proc-rounded_box-00009", 0.6, 600)
    assert np.array_equal(asset.means, again.means), "object ids must be stable"


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="size"):
        build_object("proc-ellipsoid-00001", -1.0, 100)
    with pytest.raises(ValueError, match="proc-"):
        build_object("nonsense", 0.5, 100)
    with pytest.raises(ValueError, match="non-negative"):
        build_catalogue(-1, 0, 0)


def test_loader_shapes_and_masks(tiny_root):
    meta = json.load(open(os.path.join(tiny_root, "manifest.json")))
    assert {e["split"] for e in meta["samples"]} == {"train", "test"}
    ds = SyntheticDataset(tiny_root, "train")
    item = ds[0]
    V, T, H = 4, 30, 32
    assert item["rgb"].shape == (V, T, 3, H, H) and item["rgb"].dtype == torch.float32
    assert item["alpha"].shape == (V, T, 1, H, H) and item["depth"].shape == (V, T, 1, H, H)
    assert item["K"].shape == (V, 3, 3) and item["world_to_cam"].shape == (V, 4, 4)
    n_a = item["anchors"].shape[1]
    assert item["anchors"].shape == (T, n_a, 3) and item["gaussian_means"].shape[0] == T
    assert item["params"].shape == (4,)
    PhysicsParams(*item["params"].tolist()).validate()
    assert torch.equal(item["mask"], item["alpha"] >= 0.5)
    assert item["mask"].any() and not item["mask"].all()
    assert (item["depth"][~item["mask"]] == 0).all() and (item["depth"][item["mask"]] > 0).all()
    single = SyntheticDataset(tiny_root, "train", views=0, frames=(0, 20))[0]
    assert single["rgb"].shape == (20, 3, H, H) and single["anchors"].shape == (20, n_a, 3)
    assert torch.equal(single["rgb"], item["rgb"][0, :20])


def test_masks_match_projected_anchors(tiny_root):
    """Independent check of cameras + images: projected anchors of frame 0 fall inside the mask."""
    item = SyntheticDataset(tiny_root, "train")[0]
    for v in range(4):
        K, w2c = item["K"][v], item["world_to_cam"][v]
        cam = item["anchors"][0] @ w2c[:3, :3].T + w2c[:3, 3]
        px = (cam @ K.T)[:, :2] / cam[:, 2:3]
        cols, rows = px[:, 0].long().clamp(0, 31), px[:, 1].long().clamp(0, 31)
        assert item["alpha"][v, 0, 0, rows, cols].mean() > 0.6


def test_corrupt_file_is_named(tiny_root, tmp_path):
    root = str(tmp_path / "copy")
    shutil.copytree(tiny_root, root)
    sample = SyntheticDataset(root, "train").sample_dir(0)
    bad = os.path.join(sample, "rgb_v2.png")
    with open(bad, "r+b") as f:
        f.seek(100)
        f.write(b"\x00" * 64)
    with pytest.raises(CorruptSampleError, match="rgb_v2.png"):
        verify_sample(sample)
    with pytest.raises(CorruptSampleError, match="rgb_v2.png"):
        SyntheticDataset(root, "train", verify=True)[0]
    with open(os.path.join(sample, "arrays.npz"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(CorruptSampleError, match="arrays.npz"):
        read_npz(os.path.join(sample, "arrays.npz"))
    # the generator reports and regenerates instead of crashing
    assert generate.main(["--out", root, "--tiny", "--verify-only"]) == 1
    assert generate.main(["--out", root, "--tiny", "--workers", "1", "--no-progress"]) == 0
    verify_sample(sample)


def test_preview_contact_sheet(tiny_root, tmp_path):
    from training.data.preview import contact_sheet, main as preview_main

    ds = SyntheticDataset(tiny_root, "train")
    sheet = contact_sheet(ds.sample_dir(0), every=3)
    assert sheet.shape == (4 * 32, 10 * 32, 3) and sheet.dtype == np.uint8
    out = str(tmp_path / "sheet.png")
    assert preview_main([tiny_root, "--out", out]) == 0 and os.path.getsize(out) > 0


def test_help_text_mentions_key_options(capsys):
    with pytest.raises(SystemExit):
        generate.main(["--help"])
    text = capsys.readouterr().out
    for word in ("--tiny", "--resolution", "--lattice", "--workers", "duck", "resum"):
        assert word in text


def test_motion_ranges_are_settable_from_the_command_line():
    from training.data.generate import build_parser, config_from_args
    from training.data.params import sample_choices
    args = build_parser().parse_args(["--out", "unused", "--drop-height", "0.5,0.6", "--spin", "0,0",
                                      "--toss-up-probability", "0", "--sideways-speed", "0,0"])
    _, config = config_from_args(args)
    assert config.motion.drop_height == (0.5, 0.6) and config.to_dict()["motion"]["spin"] == [0.0, 0.0]
    rng = np.random.default_rng(0)
    anchors = _box_anchors(0.8)
    for _ in range(20):
        choices = sample_choices(rng, 0.8, config.motion, anchors=anchors)
        assert np.allclose(choices.angular_velocity, 0.0) and choices.velocity[2] <= 0.0
        assert np.allclose(choices.velocity[:2], 0.0) and 0.5 * 0.8 - 1e-9 <= choices.drop_gap <= 0.6 * 0.8 + 1e-9
    for bad in (["--drop-height", "2,1"], ["--toss-up-probability", "1.5"], ["--spin=-1,2"]):
        with pytest.raises(ValueError):
            config_from_args(build_parser().parse_args(["--out", "unused", *bad]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--out", "unused", "--spin", "fast"])


def test_size_buckets_metas_and_size_independent_round_trip(tiny_root):
    """generation.json reports collapse per size bucket consistently with the clips' metas; each meta's physics
    round-trips: metric params <-> size-independent values at object_size, total mass, density x volume; cameras
    stand where a robot's would."""
    from training.data.sample import SampleConfig
    from training.data.storage import read_meta

    with open(os.path.join(tiny_root, generate.GENERATION_FILE)) as f:
        summary = json.load(f)["summary"]
    with open(os.path.join(tiny_root, "manifest.json")) as f:
        metas = [read_meta(os.path.join(tiny_root, "samples", e["sample_id"])) for e in json.load(f)["samples"]]
    assert summary["samples"] == len(metas) == 3
    buckets = summary["collapse_by_size"]
    assert [b["bucket"] for b in buckets] == [name for name, _, _ in generate.SIZE_BUCKETS]
    for b in buckets:
        inside = [m for m in metas if b["min_m"] <= m["object_size"] < (b["max_m"] or np.inf)]
        collapsed = sum(m["stats"]["collapse_ratio"] < 0.5 for m in inside)
        assert b["samples"] == len(inside) and b["collapsed"] == collapsed
        assert b["share_collapsed"] == (collapsed / len(inside) if inside else None)
    assert sum(b["samples"] for b in buckets) == len(metas)
    assert summary["share_collapsed_below_half"] == pytest.approx(
        np.mean([m["stats"]["collapse_ratio"] < 0.5 for m in metas]))
    # after the impact (issue 20): each clip's bounce / roll-out / settling, and their distribution
    landed = [m["stats"] for m in metas if m["stats"]["impact_frame"] is not None]
    after = summary["after_impact"]
    assert after["clips"] == len(landed) > 0
    assert after["bounce_sizes"]["p50"] == pytest.approx(np.percentile([s["bounce_sizes"] for s in landed], 50))
    assert all(s["bounce_sizes"] >= 0 and s["rollout_sizes"] >= 0 and 0 <= s["settling_s"] <= 1.0 for s in landed)
    lo, hi = SampleConfig().size_range
    for m in metas:
        params = PhysicsParams.from_dict(m["params"]).validate()
        anchors = read_npz(os.path.join(tiny_root, "samples", m["sample_id"], "arrays.npz"))["anchors"][0]
        assert m["object_size"] == pytest.approx(object_size(anchors), rel=1e-4)  # anchors at rest, any pose
        assert m["object_volume"] == pytest.approx(object_volume(anchors), rel=1e-3)
        assert lo <= m["object"]["size"] <= hi
        values = [m["size_independent"][n] for n in SIZE_INDEPENDENT_NAMES]
        np.testing.assert_allclose(params.size_independent(m["object_size"]), values, rtol=0, atol=1e-9)
        again = PhysicsParams.from_size_independent(values, m["object_size"], m["total_mass"])
        np.testing.assert_allclose(again.to_tuple(), params.to_tuple(), rtol=1e-9)
        assert m["total_mass"] == pytest.approx(params.total_mass, rel=1e-12)
        assert m["total_mass"] == pytest.approx(m["density"] * m["object_volume"], rel=1e-9)
        assert DENSITY_RANGE[0] <= m["density"] <= DENSITY_RANGE[1]
        assert m["substeps"] >= generate.TINY_CONFIG["substeps"]
        cams = m["cameras"]
        assert 10.0 <= cams["elevation_deg"] <= 50.0 and 0.05 <= cams["fill_target"] <= 0.6
        K = read_npz(os.path.join(tiny_root, "samples", m["sample_id"], "arrays.npz"))["K"]
        fov = np.degrees(2 * np.arctan(K[:, 0, 2] / K[:, 0, 0]))
        np.testing.assert_allclose(fov, cams["fov_deg"], atol=1e-3)
        for view in cams["views"]:
            assert 0.4 - 1e-9 <= view["distance_m"] <= 2.5 + 1e-9
            assert view["motion_in_view"]
            if view["clamped"] != "far":  # as near as the fill asks, farther where the drop needs it
                assert view["fill"] <= cams["fill_target"] * 1.02
    assert len({generate.size_bucket(m["object_size"]) for m in metas}) == 3  # the fixture spans every bucket


def test_frame_rate_option_films_the_same_motion():
    """--fps 15 (issue 19.3: training data at the slower camera rates the pipeline keeps): the same sample seen at 15
    fps is the 30 fps clip's every other frame (the substeps per frame double, so the physics step is the same)."""
    from training.data.sample import simulate_sample

    configs = {}
    for fps in (30.0, 15.0):
        args = generate.build_parser().parse_args(["--out", "unused", "--tiny", "--fps", str(fps), "--frames", "7"])
        configs[fps] = generate.config_from_args(args)[1]
    assert configs[15.0].fps == 15.0 and configs[15.0].substeps == 2 * configs[30.0].substeps
    task = generate.plan_samples(generate.TINY_SIZES)[0]
    traj = {fps: simulate_sample(task.object_id, task.seed, config)[2] for fps, config in configs.items()}
    np.testing.assert_allclose(traj[15.0][:4], traj[30.0][::2][:4], atol=2e-3)
    assert not np.allclose(traj[15.0][3], traj[30.0][3], atol=2e-3)  # it really moved between the two
    with pytest.raises(ValueError, match="fps"):
        generate.config_from_args(generate.build_parser().parse_args(["--out", "x", "--fps", "1000"]))
