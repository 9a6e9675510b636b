"""Training smoke tests on the --tiny data set: loss decreases, resume reproduces the next step exactly,
gradients reach the physics predictor through simulator + renderer, truncated backprop changes the graph,
DDP under torchrun."""
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from reconphys_ros.core.models.physics_predictor import PhysicsNet, PhysicsNetConfig, load_net
from reconphys_ros.core.physics.params import paper_from_ratios, ratios_from_paper
from training.rollout import RolloutConfig, prepare_scene, rollout_loss
from training.train import Trainer, export_weights, gaussian_nll, load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(ROOT, "training", "configs", "smoke.yaml")


def _config(tiny_data, tmp_path, **overrides):
    return load_config(SMOKE, {"data": tiny_data, "out": str(tmp_path / "run"), **overrides})


def _bank_nll(trainer) -> float:
    with torch.no_grad():
        mean, log_var = trainer.net(trainer.bank.frames, trainer.bank.masks)
        return float(gaussian_nll(mean, log_var, ratios_from_paper(trainer.bank.params)))


def test_config_rejects_unknown_keys_and_bad_values(tiny_data):
    with pytest.raises(ValueError, match="unknown training config keys"):
        load_config(SMOKE, {"learning_rate": 1.0})
    with pytest.raises(ValueError, match="supervised_steps"):
        load_config(SMOKE, {"supervised_steps": -1})
    with pytest.raises(ValueError, match="k_neighbors"):
        load_config(SMOKE, {"rollout": {"k_neighbors": 500}})


def test_supervised_loss_decreases_and_checkpoint_exports(tiny_data, tmp_path):
    trainer = Trainer(_config(tiny_data, tmp_path, supervised_steps=25, selfsup_steps=0, lr=3e-3, batch_size=2))
    trainer.load_data()
    before = _bank_nll(trainer)
    trainer.fit(progress=False)
    after = _bank_nll(trainer)
    assert after < before - 0.05, (before, after)
    ckpt = tmp_path / "run" / "last.pt"
    payload = torch.load(ckpt, weights_only=True)  # full checkpoint loads without pickled code
    assert payload["step"] == 25 and "optimizer" in payload and payload["train_config"]["supervised_steps"] == 25
    export_weights(str(ckpt), str(tmp_path / "w.pt"))
    net = load_net(str(tmp_path / "w.pt"))
    for k, v in trainer.net.state_dict().items():
        assert torch.equal(v, net.state_dict()[k])


def test_resume_gives_identical_next_step(tiny_data, tmp_path):
    config = _config(tiny_data, tmp_path, supervised_steps=2, selfsup_steps=2)
    a = Trainer(config)
    a.load_data()
    a.train_step()
    a.train_step()
    a.save(str(tmp_path / "mid.pt"))
    out_a = a.train_step()  # step 2: the first self-supervised step (simulate + render)
    assert out_a["phase"] == "self"
    b = Trainer(config)
    b.load_data()
    b.resume(str(tmp_path / "mid.pt"))
    assert b.step == 2
    out_b = b.train_step()
    assert out_a["loss"] == out_b["loss"]
    for (name, pa), pb in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_resume_rejects_other_network(tiny_data, tmp_path):
    a = Trainer(_config(tiny_data, tmp_path))
    a.save(str(tmp_path / "a.pt"))
    b = Trainer(_config(tiny_data, tmp_path, net={"embed": 64}))
    with pytest.raises(ValueError, match="network config"):
        b.resume(str(tmp_path / "a.pt"))


def _scenes(tiny_data, config):
    from training.data.dataset import SyntheticDataset

    ds = SyntheticDataset(tiny_data, "train", views=0, frames=(0, 8))
    return [prepare_scene(ds[i], ds.meta(i), config) for i in range(len(ds))], ds


def test_gradients_reach_the_predictor_through_sim_and_render(tiny_data):
    config = RolloutConfig(num_anchors=64, k_neighbors=8, render_size=16, max_gaussians=64, substeps=5)
    scenes, ds = _scenes(tiny_data, config)
    torch.manual_seed(0)
    net = PhysicsNet(PhysicsNetConfig(image_size=32, num_frames=8, width=8, embed=32, heads=2, layers=1))
    frames = torch.stack([ds[i]["rgb"] for i in range(len(ds))])
    masks = torch.stack([ds[i]["alpha"] for i in range(len(ds))])
    mean, _ = net(frames, masks)
    loss, _, _ = rollout_loss(scenes, paper_from_ratios(mean, 1.0), config)
    loss.sum().backward()
    first_conv = net.encoder[0][0].weight.grad
    assert first_conv is not None and torch.isfinite(first_conv).all() and first_conv.abs().sum() > 0
    assert net.head[-1].weight.grad[:3].abs().sum() > 0  # the mean heads get a signal from the video alone


