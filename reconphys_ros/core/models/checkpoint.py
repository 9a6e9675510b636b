"""Checkpoints of the learned predictors: plain dicts of tensors and JSON-able values, so that they load with
`torch.load(weights_only=True)` (no pickled code), with a format version and the network's config.

Layout: {"format": CHECKPOINT_FORMAT, "kind": str, "version": int, "config": dict, "model": state_dict,
plus anything the trainer adds (optimizer, scheduler, step, train_config)}.
"""
from __future__ import annotations

import io
import os

import torch

from ..files import atomic_write_bytes

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "check_state_dict"]

CHECKPOINT_FORMAT = "reconphys-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: wrong file, kind, version or tensor shapes."""


def save_checkpoint(path: str, kind: str, version: int, config: dict, model_state: dict, **extra) -> None:
    """Write atomically (temp file + rename) so an interrupted save never leaves a truncated checkpoint."""
    payload = {"format": CHECKPOINT_FORMAT, "kind": kind, "version": int(version), "config": dict(config),
               "model": {k: v.detach().cpu() for k, v in model_state.items()}}
    payload.update(extra)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str, kind: str, version: int, map_location="cpu") -> dict:
    """The checkpoint dict; raises CheckpointError naming the problem when it is not a `kind` v`version` file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / non-torch files
        raise CheckpointError(f"checkpoint {path} is not a readable torch file ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a reconphys checkpoint (no format tag {CHECKPOINT_FORMAT!r})")
    if payload.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {payload.get('kind')!r} checkpoint, expected {kind!r}")
    if payload.get("version") != version:
        raise CheckpointError(f"{path} has {kind} format version {payload.get('version')}, this code reads version "
                              f"{version}: retrain or use the matching package version")
    return payload


def check_state_dict(expected: dict, found: dict, path: str) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k}: checkpoint {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in sorted(set(expected) & set(found)) if tuple(found[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if wrong:
            parts.append(f"shape mismatch {wrong[:5]}")
        raise CheckpointError(f"checkpoint {path} does not match the network: " + "; ".join(parts))
