"""Physics sanity of generated clips: objects fall until contact; stiffer/lighter deforms less."""
import math
import numpy as np
import pytest

from reconphys_ros.core.physics import PhysicsParams
from reconphys_ros.core.physics.params import object_size, object_volume, ratios_from_paper
from training.data.params import SampleChoices
from training.data import sample as sample_mod
from training.data.sample import SampleConfig, motion_statistics, simulate_sample

CONFIG = SampleConfig(lattice="tiny", substeps=30, num_gaussians=400, size_range=(0.6, 0.6))


def _drop(monkeypatch, paper: PhysicsParams, gap=0.3):
    """Drop with the behaviour of `paper` (paper-range params, i.e. at 1 m) mapped to the object's own size, the
    total mass from a 300 kg/m^3 density (the mass does not change the motion)."""
    def fixed_choices(rng, size, ranges, anchors=None):
        values = ratios_from_paper(np.array(paper.to_tuple()))
        params = PhysicsParams.from_size_independent(values, object_size(anchors), 300.0 * object_volume(anchors))
        return SampleChoices(params=params, sampling={}, orientation=[1.0, 0.0, 0.0, 0.0], drop_gap=gap,
                             velocity=[0.0, 0.0, 0.0], angular_velocity=[0.0, 0.0, 0.0])
    monkeypatch.setattr(sample_mod, "sample_choices", fixed_choices)
    _, _, anchors, means, _, _ = simulate_sample("proc-ellipsoid-00002", 0, CONFIG)
    return anchors, means


def test_centroid_falls_until_contact(monkeypatch):
    anchors, means = _drop(monkeypatch, PhysicsParams(1.0, 600.0, 1.0, 0.5))
    z = anchors[:, :, 2].mean(1)
    contact = int(np.argmax(anchors[:, :, 2].min(1) < 0.01))
    assert contact > 3, "object starts above the ground"
    assert np.all(np.diff(z[:contact]) < 0), "centroid height decreases until contact"
    # free fall: gap 0.3 m takes sqrt(2*0.3/9.81) = 0.247 s = 7.4 frames
    assert 6 <= contact <= 9
    assert np.allclose(means[0].mean(0), means[0].mean(0))  # finite Gaussians
    assert np.isfinite(means).all()


def test_stiffer_or_lighter_deforms_less(monkeypatch):
    def squash(params):
        anchors, _ = _drop(monkeypatch, params)
        return motion_statistics(anchors, np.eye(3)[None], np.eye(4)[None])["collapse_ratio"]
    soft = squash(PhysicsParams(2.0, 60.0, 1.0, 0.5))
    stiff = squash(PhysicsParams(2.0, 1000.0, 1.0, 0.5))
    light = squash(PhysicsParams(0.3, 60.0, 1.0, 0.5))
    assert stiff > soft + 0.05
    assert light > soft + 0.05
    assert stiff > 0.8


@pytest.mark.gpu
def test_cuda_sample_matches_cpu(tmp_path):
    """The generator's CUDA path (Warp kernels + gsplat/torch rendering on the GPU) agrees with the CPU path."""
    from training.data.sample import generate_sample
    from training.data.storage import read_npz

    out = {}
    for device in ("cpu", "cuda"):
        config = SampleConfig(lattice="coarse", num_gaussians=800, resolution=64, device=device)
        d = str(tmp_path / device)
        generate_sample(d, "s", "proc-ellipsoid-00002", "train", 7, config)
        out[device] = read_npz(d + "/arrays.npz")
    size = np.ptp(out["cpu"]["anchors"][0], axis=0).max()
    assert np.abs(out["cpu"]["anchors"] - out["cuda"]["anchors"]).max() < 0.05 * size


def test_contact_damping_draw_has_its_own_stream_and_range():
    from training.data.params import ContactDampingDraw, sample_contact_damping

    draw = ContactDampingDraw()
    values = np.array([sample_contact_damping(seed, draw) for seed in range(400)])
    off = values == 0.0
    assert 0.12 < off.mean() < 0.28  # off_share 0.2
    on = values[~off]
    assert on.min() >= 1.0 and on.max() <= 300.0
    # log-uniform: about half below the geometric centre sqrt(300)
    assert 0.4 < np.mean(on < math.sqrt(300.0)) < 0.6
    assert sample_contact_damping(3, draw) == sample_contact_damping(3, draw)
    assert all(sample_contact_damping(s, ContactDampingDraw((0.0, 0.0))) == 0.0 for s in range(5))
    for bad in (ContactDampingDraw((0.0, 10.0)), ContactDampingDraw((5.0, 1.0)), ContactDampingDraw((1.0, 1e4)),
                ContactDampingDraw(off_share=1.5)):
        with pytest.raises(ValueError, match="contact damping"):
            bad.validate()


def test_drawn_contact_damping_changes_only_what_follows_the_impact():
    # the same seed with the draw off and at its top: same object, physics and motion; the same fall, then the damped
    # object bounces and rolls less
    from dataclasses import replace

    from training.data.params import ContactDampingDraw
    from training.eval_metrics import after_impact

    off = replace(CONFIG, contact_damping=ContactDampingDraw((0.0, 0.0)))
    high = replace(CONFIG, contact_damping=ContactDampingDraw((300.0, 300.0), off_share=0.0))
    _, c_off, a_off, _, _, _ = simulate_sample("proc-ellipsoid-00002", 5, off)
    _, c_high, a_high, _, _, _ = simulate_sample("proc-ellipsoid-00002", 5, high)
    assert c_off.contact_damping == 0.0 and c_high.contact_damping == pytest.approx(300.0)
    assert c_off.params == c_high.params and c_off.velocity == c_high.velocity
    size = object_size(a_off[0])
    impact = after_impact(a_off, size)["impact"]
    # the deformation damping also calms the in-flight wobble (it acts on deformation, not only in contact): the
    # fall differs by well under 1% of the size
    assert np.abs(a_off[:impact] - a_high[:impact]).max() < 0.01 * size
    moved = lambda a: np.linalg.norm(np.diff(a.mean(1)[impact:], axis=0), axis=1).sum()  # noqa: E731
    assert moved(a_high) < moved(a_off)
