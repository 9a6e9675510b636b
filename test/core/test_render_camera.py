"""Cameras: OpenCV convention, look-at, orbit, the dataset's 4 views, CameraInfo conversion."""
import math

import numpy as np
import pytest
import torch

from reconphys_ros.core.render import (Camera, camera_from_calibration, dataset_views, focal_from_fov, look_at,
                                       orbit_cameras)


def test_look_at_follows_opencv_convention():
    cam = look_at(eye=(3.0, 0.0, 1.0), target=(0.0, 0.0, 1.0), fx=100.0, width=64, height=48)
    uv, depth = cam.project(torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 2.0]]))
    torch.testing.assert_close(uv[0], torch.tensor([32.0, 24.0]))  # target at the principal point
    assert float(depth[0]) == pytest.approx(3.0)
    # Looking along -x with z up, world +y is image right (u grows) and world +z is image up (v shrinks).
    assert float(uv[1, 0]) == pytest.approx(32.0 + 100.0 / 3.0, rel=1e-5)
    assert float(uv[2, 1]) == pytest.approx(24.0 - 100.0 / 3.0, rel=1e-5)
    torch.testing.assert_close(cam.center, torch.tensor([3.0, 0.0, 1.0]))
    torch.testing.assert_close(cam.cam_to_world @ cam.world_to_cam, torch.eye(4), atol=1e-6, rtol=0)


def test_dataset_views_are_four_orthogonal_cameras_above_ground():
    cams = dataset_views(target=(0.0, 0.0, 0.4), distance=2.5, height=1.0, fov_deg=40.0, width=128, image_height=96)
    assert len(cams) == 4
    centres = torch.stack([c.center for c in cams])
    torch.testing.assert_close(centres[:, 2], torch.full((4,), 1.0))
    horizontal = centres[:, :2] / centres[:, :2].norm(dim=1, keepdim=True)
    torch.testing.assert_close(horizontal @ horizontal.T, torch.tensor(
        [[1.0, 0, -1, 0], [0, 1, 0, -1], [-1, 0, 1, 0], [0, -1, 0, 1]]), atol=1e-6, rtol=0)
    for cam in cams:
        uv, _ = cam.project(torch.tensor([[0.0, 0.0, 0.4]]))
        torch.testing.assert_close(uv[0], torch.tensor([64.0, 48.0]), atol=1e-4, rtol=0)
        assert cam.fx == pytest.approx(64.0 / math.tan(math.radians(20.0)), rel=1e-6)
    assert dataset_views(focal=300.0, fov_deg=None)[0].fx == 300.0


def test_orbit_cameras_keep_distance_and_elevation():
    cams = orbit_cameras((0.1, 0.2, 0.3), distance=2.0, elevation_deg=30.0, num_views=6, fx=50.0, width=32, height=32)
    for cam in cams:
        offset = cam.center - torch.tensor([0.1, 0.2, 0.3])
        assert float(offset.norm()) == pytest.approx(2.0, rel=1e-5)
        assert float(offset[2]) == pytest.approx(1.0, rel=1e-5)


def test_from_camera_info_accepts_flat_k():
    k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    cam = Camera.from_camera_info(k, 640, 480)
    assert cam.K.shape == (3, 3) and cam.fy == 510.0 and cam.width == 640
    assert torch.equal(cam.world_to_cam, torch.eye(4))
    w2c = look_at((1, 1, 1), (0, 0, 0)).world_to_cam.numpy()
    assert np.allclose(Camera.from_camera_info(np.array(k).reshape(3, 3), 640, 480, w2c).world_to_cam.numpy(), w2c)


def test_camera_from_calibration_uses_the_pose_else_the_look_at_fallback():
    k = np.array([[40.0, 0.0, 16.0], [0.0, 41.0, 12.0], [0.0, 0.0, 1.0]])
    pose = look_at((1.0, -2.0, 0.5), (0.0, 0.0, 0.2)).cam_to_world.double().numpy()
    cam = camera_from_calibration(k, (32, 24), (32, 24), pose, eye=(9.0, 9.0, 9.0), target=(0.0, 0.0, 0.0))
    assert (cam.width, cam.height) == (32, 24) and torch.equal(cam.K, torch.as_tensor(k, dtype=torch.float32))
    np.testing.assert_allclose(cam.world_to_cam.numpy(), np.linalg.inv(pose), atol=1e-6)
    fallback = camera_from_calibration(k, (32, 24), (32, 24), None, eye=(2.1, 0.0, 1.1), target=(0.0, 0.0, 0.4))
    assert torch.equal(fallback.world_to_cam, look_at((2.1, 0.0, 1.1), (0.0, 0.0, 0.4)).world_to_cam)
    with pytest.raises(ValueError, match="32x24 but the images are 64x48"):
        camera_from_calibration(k, (32, 24), (64, 48), pose)
    with pytest.raises(ValueError, match="eye and target"):
        camera_from_calibration(k, (32, 24), (32, 24))


def test_camera_errors():
    with pytest.raises(ValueError, match="shape"):
        Camera(torch.eye(2), torch.eye(4), 10, 10)
    with pytest.raises(ValueError, match="width/height"):
        Camera(torch.eye(3), torch.eye(4), 0, 10)
    with pytest.raises(ValueError, match="orthonormal"):
        Camera(torch.eye(3), torch.diag(torch.tensor([2.0, 1, 1, 1])), 10, 10)
    with pytest.raises(ValueError, match="non-finite"):
        Camera(torch.full((3, 3), float("nan")), torch.eye(4), 10, 10)
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 5), (0, 0, 0))
    with pytest.raises(ValueError, match="field of view"):
        focal_from_fov(190.0, 100)


@pytest.mark.parametrize("k, pattern", [
    ([[100.0, 0, 64], [0, 100.0, 60], [5, 5, 1]], "pinhole"),
    ([[100.0, 0, 64], [0.5, 100.0, 60], [0, 0, 1]], "pinhole"),
    ([[100.0, 0, 1e30], [0, 100.0, 60], [0, 0, 1]], "principal point"),
    ([[100.0, 0, 64], [0, 100.0, -400], [0, 0, 1]], "principal point"),
    ([[1e-3, 0, 64], [0, 1e-3, 60], [0, 0, 1]], "field of view of 180"),
    ([[100.0, 0, 64], [0, 1e5, 60], [0, 0, 1]], "vertical field of view"),
    ([[100.0, 3.0, 64], [0, 100.0, 60], [0, 0, 1]], "skew"),
    ([[0.0, 0, 64], [0, 100.0, 60], [0, 0, 1]], "positive"),
])
def test_implausible_intrinsics_are_refused_where_k_enters(k, pattern):
    from reconphys_ros.core.render import camera_from_calibration, check_intrinsics
    with pytest.raises(ValueError, match=pattern):
        check_intrinsics(np.array(k), 128, 120)
    with pytest.raises(ValueError, match=pattern):
        Camera(torch.tensor(k), torch.eye(4), 128, 120)
    with pytest.raises(ValueError, match=pattern):
        camera_from_calibration(k, (128, 120), (128, 120), np.eye(4))


def test_plausible_intrinsics_pass():
    from reconphys_ros.core.render import check_intrinsics, focal_from_fov
    for fov in (1.5, 40.0, 60.0, 120.0, 165.0):
        f = focal_from_fov(fov, 640)
        check_intrinsics([[f, 0, 320], [0, f, 240], [0, 0, 1]], 640, 480)
    check_intrinsics([[500.0, 0, -300], [0, 500.0, 900], [0, 0, 1]], 640, 480)  # off-centre crop: allowed
