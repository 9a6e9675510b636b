"""Shared pytest setup: deterministic, single-threaded torch; GPU tests skip without CUDA."""
import os

import pytest

# A DDS domain of its own per test session (child processes inherit it): concurrent sessions on one machine, or a
# demo running beside the tests, would otherwise exchange messages on domain 0.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 99))
os.environ.setdefault("WARP_CACHE_PATH", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache", "warp"))


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:  # torch missing: let the import error surface in the tests themselves
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _torch_defaults():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    yield
