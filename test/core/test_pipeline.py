"""ReconstructionPipeline end to end on a synthetic drop (mask-inflation fallback, no learned weights)."""
import numpy as np
import pytest

from reconphys_ros.core.physics.params import object_size
import torch

from reconphys_ros.core.asset import SimAsset
from reconphys_ros.testing.synthetic_drop import make_drop_clip
from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.pipeline import (PipelineConfig, ReconstructionPipeline, ReconstructionRefused,
                                        check_drop_observed, predict_future, rigid_velocities)


@pytest.fixture(scope="module")
def clip():
    torch.set_num_threads(1)
    return make_drop_clip(PhysicsParams(1.0, 200.0, 1.0, 0.5))


@pytest.fixture(scope="module")
def result(clip, tmp_path_factory):
    pipe = ReconstructionPipeline(PipelineConfig(weights_dir=str(tmp_path_factory.mktemp("no_weights"))))
    return pipe.run(clip.frames, clip.masks, clip.camera, "drop_01", fps=clip.fps)


def _iou(a, b):
    return ((a > 0) & (b > 0)).sum((-2, -1)) / np.maximum(((a > 0) | (b > 0)).sum((-2, -1)), 1)


def test_pipeline_returns_a_valid_asset_with_stage_timings(result):
    asset = result.asset
    assert isinstance(asset, SimAsset)
    asset.validate()
    assert asset.num_anchors == 512 and asset.lattice_neighbors == 32
    assert asset.binding_neighbors == 8
    assert set(result.timings) >= {"gaussians", "initial_state", "lattice", "physics", "asset", "total"}
    assert result.timings["total"] >= result.timings["physics"] > 0
    assert np.isfinite(result.initial_velocity).all()
    # the reconstruction sits where the object was at frame 0 (ellipsoid centre at z = 0.30 m)
    centre = asset.gaussians.means.mean(0).numpy()
    assert abs(centre[2] - 0.30) < 0.05 and np.abs(centre[:2]).max() < 0.05


def test_asset_converts_to_a_ros_message(result):
    conversions = pytest.importorskip("reconphys_ros.ros.conversions", exc_type=ImportError)
    msg = conversions.asset_to_msg(result.asset)
    back = conversions.asset_from_msg(msg)
    assert back.object_id == "drop_01"
    assert back.physics.params.stiffness == pytest.approx(result.asset.physics.params.stiffness, rel=1e-6)


def test_resimulated_masks_overlap_the_observed_ones(clip, result):
    future = predict_future(result.asset, result.initial_velocity, 30, clip.camera, fps=clip.fps)
    assert future.rgb.shape == clip.frames.shape and future.masks.shape == clip.masks.shape
    assert future.anchors.shape == (30, 512, 3)
    iou = _iou(future.masks, clip.masks)
    assert iou[0] > 0.9  # the reconstruction matches the first frame
    assert iou[:6].mean() > 0.8  # the fall before impact (initial velocity + gravity)
    assert iou.min() > 0.2  # the object stays where it was seen
    # frame 0 of the prediction is the asset's rest pose
    np.testing.assert_allclose(future.anchors[0], result.asset.anchors, atol=1e-6)


def test_known_mass_is_reported_as_given(clip, tmp_path):
    cfg = PipelineConfig(known_mass=0.4, num_frames=8, sweep_points=4, weights_dir=str(tmp_path))
    res = ReconstructionPipeline(cfg).run(clip.frames, clip.masks, clip.camera, "drop_02")
    physics = res.asset.physics
    # known_mass is the object's total mass in kg
    assert physics.mass_given and physics.total_mass == pytest.approx(0.4) and physics.std["mass"] == 0.0
    assert physics.size == pytest.approx(object_size(res.asset.anchors))
    for bad in (-1.0, 0.0, float("nan"), 1e4):
        with pytest.raises(ValueError, match="known_mass.*kg"):
            PipelineConfig(known_mass=bad, weights_dir=str(tmp_path)).validate()


def test_bad_inputs(clip, tmp_path):
    pipe = ReconstructionPipeline(PipelineConfig(num_frames=5, sweep_points=3, weights_dir=str(tmp_path)))
    frames, masks, cam = clip.frames[:5], clip.masks[:5], clip.camera
    empty = masks.copy()
    empty[3] = 0
    with pytest.raises(ValueError, match="frame 3 is empty"):
        pipe.run(frames, empty, cam, "a")
    with pytest.raises(ValueError, match="masks must be"):
        pipe.run(frames, masks[:, :40], cam, "a")
    with pytest.raises(ValueError, match="camera is"):
        pipe.run(frames[:, :40, :40], masks[:, :40, :40], cam, "a")
    nan = frames.astype(np.float32) / 255
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        pipe.run(nan, masks, cam, "a")
    with pytest.raises(ValueError, match="object id"):
        pipe.run(frames, masks, cam, "../evil")
    with pytest.raises(ValueError, match="at least 3 frames"):
        pipe.run(frames[:2], masks[:2], cam, "a")
    with pytest.raises(ValueError, match="lattice"):
        PipelineConfig(lattice="huge").validate()
    with pytest.raises(ValueError, match="known_mass"):
        PipelineConfig(known_mass=-1.0).validate()


