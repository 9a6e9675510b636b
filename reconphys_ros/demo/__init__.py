"""The main job (`make demo`, `reconphys-demo`, `python -m reconphys_ros.demo`): the embedded example clip through
the real nodes, then the reconstruction scored against the clip and reported.

- cli.py: arguments and the run, stage by stage;
- graph.py: the nodes of the pipeline plus an observer, in one process;
- evaluation.py: the reconstruction re-simulated and compared with the held-back frames;
- report/: comparison strips and videos, plots, summary.md / summary.json.
"""
