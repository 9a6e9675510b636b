"""DropDetector on synthetic mask streams: rest, fall, leave, reappear."""
import numpy as np
import pytest

from reconphys_ros.core.drop_detector import STREAM_RESTART_NS, DropClip, DropDetector, StreamRestartDetector

H, W = 96, 80
FPS = 30.0


def disk_mask(cy, cx=40.0, r=8.0):
    yy, xx = np.mgrid[0:H, 0:W]
    return np.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, 255, 0).astype(np.uint8)


def frame_for(index, cy):
    """Image carries its frame index in pixel (0, 0) so clips can be checked frame by frame."""
    image = np.full((H, W, 3), 200, np.uint8)
    image[0, 0] = [index % 256, index // 256, 7]
    mask = np.zeros((H, W), np.uint8) if cy is None else disk_mask(cy)
    return image, mask, index / FPS


def trajectory(rest=10, fall=30, y0=12.0, accel=0.4, floor=84.0, after=20, absent_before=0):
    """Centroid rows: absent, resting, falling with constant acceleration, lying on the floor."""
    ys = [None] * absent_before + [y0] * rest
    ys += [min(y0 + 0.5 * accel * t * t, floor) for t in range(1, fall + 1)]
    ys += [floor] * after
    return ys


def feed_all(detector, ys, first_index=0):
    clips = []
    for i, cy in enumerate(ys):
        out = detector.feed(*frame_for(first_index + i, cy))
        if out is not None:
            clips.append(out)
    return clips


def indices(clip: DropClip):
    return [int(img[0, 0, 0]) + 256 * int(img[0, 0, 1]) for img in clip.images]


def test_clip_starts_at_release_and_has_n_frames():
    ys = trajectory(rest=10)
    clips = feed_all(DropDetector(num_frames=20), ys)
    assert len(clips) == 1
    clip = clips[0]
    assert clip.images.shape == (20, H, W, 3) and clip.masks.shape == (20, H, W) and clip.stamps.shape == (20,)
    # Frame 9 is the last one at rest (release); the fall starts at frame 10.
    assert indices(clip) == list(range(9, 29))
    np.testing.assert_allclose(clip.stamps, np.arange(9, 29) / FPS)
    assert clip.masks.dtype == np.uint8 and set(np.unique(clip.masks)) == {0, 255}
    np.testing.assert_array_equal(clip.masks[0], disk_mask(12.0))


def test_object_appearing_while_falling_starts_the_clip_at_first_sight():
    ys = [None] * 5 + [20.0 + 3.0 * t for t in range(25)]
    clips = feed_all(DropDetector(num_frames=12), ys)
    assert len(clips) == 1 and indices(clips[0]) == list(range(5, 17))


def test_no_clip_for_still_upward_or_jittering_objects():
    rng = np.random.default_rng(0)
    still = [40.0 + rng.uniform(-0.2, 0.2) for _ in range(60)]
    upward = [80.0 - 1.5 * t for t in range(40)]
    jitter = [40.0 + (1.0 if t % 2 else -1.0) for t in range(60)]
    for ys in (still, upward, jitter, [None] * 30):
        assert feed_all(DropDetector(), ys) == []


def test_several_drops_in_a_row():
    one = trajectory(rest=8, after=15)
    gone = [None] * 12
    ys = one + gone + one
    clips = feed_all(DropDetector(num_frames=20), ys)
    assert len(clips) == 2
    second_release = len(one) + len(gone) + 7
    assert indices(clips[1])[0] == second_release


def test_no_second_clip_from_the_same_drop_and_reset_rearms():
    det = DropDetector(num_frames=5, rearm_frames=50)
    ys = trajectory(rest=5, fall=40, after=0)
    assert len(feed_all(det, ys)) == 1  # the fall keeps going after the clip, but it is the same drop
    det.reset()
    assert det.armed and not det.recording
    assert len(feed_all(det, trajectory(rest=5), first_index=1000)) == 1


def test_losing_the_object_abandons_the_drop():
    ys = trajectory(rest=5, fall=6, after=0) + [None] * 5
    det = DropDetector(num_frames=20, max_missing=2)
    assert feed_all(det, ys) == []
    assert not det.recording and det.armed


def test_memory_is_bounded():
    det = DropDetector(num_frames=20)
    feed_all(det, [40.0] * 500)
    assert len(det._history) <= 21 and det._grid is None


def test_bad_input():
    det = DropDetector()
    image, mask, stamp = frame_for(0, 40.0)
    with pytest.raises(ValueError, match="does not match"):
        det.feed(image, mask[:-1], stamp)
    with pytest.raises(ValueError, match="uint8"):
        det.feed(image.astype(np.float32), mask, stamp)
    with pytest.raises(ValueError, match="empty"):
        det.feed(np.zeros((0, 5, 3), np.uint8), np.zeros((0, 5), np.uint8), stamp)
    with pytest.raises(ValueError, match="finite"):
        det.feed(image, mask, float("nan"))
    det.feed(image, mask, 1.0)
    assert det.feed(image, mask, 1.0) is None and det.repeats_skipped == 1  # delivered twice: skipped
    with pytest.raises(ValueError, match="increase"):
        det.feed(image, mask, 0.5)
    for kwargs in ({"num_frames": 1}, {"confirm_frames": 0}, {"min_drop_px": -1.0}, {"step_px": float("nan")},
                   {"max_rate": 0.0}, {"max_rate": float("inf")}):
        with pytest.raises(ValueError):
            DropDetector(**kwargs)


def test_buffers_are_copies():
    det = DropDetector(num_frames=4)
    image = np.full((H, W, 3), 10, np.uint8)
    clip = None
    for i, cy in enumerate(trajectory(rest=3, fall=10, after=0)):
        image[:] = i  # the caller reuses one buffer
        clip = det.feed(image, disk_mask(cy), i / FPS) or clip
    assert clip is not None
    assert [int(img[5, 5, 0]) for img in clip.images] == [2, 3, 4, 5]


def test_upward_jump_rearms_for_a_looping_video():
    """The example clip played in a loop: each restart (object jumps back up) starts a new drop at once."""
    from reconphys_ros.examples import load_example

    clip = load_example(views=[0])
    rgb, masks = clip["rgb"][0], (clip["mask"][0] * 255).astype(np.uint8)
    detector = DropDetector(num_frames=20)
    starts = []
    for i in range(90):
        found = detector.feed(rgb[i % 30], masks[i % 30], i / 30.0)
        if found is not None:
            starts.append(round(found.stamps[0] * 30))
    assert starts == [0, 30, 60]


def test_stream_restart_is_a_jump_back_beyond_the_limit_per_stream():
    clock = StreamRestartDetector()
    assert clock.restart_ns == STREAM_RESTART_NS
    s = 1_000_000_000
    assert clock.observe("image", 100 * s) is None
    assert clock.observe("mask", 97 * s) is None  # masks lag their images: another stream, not a restart
    assert clock.observe("image", 99 * s + 1) is None  # slightly out of order: not a restart
    assert clock.observe("mask", 97 * s + 5) is None
    assert clock.observe("image", 98 * s) == 100 * s  # more than 1 s behind the newest image: a new stream
    # the restart forgot every stream: the old masks' newest stamp no longer counts
    assert clock.observe("mask", 2 * s) is None
    assert clock.observe("image", 98 * s - 1) is None  # within 1 s of the new newest (98 s)
    clock.reset()
    assert clock.observe("image", 0) is None
    with pytest.raises(ValueError):
        StreamRestartDetector(-1)


def test_looped_drop_that_rearmed_on_the_floor_starts_at_the_loop_not_the_floor():
    """Issue 19.2: a looping video whose object lay still on the floor long enough to re-arm, then jumps back up
    and falls at once. The frame before the run is the object on the floor: it must not start the clip."""
    one_loop = trajectory(rest=0, fall=18, after=12)  # falling from the loop's first frame, then 12 on the floor
    ys = one_loop * 3
    clips = feed_all(DropDetector(num_frames=12), ys)
    n = len(one_loop)
    starts = [indices(c)[0] for c in clips]
    assert len(clips) == 3 and starts[1] in (n, n + 1) and starts[2] in (2 * n, 2 * n + 1), starts
    for clip in clips:
        assert (clip.masks[0] > 0).nonzero()[0].mean() < 40, "a clip starts with the object on the floor"


# ---------------------------------------------------------------- the window is in time (issue 19.2, 19.3)
def fall_row(t, t_release=0.3, y0=12.0, g_px=300.0, floor=84.0):
    """Centroid row of an object released at t_release s, falling at g_px px/s^2."""
    return y0 if t < t_release else min(y0 + 0.5 * g_px * (t - t_release) ** 2, floor)


def stream(fps, duration=1.6, keep=lambda i: True, jitter=0.0, seed=0):
    """(image, mask, stamp) of a fall filmed at fps; pixel (0, 0) holds the frame's time in ms / 8."""
    rng = np.random.default_rng(seed)
    for i in range(int(duration * fps)):
        if not keep(i):
            continue
        t = i / fps + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        image = np.full((H, W, 3), 200, np.uint8)
        image[0, 0] = [int(t * 1000) // 8 % 256, 0, 7]
        yield image, disk_mask(fall_row(t)), t


def clips_of(detector, frames):
    return [c for c in (detector.feed(*f) for f in frames) if c is not None]


@pytest.mark.parametrize("fps", [60.0, 120.0, 90.0])
def test_faster_camera_gives_the_30_fps_clip(fps):
    """The same fall at 60, 90 or 120 fps: strided to 30 Hz, the clip holds the 30 fps clip's moments."""
    (reference,) = clips_of(DropDetector(num_frames=20), stream(30.0))
    (clip,) = clips_of(DropDetector(num_frames=20), stream(fps))
    assert clip.rate == pytest.approx(30.0) and clip.missing == 0 and clip.num_frames == 20
    # the faster camera may see the release a frame period earlier: same grid, shifted by less than one slot
    offset = clip.stamps[0] - reference.stamps[0]
    assert abs(offset) < 1.0 / 30.0
    np.testing.assert_allclose(np.diff(clip.stamps), 1.0 / 30.0, atol=1e-9)
    assert clip.times[-1] == pytest.approx(19.0 / 30.0)


@pytest.mark.parametrize("fps, frames", [(15.0, 10), (25.0, 16), (50.0, 16)])
def test_slower_camera_fills_the_same_time(fps, frames):
    """A slower camera keeps every frame (50 Hz is strided to 25) over the same 0.633 s window."""
    (clip,) = clips_of(DropDetector(num_frames=20), stream(fps))
    assert clip.rate == pytest.approx(min(fps, 25.0 if fps == 50.0 else fps)) and clip.num_frames == frames
    assert clip.times[-1] <= 19.0 / 30.0 + 1e-9 and clip.times[-1] > 19.0 / 30.0 - 1.0 / clip.rate


def test_dropped_frames_keep_their_real_stamps():
    """A 30 fps stream that loses every third frame during the fall: the clip holds the frames it got, with their
    own stamps, and counts the empty slots; it still ends 0.633 s after its first frame."""
    lost = lambda i: not (i > 12 and i % 3 == 0)
    (clip,) = clips_of(DropDetector(num_frames=20), stream(30.0, keep=lost))
    assert clip.missing > 0 and clip.num_frames + clip.missing == 20
    assert clip.times[-1] == pytest.approx(19.0 / 30.0)
    assert np.all(np.diff(clip.stamps) > 0)
    steps = np.round(np.diff(clip.stamps) * 30.0)
    assert set(steps.tolist()) <= {1.0, 2.0}  # one frame period, or two across a lost frame


def test_jittered_stamps_fill_every_slot():
    """Stamps jittered by +-20% of a period still land one frame per slot."""
    (clip,) = clips_of(DropDetector(num_frames=20), stream(30.0, jitter=0.2 / 30.0))
    assert clip.missing == 0 and clip.num_frames == 20


def test_a_frame_delivered_twice_is_skipped_while_recording():
    frames = []
    for image, mask, t in stream(30.0):
        frames.append((image, mask, t))
        if 0.45 < t < 0.6:
            frames.append((image, mask, t))  # the same message again
    det = DropDetector(num_frames=20)
    (clip,) = clips_of(det, frames)
    assert clip.num_frames == 20 and det.repeats_skipped >= 4 and np.all(np.diff(clip.stamps) > 0)


def test_faster_camera_with_dropped_frames_stays_on_its_grid():
    """120 fps losing a frame in ten at random: the kept frames stay on the 30 Hz grid from the clip's first frame
    (a lost grid frame loses its slot; it does not shift the frames after it)."""
    rng = np.random.default_rng(3)
    lost = set(np.nonzero(rng.random(400) < 0.1)[0].tolist())
    (clip,) = clips_of(DropDetector(num_frames=20), stream(120.0, keep=lambda i: i not in lost))
    assert clip.rate == pytest.approx(30.0) and clip.num_frames + clip.missing == 20
    slots = clip.times * 30.0
    np.testing.assert_allclose(slots, np.round(slots), atol=1e-4)  # times are rounded to 1 us
    assert clip.missing <= 5


def test_a_separate_clock_sets_the_timing_and_the_stamps_stay_as_given():
    """The reconstruction node's fps parameter (a 60 fps clip replayed at 15 Hz): the clock frame / 60 decides the
    grid (strided to 30 Hz), the clip keeps the replay's own stamps, and its rate and times are the clock's."""
    detector = DropDetector(num_frames=20)
    clips = []
    for n, (image, mask, t) in enumerate(stream(60.0)):
        clip = detector.feed(image, mask, stamp=1000.0 + n / 15.0, time=t)
        if clip is not None:
            clips.append(clip)
    (clip,) = clips
    assert clip.rate == pytest.approx(30.0) and clip.num_frames == 20
    np.testing.assert_allclose(clip.times, np.arange(20) / 30.0, atol=1e-6)
    np.testing.assert_allclose(np.diff(clip.stamps), 2 / 15.0)  # every other replayed frame, stamps untouched