def test_given_gaussians_replace_the_gaussian_stage(clip, result, tmp_path):
    cfg = PipelineConfig(num_frames=8, sweep_points=3, weights_dir=str(tmp_path))
    given = result.asset.gaussians.with_means(result.asset.gaussians.means + torch.tensor([0.0, 0.0, 0.05]))
    res = ReconstructionPipeline(cfg).run(clip.frames, clip.masks, clip.camera, "drop_03", gaussians=given)
    assert torch.equal(res.asset.gaussians.means, given.means) and "frame-0 Gaussians given" in res.notes
    with pytest.raises(ValueError, match="GaussianCloud"):
        ReconstructionPipeline(cfg).run(clip.frames, clip.masks, clip.camera, "drop_03", gaussians="cloud")


def test_physics_model_choice(tmp_path):
    with pytest.raises(ValueError, match="physics_model"):
        PipelineConfig(physics_model="oracle").validate()
    with pytest.raises(ValueError, match="physics_predictor.pt"):
        ReconstructionPipeline(PipelineConfig(weights_dir=str(tmp_path), physics_model="learned"))
    shipped = ReconstructionPipeline(PipelineConfig(physics_model="simulation"))
    assert shipped.physics_predictor is None  # the shipped weights are there but not used


def test_rigid_velocities_and_spin_in_predict_future(result):
    anchors = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]])
    vel = rigid_velocities(anchors, (0.5, 0, 0), (0, 0, 2.0))  # spin about z through the centroid
    np.testing.assert_allclose(vel, [[0.5, 2, 0], [0.5, -2, 0], [-1.5, 0, 0], [2.5, 0, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="angular_velocity"):
        rigid_velocities(anchors, (0, 0, 0), (0, np.nan, 0))
    # one frame of a spinning asset: the anchors turn about their centroid (free flight, no ground contact yet)
    spin = predict_future(result.asset, (0, 0, 0), num_frames=2, angular_velocity=(0, 0, 3.0))
    still = predict_future(result.asset, (0, 0, 0), num_frames=2)
    x0 = result.asset.anchors - result.asset.anchors.mean(0)
    moved = (spin.anchors[1] - still.anchors[1])[:, :2]  # (N_A, 2) the spin's horizontal displacement
    expected = np.cross([0, 0, 3.0], x0)[:, :2] / 30.0
    assert np.median(np.linalg.norm(moved - expected, axis=1)) < 0.2 * np.median(np.linalg.norm(expected, axis=1))


@pytest.mark.parametrize("fps", [1e-9, 1.0, 4.9, 501.0, 1e9, float("nan")])
def test_frame_rates_outside_real_cameras_are_refused(clip, tmp_path, fps):
    pipe = ReconstructionPipeline(PipelineConfig(num_frames=5, sweep_points=3, weights_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="frame rate within 5-500 Hz"):
        pipe.run(clip.frames[:5], clip.masks[:5], clip.camera, "a", fps=fps)


# ------------------------------------------------------------------ refusals (issue 18.5, 18.9)
def _disk_masks(rows, size=96, radius=10.0, col=48.0):
    yy, xx = np.mgrid[:size, :size]
    return np.stack([(((yy - r) ** 2 + (xx - col) ** 2) <= radius ** 2) * 255 for r in rows]).astype(np.uint8)


def test_static_objects_and_full_image_masks_are_refused(clip, tmp_path):
    """A static object gave k/m 705 and +1 m/s upward; full-image masks an object 0.16 m underground."""
    pipe = ReconstructionPipeline(PipelineConfig(num_frames=8, sweep_points=3, weights_dir=str(tmp_path)))
    static_frames, static_masks = np.repeat(clip.frames[:1], 8, 0), np.repeat(clip.masks[:1], 8, 0)
    with pytest.raises(ReconstructionRefused, match="no fall observed"):
        pipe.run(static_frames, static_masks, clip.camera, "static")
    full = np.full_like(clip.masks[:8], 255)
    with pytest.raises(ReconstructionRefused, match="mask covers the whole image"):
        pipe.run(clip.frames[:8], full, clip.camera, "full")


def test_fall_check_accepts_tossed_objects_and_refuses_jitter_and_rising(clip):
    cam = clip.camera  # a level side view of the synthetic drop: "down" in the image is +v
    check_drop_observed(_disk_masks([40, 41, 43, 46, 50, 55]), cam)        # falls
    check_drop_observed(_disk_masks([40, 37, 35, 34, 34, 35, 37, 40]), cam)  # tossed: rises first, then falls
    check_drop_observed(_disk_masks([30, 35, 60, 60, 60]), cam)            # lands within the clip and rests
    for rows in ([40, 41, 40, 41, 40, 41], [40, 37, 35, 33, 32, 31]):      # segmentation jitter; rising only
        with pytest.raises(ReconstructionRefused, match="no fall observed"):
            check_drop_observed(_disk_masks(rows), cam)


def test_implausible_reconstructions_are_refused_with_the_measured_reason(clip, result, tmp_path, monkeypatch):
    pipe = ReconstructionPipeline(PipelineConfig(num_frames=8, sweep_points=3, weights_dir=str(tmp_path)))
    frames, masks, cam = clip.frames[:8], clip.masks[:8], clip.camera
    g = result.asset.gaussians
    centre = g.means.mean(0)
    cases = [
        (g.with_means((g.means - centre) * 20 + centre), r"implausible object size: the reconstruction is \d"),
        (g.with_means((g.means - centre) * 0.02 + centre), "implausible object size"),
        (g.with_means(g.means + cam.cam_to_world[:3, 2] * 100.0), "implausible object depth"),
        (g.with_means(g.means - cam.cam_to_world[:3, 2] * 10.0), "implausible object depth"),  # behind the camera
    ]
    for given, pattern in cases:
        with pytest.raises(ReconstructionRefused, match=pattern):
            pipe.run(frames, masks, cam, "odd", gaussians=given)
    # given Gaussians keep their depth (the initial-state fit moves only reconstructed ones): one underground is
    # refused, not a note
    sunk = g.with_means(g.means - torch.tensor([0.0, 0.0, 0.5]))
    with pytest.raises(ReconstructionRefused, match="below the ground plane"):
        pipe.run(frames, masks, cam, "sunk", gaussians=sunk)


def test_refusals_are_value_errors():
    assert issubclass(ReconstructionRefused, ValueError)  # callers that catch ValueError keep working


@pytest.mark.parametrize("velocity", [(0.4, 0.2, 1.2), (0.0, -0.5, 0.8)])
def test_pipeline_recovers_the_state_of_a_tossed_object(velocity):
    """A simulated, rendered toss (issue 15): the pipeline's frame-0 velocity, depth and impact from its own
    reconstruction, against the truth; the asset carries that motion."""
    from reconphys_ros.testing.synthetic_drop import make_drop_clip

    clip = make_drop_clip(velocity=velocity, resolution=128, num_frames=20, drop_gap=0.3)
    result = ReconstructionPipeline(PipelineConfig()).run(clip.frames, clip.masks, clip.camera, "toss")
    assert np.linalg.norm(result.initial_velocity - velocity) < 0.15 * np.linalg.norm(velocity), result.initial_velocity
    w2c = clip.camera.world_to_cam.numpy().astype(np.float64)
    true_depth = (w2c[:3, :3] @ clip.gaussian_means[0].mean(0) + w2c[:3, 3])[2]
    state = result.initial_state
    assert state.trusted and abs(state.depth / true_depth - 1) < 0.05, (state.depth, true_depth)
    low = clip.gaussian_means[:, :, 2].min(1)  # (T,) the true lowest Gaussian centre per frame
    true_impact = int(np.nonzero(low <= low.min() + 0.01)[0][0])
    assert state.impact_frame is not None and abs(state.impact_frame - true_impact) <= 1, (state.impact_frame,
                                                                                          true_impact)
    motion = result.asset.initial_motion
    np.testing.assert_allclose(motion.velocity, result.initial_velocity, rtol=1e-6)
    assert motion.depth_trusted and np.isfinite(motion.impact_time)


def test_warm_up_runs_the_whole_pipeline_on_its_synthetic_drop():
    """warm_up's synthetic sphere drop goes through every stage with the shipped weights (not refused half way),
    and the object comes out near its true 1.5 m depth."""
    pipeline = ReconstructionPipeline(PipelineConfig())
    results = []
    run = pipeline.run
    pipeline.run = lambda *a, **k: results.append(run(*a, **k)) or results[-1]
    seconds = pipeline.warm_up()
    assert seconds > 0 and len(results) == 1
    assert results[0].asset.num_anchors > 0
    assert abs(results[0].initial_state.depth - 1.5) < 0.15
