"""Segmentation backends on synthetic videos of a textured ellipse falling over plain / cluttered backgrounds."""
import os
import sys
import types

import cv2
import numpy as np
import pytest

from reconphys_ros.core.segment import (
    OpenCvSegmenter,
    Segmenter,
    make_segmenter,
    mask_box,
)

H = W = 128


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def plain_background(h=H, w=W) -> np.ndarray:
    # A faint vertical gradient, like uneven lighting on a backdrop.
    ramp = np.linspace(0, 12, h, dtype=np.float32)[:, None, None]
    return np.clip(np.array([190, 196, 205], np.float32) + ramp, 0, 255).repeat(w, axis=1)


def cluttered_background(rng, h=H, w=W) -> np.ndarray:
    low = cv2.resize(rng.uniform(60, 200, (8, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = low.copy()
    for _ in range(4):  # static clutter boxes
        x, y = rng.integers(0, w - 20), rng.integers(h // 2, h - 20)
        cv2.rectangle(img, (int(x), int(y)), (int(x) + 18, int(y) + 14), rng.uniform(0, 255, 3).tolist(), -1)
    return np.clip(img, 0, 255)


def sky_and_floor_background(h=H, w=W) -> np.ndarray:
    """Light-blue sky over a grey/beige checkered floor, like the example clips."""
    img = np.empty((h, w, 3), np.float32)
    img[:] = (199, 217, 237)
    yy, xx = np.mgrid[0:h, 0:w]
    floor = yy >= h // 3
    tile = 4 + (yy - h // 3) // 4  # tiles grow towards the camera
    checker = ((xx // np.maximum(tile, 1) + (yy - h // 3) // np.maximum(tile // 2, 1)) % 2).astype(bool)
    img[floor & checker] = (209, 204, 189)
    img[floor & ~checker] = (140, 135, 128)
    return img


def object_layer(center, axes=(16, 11), angle=20.0, h=H, w=W):
    """Textured ellipse: checkerboard of two saturated colours. Returns (rgb float (H,W,3), mask bool (H,W))."""
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(round(center[0])), int(round(center[1]))), axes, angle, 0, 360, 255, -1)
    yy, xx = np.mgrid[0:h, 0:w]
    checker = ((xx // 5 + yy // 5) % 2).astype(bool)
    rgb = np.where(checker[..., None], np.array([220, 40, 30], np.float32), np.array([30, 60, 200], np.float32))
    return rgb, mask > 0


def drop_video(background, rest_frames=5, fall_frames=25, start=(64.0, 20.0), px_per_frame2=0.5, noise=0.0,
               seed=0, appear_at=0):
    """Frames where the object rests `rest_frames` frames then falls with constant acceleration.
    Frames before `appear_at` show the background only (mask empty)."""
    rng = np.random.default_rng(seed)
    frames, masks = [], []
    for i in range(rest_frames + fall_frames):
        t = max(0, i - rest_frames)
        center = (start[0], min(start[1] + 0.5 * px_per_frame2 * t * t, H - 14))
        img = background.copy()
        mask = np.zeros((H, W), bool)
        if i >= appear_at:
            rgb, mask = object_layer(center)
            img[mask] = rgb[mask]
        if noise > 0:
            img = img + rng.normal(0, noise, img.shape)
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
        masks.append(mask)
    return frames, masks


def run(segmenter: Segmenter, frames):
    return [segmenter.segment(f) for f in frames]


def test_plain_background_object_visible_from_first_frame():
    frames, truth = drop_video(plain_background())
    seg = make_segmenter("opencv")
    out = run(seg, frames)
    assert seg.has_plain_background
    for i, (m, t) in enumerate(zip(out, truth)):
        assert m.dtype == np.uint8 and m.shape == (H, W)
        assert set(np.unique(m)) <= {0, 255}
        assert iou(m, t) >= 0.9, f"frame {i}: IoU {iou(m, t):.3f}"


def test_sky_and_checkered_floor_object_visible_from_first_frame():
    frames, truth = drop_video(sky_and_floor_background(), rest_frames=0, start=(64.0, 40.0), px_per_frame2=0.3)
    seg = OpenCvSegmenter()
    out = run(seg, frames)
    assert seg.has_plain_background  # sky + two floor colours: a small palette
    scores = [iou(m, t) for m, t in zip(out, truth)]
    assert min(scores) >= 0.9, scores


EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "reconphys_ros", "examples")


@pytest.mark.parametrize("name", ["falling_cylinder", "falling_duck"])
def test_example_clip_masks(name):
    """The shipped example clips (rendered drops over a checkered floor): IoU with the true alpha >= 0.9."""
    folder = os.path.join(EXAMPLES, name)
    if not os.path.isfile(os.path.join(folder, "rgb_v0.png")):
        pytest.skip(f"example clip {name} not built (python -m training.data.examples)")
    rgb = cv2.cvtColor(cv2.imread(os.path.join(folder, "rgb_v0.png")), cv2.COLOR_BGR2RGB)
    alpha = cv2.imread(os.path.join(folder, "alpha_v0.png"), cv2.IMREAD_UNCHANGED)
    size = rgb.shape[1]
    frames, truths = rgb.reshape(-1, size, size, 3), alpha.reshape(-1, size, size) > 127
    out = run(OpenCvSegmenter(), list(frames))
    scores = [iou(m, t) for m, t in zip(out, truths)]
    assert min(scores) >= 0.9, scores


def test_object_entering_an_empty_scene_and_nothing_before():
    frames, truth = drop_video(plain_background(), rest_frames=0, appear_at=6, noise=6.0, seed=1)
    out = run(OpenCvSegmenter(), frames)
    for i in range(6):
        assert out[i].max() == 0, f"frame {i} should be empty"
    for i in range(6, len(frames)):
        assert iou(out[i], truth[i]) >= 0.88, f"frame {i}: IoU {iou(out[i], truth[i]):.3f}"


def test_cluttered_background_picks_the_falling_object_not_clutter():
    rng = np.random.default_rng(3)
    bg = cluttered_background(rng)
    frames, truth = drop_video(bg, rest_frames=0, appear_at=3, noise=3.0, seed=2)
    seg = OpenCvSegmenter()
    out = run(seg, frames)
    assert not seg.has_plain_background
    scores = [iou(out[i], truth[i]) for i in range(3, len(frames))]
    assert min(scores) >= 0.85, scores
    # Nothing outside a small ring around the true object.
    for i in range(3, len(frames)):
        near = cv2.dilate(truth[i].astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert not np.any((out[i] > 0) & ~near)


def test_cluttered_background_object_visible_from_first_frame_leaves_no_ghost():
    rng = np.random.default_rng(8)
    frames, truth = drop_video(cluttered_background(rng), rest_frames=3, fall_frames=27, px_per_frame2=0.8)
    out = run(OpenCvSegmenter(), frames)
    # Until it moves the object is part of the background; once it has left its start it is found alone.
    scores = [iou(out[i], truth[i]) for i in range(12, len(frames))]
    assert min(scores) >= 0.85, scores


def test_static_clutter_on_plain_background_loses_to_the_moving_object():
    bg = plain_background()
    cv2.rectangle(bg, (5, 90), (45, 125), (40, 140, 40), -1)  # bigger than the object, never moves
    frames, truth = drop_video(bg, rest_frames=0, appear_at=2, start=(90.0, 10.0))
    out = run(OpenCvSegmenter(), frames)
    for i in range(3, len(frames)):
        assert iou(out[i], truth[i]) >= 0.9, f"frame {i}: IoU {iou(out[i], truth[i]):.3f}"


def test_object_kept_after_it_comes_to_rest():
    frames, truth = drop_video(plain_background(), rest_frames=0, fall_frames=60)  # lands, then lies still
    out = run(OpenCvSegmenter(absorb_frames=10), frames)
    assert iou(out[-1], truth[-1]) >= 0.9


def test_empty_noisy_scene_gives_empty_masks():
    rng = np.random.default_rng(4)
    for bg in (plain_background(), cluttered_background(rng)):
        seg = OpenCvSegmenter()
        for _ in range(10):
            noisy = np.clip(bg + rng.normal(0, 10, bg.shape) + 0.5, 0, 255).astype(np.uint8)
            assert seg.segment(noisy).max() == 0


def test_heavy_noise_raises_the_threshold_but_keeps_the_object():
    frames, truth = drop_video(plain_background(), noise=15.0, seed=5)
    out = run(OpenCvSegmenter(), frames)
    assert np.mean([iou(m, t) for m, t in zip(out, truth)]) >= 0.9


def test_grabcut_refinement_on_clutter():
    rng = np.random.default_rng(6)
    frames, truth = drop_video(cluttered_background(rng), rest_frames=0, appear_at=2, seed=7)
    out = run(OpenCvSegmenter(grabcut=True), frames)
    scores = [iou(out[i], truth[i]) for i in range(2, len(frames))]
    assert min(scores) >= 0.85, scores


def test_reset_and_resolution_change_restart_the_model():
    frames, _ = drop_video(plain_background())
    seg = OpenCvSegmenter()
    first = run(seg, frames[:8])
    seg.reset()
    again = run(seg, frames[:8])
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    small = cv2.resize(frames[0], (64, 48))
    out = seg.segment(small)  # new stream at another size: no error, a mask of that size
    assert out.shape == (48, 64) and out.max() == 255


def test_scene_change_gives_empty_mask_then_recovers():
    frames, truth = drop_video(plain_background(), rest_frames=0, appear_at=5)
    seg = OpenCvSegmenter()
    run(seg, frames[:3])
    dark = (np.full_like(frames[3], 20))
    assert seg.segment(dark).max() == 0  # everything changed: restart, no false object
    seg.reset()
    out = run(seg, frames)
    assert iou(out[-1], truth[-1]) >= 0.9


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((H, W, 3), np.float32), "uint8"),
        (np.zeros((H, W), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((H, W, 4), np.uint8), r"\(H, W, 3\)"),
        (np.zeros((0, W, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_raise_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        OpenCvSegmenter().segment(bad)


def test_bad_options_and_backend_names():
    with pytest.raises(ValueError, match="unknown segmentation backend"):
        make_segmenter("deeplab")
    with pytest.raises(ValueError, match="threshold"):
        make_segmenter("opencv", threshold=float("nan"))
    with pytest.raises(ValueError, match="blur_size"):
        OpenCvSegmenter(blur_size=4)
    with pytest.raises(TypeError):
        make_segmenter("opencv", no_such_option=1)


def test_mask_box():
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 10:20] = 255
    np.testing.assert_allclose(mask_box(m, 0.0), [10, 5, 19, 9])
    np.testing.assert_allclose(mask_box(m, 0.2), [8, 4, 21, 10])
    assert mask_box(np.zeros((4, 4), np.uint8)) is None


# ---------------------------------------------------------------- SAM backend (optional dependency)
def test_sam_missing_package_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "segment_anything", None)  # makes the import fail
    with pytest.raises(ImportError, match="segment-anything") as info:
        make_segmenter("sam", checkpoint=str(tmp_path / "nope.pth"))
    assert "nope.pth" in str(info.value)  # both missing pieces are named at once


class _FakeSamModule(types.ModuleType):
    """Stands in for `segment_anything`: records the prompt box, answers with the box's pixels."""

    def __init__(self):
        super().__init__("segment_anything")
        self.loaded = []
        self.boxes = []
        fake = self

        class Model:
            def to(self, device):
                fake.device = device
                return self

        class Predictor:
            def __init__(self, model):
                self.image = None

            def set_image(self, image):
                assert image.dtype == np.uint8 and image.shape[2] == 3
                self.image = image

            def predict(self, box, multimask_output):
                fake.boxes.append(np.array(box))
                x0, y0, x1, y1 = np.round(box).astype(int)
                m = np.zeros(self.image.shape[:2], bool)
                m[y0:y1 + 1, x0:x1 + 1] = True
                return m[None], np.ones(1), None

        self.sam_model_registry = {k: (lambda checkpoint, k=k: (fake.loaded.append((k, checkpoint)), Model())[1])
                                   for k in ("vit_b", "vit_l", "vit_h", "default")}
        self.SamPredictor = Predictor


def test_sam_missing_checkpoint_names_the_path(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "segment_anything", _FakeSamModule())
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        make_segmenter("sam", checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="checkpoint path"):
        make_segmenter("sam")


def test_sam_is_prompted_with_the_opencv_box(monkeypatch, tmp_path):
    fake = _FakeSamModule()
    monkeypatch.setitem(sys.modules, "segment_anything", fake)
    ckpt = tmp_path / "sam.pth"
    ckpt.write_bytes(b"weights")
    seg = make_segmenter("sam", checkpoint=str(ckpt), model_type="vit_b", box_margin=0.0)
    assert fake.loaded == [("vit_b", str(ckpt))]
    frames, truth = drop_video(plain_background(), rest_frames=0, fall_frames=4)
    out = seg.segment(frames[0])
    ys, xs = np.nonzero(truth[0])
    x0, y0, x1, y1 = fake.boxes[-1]
    assert abs(x0 - xs.min()) <= 1.5 and abs(x1 - xs.max()) <= 1.5
    assert abs(y0 - ys.min()) <= 1.5 and abs(y1 - ys.max()) <= 1.5
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}
    assert (out[truth[0]] == 255).mean() > 0.97  # the fake answers with the box, which contains the object
    empty = np.full_like(frames[0], 200)
    seg.reset()
    assert seg.segment(empty).max() == 0


def test_large_frames_are_segmented_at_a_bounded_working_size():
    """A 4x camera (512^2 here) segmented at max_side 128 gives the native 128^2 masks scaled up: the cost no
    longer grows with the camera, and frames at or below max_side take the native path unchanged."""
    frames, truth = drop_video(sky_and_floor_background())
    big = [cv2.resize(f, (4 * W, 4 * H), interpolation=cv2.INTER_NEAREST) for f in frames]
    bounded = OpenCvSegmenter(max_side=max(H, W))
    assert bounded.working_size(4 * W, 4 * H) == (W, H) and bounded.working_size(W, H) == (W, H)
    out = run(bounded, big)
    for i, (m, t) in enumerate(zip(out, truth)):
        assert m.shape == (4 * H, 4 * W) and set(np.unique(m)) <= {0, 255}
        up = cv2.resize(t.astype(np.uint8), (4 * W, 4 * H), interpolation=cv2.INTER_NEAREST) > 0
        assert iou(m, up) >= 0.85, f"frame {i}: IoU {iou(m, up):.3f}"
    native = run(OpenCvSegmenter(max_side=None), frames)
    assert all(np.array_equal(a, b) for a, b in zip(run(OpenCvSegmenter(), frames), native))
    with pytest.raises(ValueError, match="max_side"):
        OpenCvSegmenter(max_side=8)
