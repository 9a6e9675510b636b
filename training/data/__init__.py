"""Synthetic data pipeline (issue #6): objects -> physics samples -> 4-view 30-frame falling clips.

Modules: shapes / meshes / textures / objects (Gaussians of procedural and pybullet_data objects, stable ids,
splits by object), params (m, k, d, f and initial motion), backgrounds, sample (simulate + render one sample),
storage (on-disk format, hashes), generate (CLI: `python -m training.data.generate --help`),
dataset (`SyntheticDataset` for training), preview (contact sheets), examples (the clips shipped in
reconphys_ros/examples).

Object size (issue 14): objects are real-sized, 5 cm - 1 m by default (longest dimension, log-uniform), and
their physics is drawn in the size-independent form (params.py): the paper's ranges describe the behaviour of
a 1 m object and map to each object's own size by the similarity law (k/m ~ 1/L, d/m ~ 1/sqrt(L)), so the
share of collapsing objects should not depend on the size. generation.json reports it per size bucket.
Cameras are robot-like: 0.4-2.5 m away, looking down 10-50 deg, the object filling 5-60 % of the image height.
"""
