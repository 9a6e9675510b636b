"""Pieces of the demo without ROS: background estimate, compositing, the sim render view, strips, summary."""
import json

import numpy as np
import pytest
import torch

from reconphys_ros.core.render import focal_from_fov, look_at
from reconphys_ros.demo.cli import closed_spans, sim_render_view
from reconphys_ros.core.compositing import composite, estimate_background
from reconphys_ros.demo.evaluation import centroid_heights
from reconphys_ros.demo.report import strips
from reconphys_ros.demo.report.summary import write_summary

torch.set_num_threads(1)


def _moving_square_clip(T=6, H=24, W=32, seed=0):
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    frames = np.repeat(background[None], T, 0)
    masks = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        frames[t, 5:12, 2 + 4 * t:9 + 4 * t] = (255, 0, 0)
        masks[t, 5:12, 2 + 4 * t:9 + 4 * t] = 255
    return background, frames, masks


def test_background_recovers_the_static_scene_behind_a_moving_object():
    background, frames, masks = _moving_square_clip()
    estimate = estimate_background(frames, masks, dilate_px=0)
    np.testing.assert_array_equal(estimate, background)
    # the median would also work here, but an object that stays put would leak in: pixels covered in every frame
    # are inpainted from their surroundings instead of taking the object's colour
    frames[:, 0:3, 0:3] = (255, 0, 0)
    masks[:, 0:3, 0:3] = 255
    estimate = estimate_background(frames, masks, dilate_px=0)
    assert not (estimate[0:3, 0:3] == (255, 0, 0)).all(-1).any()


@pytest.mark.parametrize("bad", ["shape", "cover"])
def test_background_refuses_bad_input(bad):
    _, frames, masks = _moving_square_clip()
    with pytest.raises(ValueError):
        if bad == "shape":
            estimate_background(frames, masks[:, :-1])
        else:
            estimate_background(frames, np.full_like(masks, 255))


def test_composite_is_alpha_blending_over_the_background():
    colour = torch.tensor([[[[0.5, 0.0, 0.0]]]])  # premultiplied, alpha 0.5 -> red 1.0 at full opacity
    alpha = torch.tensor([[[0.5]]])
    background = np.array([[[0, 255, 0]]], np.uint8)
    out = composite(colour, alpha, background)
    np.testing.assert_array_equal(out[0, 0, 0], [128, 128, 0])


def test_centroid_heights():
    anchors = np.zeros((3, 4, 3), np.float32)
    anchors[..., 2] = np.array([0.0, 1.0, 2.0])[:, None] + np.arange(4)[None]
    np.testing.assert_allclose(centroid_heights(anchors), [1.5, 2.5, 3.5])
    with pytest.raises(ValueError):
        centroid_heights(np.zeros((3, 4)))


def test_sim_render_view_reproduces_the_clip_camera():
    clip_cam = look_at((2.1, 0.3, 1.1), (0.0, 0.0, 0.4), fx=focal_from_fov(40.0, 128), width=128, height=128)
    view = sim_render_view(clip_cam.K.numpy(), clip_cam.world_to_cam.numpy(), 128, 128)
    again = look_at(view["render_camera_position"], view["render_camera_look_at"],
                    fx=focal_from_fov(view["render_fov_deg"], 128), width=128, height=128)
    assert view["render_fov_deg"] == pytest.approx(40.0, abs=1e-3)
    torch.testing.assert_close(again.world_to_cam, clip_cam.world_to_cam, atol=1e-4, rtol=0)
    torch.testing.assert_close(again.K, clip_cam.K, atol=1e-3, rtol=0)


def test_closed_spans_from_commands():
    p = np.zeros(3)
    commands = [(1.0, p, False), (2.0, p, True), (3.0, p, True), (4.0, p, False), (5.0, p, True), (6.0, p, True)]
    assert closed_spans(commands, 1.0) == [(1.0, 3.0), (4.0, 5.0)]
    assert closed_spans([], 0.0) == []


def test_comparison_strip_layout_and_frame_picks():
    T, H, W = 30, 16, 20
    truth = np.zeros((T, H, W, 3), np.uint8)
    masks = np.zeros((T, H, W), bool)
    grid = strips.comparison_strip(truth, truth.copy(), masks, masks, observed=20, columns=10)
    band = 14
    assert grid.shape[0] == 3 * (H + band)
    picks = strips._pick_frames(T, 20, 10)
    assert picks[0] == 0 and 19 in picks and 20 in picks and picks[-1] == 29 and len(picks) == 10
    assert grid.shape[1] == len(picks) * W + (len(picks) - 1) * 3
    with pytest.raises(ValueError):
        strips.comparison_strip(truth, truth[:-1], masks, masks, observed=20)


def test_over_background_and_marker():
    render = np.full((8, 8, 3), 255, np.uint8)
    render[2:4, 2:4] = (10, 20, 30)
    background = np.full((8, 8, 3), 7, np.uint8)
    out = strips.over_background(render, background)
    assert (out[2:4, 2:4] == (10, 20, 30)).all() and (out[0, 0] == 7).all()
    marked = strips.draw_marker(out, (5.0, 5.0), closed=True, radius=1)
    assert tuple(marked[5, 5]) == (220, 0, 0)


def test_mp4_round_trip(tmp_path):
    import cv2
    frames = [np.full((32, 48, 3), 40 * i, np.uint8) for i in range(5)]
    path = strips.write_mp4(str(tmp_path / "v.mp4"), frames, fps=5.0)
    if path is None:
        pytest.skip("this OpenCV build cannot write MP4")
    capture = cv2.VideoCapture(path)
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 5


def test_summary_refuses_an_incomplete_summary_and_writes_no_nan(tmp_path):
    from reconphys_ros.demo.report.summary import _finite
    with pytest.raises(ValueError, match="lacks"):
        write_summary(str(tmp_path), {"example": "x"})
    assert json.loads(json.dumps(_finite({"a": float("nan"), "b": [1.0, float("inf")]}))) == {"a": None,
                                                                                              "b": [1.0, None]}


def test_motion_line_against_the_truth():
    from reconphys_ros.demo.report.summary import _motion_line
    motion = {"estimate": {"velocity": [0.17, 0.05, -0.01], "angular_velocity": [0.2, 1.3, 0.0], "depth": 0.98,
                           "depth_trusted": False},
              "truth": {"velocity": [0.15, 0.05, 0.0], "angular_velocity": [0.0, 1.5, 0.0]}}
    line = _motion_line(motion)
    assert "velocity (0.17, 0.05, -0.01) m/s (truth (0.15, 0.05, 0.00))" in line
    assert "spin (0.2, 1.3, 0.0) rad/s (truth (0.0, 1.5, 0.0))" in line and "(fallback)" in line
    assert _motion_line(None) == "Frame-0 motion: not measured."
