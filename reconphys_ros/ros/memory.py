"""Process memory settings for long-running node processes (no ROS imports)."""
from __future__ import annotations


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for this process (call first thing in main(), before threads start).

    glibc gives each thread that allocates its own arena (up to 8 per core); with an executor thread per node, a
    worker per reconstruction and 512^2 image buffers moving between them, freed memory stays spread over the
    arenas. Measured in the 512^2 soak: RSS +17% over 9 minutes with the default, flat (+0.7%, peak 783 vs
    1108 MB) with 2 arenas. Returns False where this is not glibc (nothing changes there)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_ARENA_MAX = -8
    return bool(mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(int(arenas))))
