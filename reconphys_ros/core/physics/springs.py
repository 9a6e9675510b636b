"""K-nearest-neighbour springs between anchors."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def knn_springs(anchors: np.ndarray, k_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Connect each anchor to its K nearest anchors; i-j and j-i are one spring.
    Returns (pairs (S, 2) int64 with i < j, rest_lengths (S,) float32)."""
    anchors = np.asarray(anchors, dtype=np.float64)
    n = len(anchors)
    if anchors.ndim != 2 or anchors.shape[1] != 3:
        raise ValueError(f"knn_springs: anchors must be (N, 3), got {anchors.shape}")
    if n < 2:
        raise ValueError("knn_springs: need at least 2 anchors")
    k = int(k_neighbors)
    if k < 1:
        raise ValueError(f"knn_springs: k_neighbors must be >= 1, got {k_neighbors}")
    k = min(k, n - 1)
    _, idx = cKDTree(anchors).query(anchors, k=k + 1)  # (N, k+1), first column is the point itself
    i = np.repeat(np.arange(n), k)
    j = idx[:, 1:].reshape(-1)
    pairs = np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1)
    pairs = np.unique(pairs[pairs[:, 0] != pairs[:, 1]], axis=0)
    rest = np.linalg.norm(anchors[pairs[:, 0]] - anchors[pairs[:, 1]], axis=1)
    if np.any(rest <= 0):
        raise ValueError("knn_springs: duplicate anchors give zero-length springs")
    return pairs.astype(np.int64), rest.astype(np.float32)
