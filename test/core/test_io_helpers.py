"""core/files.py and core/images.py: atomic writes, per-user caches, package paths, float -> uint8 frames."""
import os

import numpy as np
import pytest
import torch

from reconphys_ros.core.files import atomic_write_bytes, package_dir, user_cache_dir
from reconphys_ros.core.images import to_uint8
from reconphys_ros.core.physics.kernels import default_cache_dir


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["a.bin"]

    def full_disk(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(path, b"newer")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["a.bin"]  # old file kept, no stray temp file


def test_caches_are_per_user_and_honour_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir("warp") == tmp_path / "reconphys_ros" / "warp"
    monkeypatch.delenv("WARP_CACHE_PATH", raising=False)
    assert default_cache_dir() == str(tmp_path / "reconphys_ros" / "warp")
    monkeypatch.setenv("WARP_CACHE_PATH", str(tmp_path / "mine"))
    assert default_cache_dir() == str(tmp_path / "mine")
    assert (package_dir("weights") / "physics_predictor.pt").is_file()


def test_to_uint8_rounds_half_up_and_clips_for_arrays_and_tensors():
    values = np.array([-0.5, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 2.0], np.float32)
    expected = np.array([0, 0, 1, 0, 255, 255], np.uint8)
    np.testing.assert_array_equal(to_uint8(values), expected)
    np.testing.assert_array_equal(to_uint8(torch.from_numpy(values)), expected)
