"""Files: atomic writes (a reader never sees half a file, a crash leaves the old one) and the package's own paths."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "package_dir", "repo_dir", "user_cache_dir"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`; the temporary file is removed
    when the write fails (a full disk leaves no stray file)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def package_dir(*parts: str) -> Path:
    """A path inside the installed reconphys_ros package (weights/, examples/, ...)."""
    return Path(__file__).resolve().parents[1].joinpath(*parts)


def user_cache_dir(*parts: str) -> Path:
    """A per-user cache folder of this package ($XDG_CACHE_HOME or ~/.cache): writable whatever the install (a
    system or colcon install tree is not a place for caches)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "reconphys_ros", *parts)


def repo_dir(*parts: str) -> Path:
    """A path in the source checkout holding the package (config/, msg/, .cache/ of an editable install)."""
    return Path(__file__).resolve().parents[2].joinpath(*parts)
