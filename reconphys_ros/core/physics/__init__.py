"""Differentiable spring-mass physics (Warp + pure-torch reference). No ROS imports."""
from .anchors import object_seed, sample_anchors
from .control import Control, Gripper, drop_state, push
from .integrator import Integrator, SimulationDiverged, WarpFrameFunction, simulate
from .kernels import init_warp
from .lattice import (COARSE64_LATTICE, COARSE_LATTICE, LATTICES, MEDIUM_LATTICE, REFERENCE_LATTICE, LatticeConfig, LatticeScale,
                      lattice_from_name, lattice_scale)
from .model import ContactSettings, Model, ModelBuilder, State
from .params import GRAVITY, PARAM_NAMES, PARAM_RANGES, PhysicsParams
from .springs import knn_springs

__all__ = [
    "COARSE64_LATTICE", "COARSE_LATTICE", "Control", "ContactSettings", "GRAVITY", "Gripper", "LATTICES", "LatticeConfig",
    "Integrator", "LatticeScale", "MEDIUM_LATTICE", "Model", "ModelBuilder", "PARAM_NAMES", "PARAM_RANGES", "PhysicsParams",
    "REFERENCE_LATTICE", "SimulationDiverged", "State", "WarpFrameFunction", "drop_state", "init_warp",
    "knn_springs", "lattice_from_name", "lattice_scale", "object_seed", "push", "sample_anchors", "simulate",
]
