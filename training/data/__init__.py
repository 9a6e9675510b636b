"""Synthetic data pipeline (issue #6): objects -> physics samples -> 4-view 30-frame falling clips.

Modules: shapes / meshes / textures / objects (Gaussians of procedural and pybullet_data objects, stable ids,
splits by object), params (m, k, d, f and initial motion), backgrounds, sample (simulate + render one sample),
storage (on-disk format, hashes), generate (CLI: `python -m training.data.generate --help`),
dataset (`SyntheticDataset` for training), preview (contact sheets), examples (the clips shipped in
reconphys_ros/examples).

Object size: the paper's parameters live on a lattice whose spring lengths scale with the object, so
small objects are relatively softer. Sizes default to 0.5-1.0 m (longest dimension): measured on 30
samples, 17 % flatten below half their rigid height and 60 % still move > 1 px/frame in frames 21-30;
at 0.3-0.8 m it was 23 % and 53 %.
"""