def test_truncated_backprop_changes_the_graph(tiny_data):
    config = RolloutConfig(num_anchors=64, k_neighbors=8, render_size=16, max_gaussians=64, substeps=5)
    scenes, _ = _scenes(tiny_data, config)
    grads = {}
    for truncated in (True, False):
        mean = torch.tensor([[4.0, 0.0, 0.5]] * len(scenes), requires_grad=True)
        loss, _, _ = rollout_loss(scenes, paper_from_ratios(mean, 1.0), dataclasses.replace(config, truncated=truncated))
        grads[truncated], = torch.autograd.grad(loss.sum(), mean)
        assert torch.isfinite(grads[truncated]).all() and grads[truncated][:, 0].abs().sum() > 0
    # same forward values, but the full graph carries the state's history: its stiffness gradient differs
    assert not torch.allclose(grads[True], grads[False], rtol=1e-3, atol=0)


@pytest.mark.slow
def test_torchrun_two_processes(tiny_data, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "ddp"
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29533", "-m", "training.train",
                           "--config", SMOKE, "--set", f"data={tiny_data}", f"out={out}", "selfsup_steps=1",
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = torch.load(out / "last.pt", weights_only=True)
    assert payload["step"] == 5


def test_mirror_flips_only_chosen_clips_and_is_seeded():
    from training.train import flip_choice, mirror

    clips = torch.arange(2 * 2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 2, 1, 2, 3)  # (B, T, C, H, W)
    out = mirror(clips, torch.tensor([True, False]))
    assert torch.equal(out[0, :, :, :, 0], clips[0, :, :, :, 2])  # first clip mirrored along W
    assert torch.equal(out[1], clips[1])  # second untouched
    a, b = flip_choice(64, 0, 5, 0), flip_choice(64, 0, 5, 0)
    assert torch.equal(a, b) and 0 < int(a.sum()) < 64  # same step -> same choice (resumable), both kinds drawn
    assert not torch.equal(a, flip_choice(64, 0, 6, 0))


def test_augment_flip_changes_the_supervised_batch(tiny_data, tmp_path):
    losses = []
    for flip in (False, True):
        trainer = Trainer(_config(tiny_data, tmp_path, supervised_steps=1, selfsup_steps=0, batch_size=4,
                                  augment_flip=flip))
        trainer.load_data()
        losses.append(trainer.train_step()["loss"])
    assert losses[0] != losses[1]  # same seed and weights: only the mirrored inputs differ


def test_validation_keeps_the_best_checkpoint_and_survives_resume(tiny_data, tmp_path):
    import json
    config = _config(tiny_data, tmp_path, supervised_steps=12, selfsup_steps=0, lr=3e-3, batch_size=2,
                     val_split="test", val_every=4, checkpoint_every=4)
    trainer = Trainer(config)
    trainer.fit(progress=False)
    best = json.load(open(tmp_path / "run" / "best.json"))
    assert best["samples"] >= 1 and best["step"] in (4, 8, 12)
    assert all(best[k] >= 0 for k in ("ln_k_per_m_mae", "ln_d_per_m_mae", "friction_mae"))
    assert trainer.best_val == best["ln_k_per_m_mae"]
    # the kept checkpoint scores exactly what best.json says
    checker = Trainer(config)
    checker.load_data()
    checker.resume(str(tmp_path / "run" / "best.pt"))
    assert checker.step == best["step"] and checker.validate()["ln_k_per_m_mae"] == best["ln_k_per_m_mae"]
    # a resumed run remembers the best score so far
    resumed = Trainer(config)
    resumed.resume(str(tmp_path / "run" / "last.pt"))
    assert resumed.best_val == best["ln_k_per_m_mae"]
    with pytest.raises(ValueError, match="val_every"):
        load_config(SMOKE, {"val_every": 0})


def test_contact_head_trains_on_four_targets_from_weights_without_it(tiny_data, tmp_path):
    # a trained network without the head initialises everything but the new head (v10 from v9); its targets get
    # ln(1 + contact damping) of each clip; the self-supervised steps simulate with the predicted contact damping
    base = Trainer(_config(tiny_data, tmp_path / "base", supervised_steps=1, selfsup_steps=0))
    base.fit(progress=False)
    export_weights(str(tmp_path / "base" / "run" / "last.pt"), str(tmp_path / "base.pt"))
    config = _config(tiny_data, tmp_path, supervised_steps=2, selfsup_steps=1, init_weights=str(tmp_path / "base.pt"),
                     net={**load_config(SMOKE)["net"], "contact_head": True})
    trainer = Trainer(config)
    for k, v in base.net.state_dict().items():
        assert torch.equal(v, trainer.net.state_dict()[k]), k
    trainer.load_data()
    bank = trainer.bank
    assert bank.targets.shape == (len(bank), 4)
    assert torch.allclose(bank.targets[:, 3], torch.log1p(bank.contact_damping))
    assert (bank.contact_damping > 0).any()  # the tiny set draws it
    trainer.fit(progress=False)
    mean, log_var = trainer.net(bank.frames[:1], bank.masks[:1], bank.log_tau[:1])
    assert mean.shape == (1, 4) and log_var.shape == (1, 4)
    # a network with other shapes cannot be a starting point
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(_config(tiny_data, tmp_path, init_weights=str(tmp_path / "base.pt"),
                        net={**load_config(SMOKE)["net"], "embed": 64}))
