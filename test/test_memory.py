"""Process memory settings."""
import platform

from reconphys_ros.ros.memory import limit_malloc_arenas


def test_malloc_arenas_can_be_limited_on_glibc():
    result = limit_malloc_arenas(2)
    assert isinstance(result, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert result  # mallopt accepted the setting
