"""GaussianCloud validation and 3DGS PLY read/write."""
import math

import numpy as np
import pytest
import torch

from reconphys_ros.core.gaussians import SH_C0, GaussianCloud, read_ply, write_ply


def make_cloud(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return GaussianCloud(
        means=torch.randn(n, 3, generator=g),
        log_scales=torch.randn(n, 3, generator=g) - 3.0,
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
        colors=torch.rand(n, 3, generator=g),
        opacity_logits=torch.randn(n, generator=g) * 3,
    )


def test_accessors_and_copies():
    cloud = make_cloud(7)
    assert cloud.num_gaussians == 7 and cloud.dtype == torch.float32 and cloud.device.type == "cpu"
    torch.testing.assert_close(cloud.scales, cloud.log_scales.exp())
    torch.testing.assert_close(cloud.opacities, torch.sigmoid(cloud.opacity_logits))
    moved = cloud.with_means(cloud.means + 1.0)
    assert moved.colors is cloud.colors and torch.equal(moved.means, cloud.means + 1.0)
    cloud.means.requires_grad_(True)
    assert not cloud.detach().means.requires_grad
    assert cloud.to(dtype=torch.float64).quats.dtype == torch.float64
    assert cloud.subset(torch.tensor([1, 3])).num_gaussians == 2
    assert GaussianCloud.concatenate([cloud.detach(), cloud.detach()]).num_gaussians == 14
    with pytest.raises(ValueError, match="shape"):
        cloud.with_means(torch.zeros(6, 3))


def test_from_activated_round_trips_parameters():
    scales, opac = torch.tensor([[0.1, 0.2, 0.3]]), torch.tensor([0.25])
    cloud = GaussianCloud.from_activated(torch.zeros(1, 3), scales, torch.tensor([[2.0, 0, 0, 0]]), torch.ones(1, 3) * 0.5, opac)
    torch.testing.assert_close(cloud.scales, scales)
    torch.testing.assert_close(cloud.opacities, opac)
    torch.testing.assert_close(cloud.quats, torch.tensor([[1.0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="positive"):
        GaussianCloud.from_activated(torch.zeros(1, 3), -scales, torch.ones(1, 4), torch.ones(1, 3), opac)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("means", torch.zeros(5, 2), "shape"),
        ("quats", torch.ones(5, 4), "unit quaternions"),
        ("colors", torch.full((5, 3), 1.5), r"\[0, 1\]"),
        ("opacity_logits", torch.tensor([0.0, 1.0, float("inf"), 0.0, 0.0]), "non-finite.*Gaussian 2"),
        ("log_scales", torch.zeros(5, 3, dtype=torch.float64), "dtype"),
        ("means", torch.zeros(5, 3, dtype=torch.int32), "floating"),
    ],
)
def test_validate_rejects_bad_fields(field, value, message):
    cloud = make_cloud(5)
    setattr(cloud, field, value)
    with pytest.raises(ValueError, match=message):
        cloud.validate()


def test_ply_round_trip(tmp_path):
    cloud = make_cloud(200)
    path = tmp_path / "cloud.ply"
    write_ply(cloud, path)
    back = read_ply(path)
    # Geometry and opacity are stored as-is: bit-exact.
    for name in ("means", "log_scales", "quats", "opacity_logits"):
        assert torch.equal(getattr(back, name), getattr(cloud, name)), name
    # Colours go through f_dc = (rgb - 0.5) / C0, one float32 rounding of f_dc (<= 0.5 ulp * C0).
    assert (back.colors - cloud.colors).abs().max() <= 2e-8
    # Writing what we read reproduces the file byte for byte.
    write_ply(back, tmp_path / "again.ply")
    assert (tmp_path / "again.ply").read_bytes() == path.read_bytes()


def test_ply_uses_the_standard_3dgs_layout(tmp_path):
    from plyfile import PlyData

    cloud = make_cloud(3)
    write_ply(cloud, tmp_path / "c.ply")
    ply = PlyData.read(str(tmp_path / "c.ply"))
    names = [p.name for p in ply["vertex"].properties]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == expected
    assert all(p.val_dtype in ("f4", "float32", "float") for p in ply["vertex"].properties)
    assert not ply.text and ply.byte_order == "<"
    f_dc = np.stack([ply["vertex"][f"f_dc_{i}"] for i in range(3)], 1)
    np.testing.assert_allclose(f_dc, (cloud.colors.numpy() - 0.5) / SH_C0, rtol=1e-6, atol=1e-6)


def test_hand_written_viewer_ply_loads(tmp_path):
    # ASCII, a different property order, SH degree 1, un-normalised rotations (as 3DGS training writes them).
    header = (
        "ply\nformat ascii 1.0\nelement vertex 2\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n"
        + "\n".join(f"property float f_rest_{i}" for i in range(9)) + "\n"
        "property float opacity\nproperty float scale_0\nproperty float scale_1\nproperty float scale_2\n"
        "property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\nend_header\n"
    )
    rows = [
        "1 2 3 0 0 0 0 0 0 " + "0.1 " * 9 + "2.0 -3 -4 -5 2 0 0 0",
        "-1 0.5 0 0 0 0 1.7724538509055159 -1.7724538509055159 0 " + "0 " * 9 + "-1.0 0 0 0 0 0 3 4",
    ]
    path = tmp_path / "viewer.ply"
    path.write_text(header + "\n".join(rows) + "\n")
    cloud = read_ply(path)
    torch.testing.assert_close(cloud.means, torch.tensor([[1.0, 2, 3], [-1, 0.5, 0]]))
    torch.testing.assert_close(cloud.log_scales, torch.tensor([[-3.0, -4, -5], [0, 0, 0]]))
    torch.testing.assert_close(cloud.quats, torch.tensor([[1.0, 0, 0, 0], [0, 0, 0.6, 0.8]]))
    torch.testing.assert_close(cloud.colors, torch.tensor([[0.5, 0.5, 0.5], [1.0, 0.0, 0.5]]))
    torch.testing.assert_close(cloud.opacities, torch.sigmoid(torch.tensor([2.0, -1.0])))


def test_ply_errors_name_the_file(tmp_path):
    bad = tmp_path / "not_gaussians.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n")
    with pytest.raises(ValueError, match="not_gaussians.ply.*lacks 3DGS vertex properties"):
        read_ply(bad)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"\x00\x01 not a ply")
    with pytest.raises(ValueError, match="garbage.ply"):
        read_ply(garbage)
    with pytest.raises(FileNotFoundError):
        read_ply(tmp_path / "missing.ply")
    with pytest.raises(OSError, match="nodir"):
        write_ply(make_cloud(2), tmp_path / "nodir" / "x.ply")


def test_ply_with_out_of_range_sh_colour_is_clamped(tmp_path):
    cloud = make_cloud(1)
    write_ply(cloud, tmp_path / "c.ply")
    from plyfile import PlyData

    ply = PlyData.read(str(tmp_path / "c.ply"))
    ply["vertex"]["f_dc_0"][:] = 5.0  # rgb = 0.5 + 5 C0 > 1, common in trained 3DGS files
    ply.write(str(tmp_path / "d.ply"))
    assert float(read_ply(tmp_path / "d.ply").colors[0, 0]) == 1.0
    assert math.isclose(SH_C0, 0.28209479177387814)
