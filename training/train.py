"""Train the physics predictor: supervised warm-start on the synthetic params, then self-supervised fine-tuning
through the differentiable simulator and renderer (training/rollout.py: self forcing, truncated backprop).

    python -m training.train --config training/configs/physics_cpu.yaml            # one process
    torchrun --nproc_per_node=2 -m training.train --config ...                      # data parallel (gloo/nccl)
    python -m training.train --config ... --resume runs/physics/last.pt             # continue exactly

Steps 0..supervised_steps-1 minimise the Gaussian NLL of the size-independent (ln k/m, ln d/m at 1 m, f, and with
the contact head ln(1 + contact damping at 1 m)) against the data set's params (core/physics/params.py; this also trains the uncertainty heads); the remaining steps minimise the rollout loss of the predicted means
(no labels; the log-variance heads are left as trained). One AdamW optimiser, one cosine schedule with linear
warm-up over all steps, gradient clipping. The batch of each step is drawn from a generator seeded by
(seed, step, rank), so a resumed run takes exactly the step the uninterrupted run would have taken.
Checkpoints (`last.pt`, full: model, optimiser, scheduler, step, config) load with torch.load(weights_only=True);
`--export PATH` writes the inference-only weights (network + config) for reconphys_ros/weights/.
Every val_every steps the predictor is scored on the validation split (mean absolute error of ln k/m, ln d/m and f
against the synthetic labels, plus the Gaussian NLL; TensorBoard `val/*`); the best ln k/m error so far is kept as
`best.pt` (a full checkpoint; export it like last.pt) with its scores in `best.json`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.distributed as dist
import yaml

from reconphys_ros.core.models.checkpoint import load_checkpoint, save_checkpoint
from reconphys_ros.core.models.physics_predictor import (PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION,
                                                         PhysicsNet, PhysicsNetConfig, prepare_clip)
from reconphys_ros.core.images import to_uint8
from reconphys_ros.core.models.physics_predictor import log_frame_interval
from reconphys_ros.core.physics.params import (CONTACT_DAMPING_SHARES, paper_from_ratios, ratios_from_paper,
                                               ratios_from_size_independent, size_independent_from_ratios)
from training.data.dataset import SyntheticDataset
from training.rollout import RolloutConfig, prepare_scene, rollout_loss

TRAIN_DEFAULTS = {
    "data": "data/learn64",  # data set root (training.data.generate)
    "split": "train",
    "view": 0,  # single input view
    "out": "runs/physics",
    "seed": 0,
    "supervised_steps": 200,
    "selfsup_steps": 50,
    "batch_size": 8,  # supervised batch per process
    "selfsup_batch_size": 2,  # self-supervised batch per process (each clip is a simulation + render)
    "lr": 1.0e-3,
    "selfsup_lr_scale": 0.2,  # learning-rate multiplier in the self-supervised phase (fine-tuning)
    "weight_decay": 1.0e-4,
    "warmup_steps": 20,
    "grad_clip": 1.0,
    "log_every": 10,
    "image_every": 50,
    "checkpoint_every": 50,
    "val_split": "val",  # model selection on this split (labels of the synthetic data); null = off
    "val_every": 50,  # steps between validations (and at the end); the best one is kept as best.pt
    "max_samples": None,  # use only the first N samples of the split (smoke tests)
    "augment_flip": False,  # supervised phase: mirror clips left-right at random (physics is mirror-symmetric)
    "net": {},  # PhysicsNetConfig overrides
    "init_weights": None,  # checkpoint whose weights start the run where they fit (e.g. a new head on trained weights)
    "rollout": {},  # RolloutConfig overrides
}


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    """Defaults <- YAML file <- overrides; unknown keys are an error (a typo must not be silently ignored)."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TRAIN_DEFAULTS.items()}
    for source in ([yaml.safe_load(open(path)) or {}] if path else []) + [overrides or {}]:
        unknown = set(source) - set(config)
        if unknown:
            raise ValueError(f"unknown training config keys {sorted(unknown)}; known: {sorted(config)}")
        for key, value in source.items():
            config[key] = {**config[key], **value} if isinstance(config[key], dict) else value
    for key in ("supervised_steps", "selfsup_steps", "batch_size", "selfsup_batch_size"):
        if not (isinstance(config[key], int) and config[key] >= 0):
            raise ValueError(f"{key} must be an integer >= 0, got {config[key]!r}")
    if config["supervised_steps"] + config["selfsup_steps"] < 1:
        raise ValueError("nothing to train: supervised_steps + selfsup_steps must be >= 1")
    if not (isinstance(config["val_every"], int) and config["val_every"] >= 1):
        raise ValueError(f"val_every must be an integer >= 1, got {config['val_every']!r}")
    if not (config["lr"] > 0 and config["grad_clip"] > 0):
        raise ValueError("lr and grad_clip must be > 0")
    PhysicsNetConfig(**config["net"]).validate()
    RolloutConfig(**config["rollout"]).validate()
    return config


def gaussian_nll(mean: torch.Tensor, log_var: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var)).mean()


class ClipBank:
    """The split in memory as network inputs; self-supervised scenes built on first use."""

    def __init__(self, root: str, split: str, view: int, num_frames: int, image_size: int, rollout: RolloutConfig,
                 max_samples: int | None = None, crop: bool = False, contact: bool = False):
        self.dataset = SyntheticDataset(root, split, views=view, frames=(0, num_frames), with_depth=False)
        count = len(self.dataset) if max_samples is None else min(len(self.dataset), int(max_samples))
        frames, masks, params, sizes, fps = [], [], [], [], []
        for i in range(count):
            item = self.dataset[i]
            # Exactly what the predictor is given at inference: uint8 frames and binary masks (a segmentation's),
            # through the same prepare_clip (training on soft alpha masks hurt at inference: MODEL_CARD.md).
            frames_u8 = to_uint8(item["rgb"].permute(0, 2, 3, 1))  # (T, H, W, 3)
            rgb, coverage = prepare_clip(frames_u8, item["mask"][:, 0].numpy(), image_size, crop)
            frames.append(rgb)
            masks.append(coverage)
            params.append(item["params"])
            sizes.append(item["object_size"])
            fps.append(item["fps"])
        self.frames = torch.stack(frames)  # (S, T, 3, s, s)
        self.masks = torch.stack(masks)  # (S, T, 1, s, s)
        self.params = torch.stack(params)  # (S, 4) paper convention, metric
        self.sizes = torch.tensor(sizes, dtype=torch.float64)  # (S,) m
        self.log_tau = torch.tensor(log_frame_interval(np.array(sizes), np.array(fps)), dtype=torch.float32)  # (S,)
        # (S, 3) the training targets: size-independent ln k/m, ln d/m at 1 m, f; with `contact` (S, 4): and
        # ln(1 + c) of the contact damping at 1 m (0 for data sets made before it was drawn)
        self.targets = size_independent_from_ratios(ratios_from_paper(self.params.double()), self.sizes).float()
        # (S,) contact damping, 1/s at 1 m
        self.contact_damping = torch.tensor([float(self.dataset.entries[i].get("contact_damping", 0.0))
                                             for i in range(count)], dtype=torch.float32)
        if contact:
            self.targets = torch.cat([self.targets, torch.log1p(self.contact_damping)[:, None]], 1)
        self.rollout = rollout
        self._scenes: dict[int, object] = {}

    def __len__(self) -> int:
        return self.frames.shape[0]

    def scene(self, index: int):
        if index not in self._scenes:
            self._scenes[index] = prepare_scene(self.dataset[index], self.dataset.meta(index), self.rollout)
        return self._scenes[index]


def batch_indices(num: int, batch: int, seed: int, step: int, rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)
    return torch.randint(0, num, (batch,), generator=g)


def flip_choice(batch: int, seed: int, step: int, rank: int) -> torch.Tensor:
    """(batch,) bool: which clips of a step's batch are mirrored; seeded like batch_indices (resumable)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank + 7_919)
    return torch.rand(batch, generator=g) < 0.5


def mirror(clips: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) clips, (B,) bool -> clips with the chosen ones mirrored left-right (along W)."""
    return torch.where(flip[:, None, None, None, None], clips.flip(-1), clips)


def cosine_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return f


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


class Trainer:
    def __init__(self, config: dict, device: str = "cpu"):
        self.config, self.device = config, device
        self.rank, self.world = _distributed()
        torch.manual_seed(config["seed"])  # identical initial weights on every rank
        self.net_config = PhysicsNetConfig(**config["net"])
        self.net = PhysicsNet(self.net_config).to(device)
        if config.get("init_weights"):
            initialise_from(self.net, config["init_weights"])
        self.model = self.net
        if self.world > 1:
            self.model = torch.nn.parallel.DistributedDataParallel(self.net, find_unused_parameters=True)
        self.rollout = RolloutConfig(**config["rollout"])
        self.total = config["supervised_steps"] + config["selfsup_steps"]
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           cosine_lambda(self.total, config["warmup_steps"]))
        self.step = 0
        self.bank = None
        self.val_bank = None
        self.best_val: float | None = None  # best validation ln k/m error so far (kept across resumes)
        self.writer = None

    def load_data(self):
        self.bank = ClipBank(self.config["data"], self.config["split"], self.config["view"],
                             self.net_config.num_frames, self.net_config.image_size, self.rollout,
                             self.config["max_samples"], self.net_config.crop_to_motion, self.net_config.contact_head)
        split = self.config["val_split"]
        if split and split != self.config["split"]:
            try:
                self.val_bank = ClipBank(self.config["data"], split, self.config["view"], self.net_config.num_frames,
                                         self.net_config.image_size, self.rollout, crop=self.net_config.crop_to_motion,
                                         contact=self.net_config.contact_head)
            except ValueError as exc:  # no samples of that split in this data set
                if self.rank == 0:
                    print(f"train: no validation ({exc}); best.pt is not written", flush=True)

    # validation ------------------------------------------------------------------------------------------------
    def validate(self, chunk: int = 16) -> dict:
        """Scores of the current weights on the validation bank: MAE of ln k/m, ln d/m, f and the NLL."""
        self.net.eval()
        means, log_vars = [], []
        with torch.no_grad():
            for start in range(0, len(self.val_bank), chunk):
                mean, log_var = self.net(self.val_bank.frames[start:start + chunk].to(self.device),
                                         self.val_bank.masks[start:start + chunk].to(self.device),
                                         self.val_bank.log_tau[start:start + chunk].to(self.device))
                means.append(mean.cpu())
                log_vars.append(log_var.cpu())
        mean, log_var = torch.cat(means), torch.cat(log_vars)  # (S, 3)
        target = self.val_bank.targets
        mae = (mean - target).abs().mean(0)
        scores = {"ln_k_per_m_mae": float(mae[0]), "ln_d_per_m_mae": float(mae[1]), "friction_mae": float(mae[2]),
                  "nll": float(gaussian_nll(mean, log_var, target)), "samples": len(self.val_bank), "step": self.step}
        if mae.shape[0] > 3:
            scores["ln1p_contact_damping_mae"] = float(mae[3])
        return scores

    def _validate_and_keep_best(self) -> None:
        scores = self.validate()
        if self.rank != 0:
            return
        for key in ("ln_k_per_m_mae", "ln_d_per_m_mae", "friction_mae", "nll", "ln1p_contact_damping_mae"):
            if key in scores:
                self._tensorboard().add_scalar(f"val/{key}", scores[key], self.step)
        if self.best_val is None or scores["ln_k_per_m_mae"] < self.best_val:
            self.best_val = scores["ln_k_per_m_mae"]
            self.save(os.path.join(self.config["out"], "best.pt"))
            with open(os.path.join(self.config["out"], "best.json"), "w") as f:
                json.dump(scores, f, indent=1)

    # checkpoints -----------------------------------------------------------------------------------------------
    def save(self, path: str) -> None:
        if self.rank == 0:
            save_checkpoint(path, PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION, asdict(self.net_config),
                            self.net.state_dict(), optimizer=self.optimizer.state_dict(),
                            scheduler=self.scheduler.state_dict(), step=self.step, train_config=self.config,
                            best_val=self.best_val)

    def resume(self, path: str) -> None:
        payload = load_checkpoint(path, PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION)
        if payload["config"] != asdict(self.net_config):
            raise ValueError(f"{path}: network config {payload['config']} differs from this run's "
                             f"{asdict(self.net_config)}")
        self.net.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.step = int(payload["step"])
        self.best_val = payload.get("best_val")

    # one step -----------------------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        cfg, step = self.config, self.step
        supervised = step < cfg["supervised_steps"]
        self.net.train()
        if supervised:
            idx = batch_indices(len(self.bank), cfg["batch_size"], cfg["seed"], step, self.rank)
            frames, masks = self.bank.frames[idx], self.bank.masks[idx]
            if cfg["augment_flip"]:
                flip = flip_choice(len(idx), cfg["seed"], step, self.rank)
                frames, masks = mirror(frames, flip), mirror(masks, flip)
            mean, log_var = self.model(frames.to(self.device), masks.to(self.device),
                                       self.bank.log_tau[idx].to(self.device))
            loss = gaussian_nll(mean, log_var, self.bank.targets[idx].to(self.device))
            extra = {}
        else:
            idx = batch_indices(len(self.bank), cfg["selfsup_batch_size"], cfg["seed"], step, self.rank)
            mean, log_var = self.model(self.bank.frames[idx].to(self.device), self.bank.masks[idx].to(self.device),
                                       self.bank.log_tau[idx].to(self.device))
            scenes = [self.bank.scene(int(i)) for i in idx]
            # the predicted size-independent values at each clip's size, with its true anchor mass (k/m is what moves)
            ratios = ratios_from_size_independent(mean[:, :3], self.bank.sizes[idx].to(mean))
            params = paper_from_ratios(ratios, self.bank.params[idx, 0].to(mean))
            # the predicted contact damping (or the data's, without the head) sets the rollout's dissipation
            c = mean[:, 3].detach().expm1() if mean.shape[1] > 3 else self.bank.contact_damping[idx].to(mean)
            dissipation = c[:, None] * torch.tensor(CONTACT_DAMPING_SHARES, dtype=mean.dtype, device=mean.device)
            per_clip, alpha, _ = rollout_loss(scenes, params, self.rollout, dissipation)
            loss = per_clip.mean() + 0.0 * log_var.sum()  # keeps every parameter in the graph for DDP
            extra = {"alpha": alpha.detach(), "target": torch.stack([s.target_alpha for s in scenes])}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg["grad_clip"])
        scale = 1.0 if supervised else cfg["selfsup_lr_scale"]  # fine-tuning takes smaller steps
        for group in self.optimizer.param_groups:
            group["lr"] *= scale
        self.optimizer.step()
        for group in self.optimizer.param_groups:
            group["lr"] /= scale
        self.scheduler.step()
        self.step += 1
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm), "phase": "sup" if supervised else "self",
                "lr": self.optimizer.param_groups[0]["lr"], **extra}

    # loop ------------------------------------------------------------------------------------------------------------
    def _tensorboard(self):
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(self.config["out"], "tb"))
        return self.writer

    def _log(self, out: dict) -> None:
        if self.rank != 0:
            return
        writer = self._tensorboard()
        writer.add_scalar(f"loss/{out['phase']}", out["loss"], self.step)
        writer.add_scalar("grad_norm", out["grad_norm"], self.step)
        writer.add_scalar("lr", out["lr"], self.step)
        if "alpha" in out and self.step % max(1, self.config["image_every"]) == 0:
            # rendered (top) vs observed (bottom) silhouettes of the first clip, frames side by side
            rendered, observed = out["alpha"][0], out["target"][0]  # (T, h, w)
            grid = torch.cat([torch.cat(list(rendered), 1), torch.cat(list(observed), 1)], 0)
            writer.add_image("rendered_vs_observed", grid[None].clamp(0, 1), self.step)

    def fit(self, progress: bool = True) -> list[float]:
        from tqdm import tqdm

        if self.bank is None:
            self.load_data()
        os.makedirs(self.config["out"], exist_ok=True)
        losses = []
        bar = tqdm(total=self.total, initial=self.step, disable=not progress or self.rank != 0, desc="train")
        start = time.time()
        while self.step < self.total:
            out = self.train_step()
            losses.append(out["loss"])
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss']:.4g}", phase=out["phase"])
            if self.step % max(1, self.config["log_every"]) == 0 or "alpha" in out and self.step % max(1, self.config["image_every"]) == 0:
                self._log(out)
            if self.val_bank is not None and (self.step % max(1, self.config["val_every"]) == 0
                                              or self.step == self.total):
                self._validate_and_keep_best()  # before last.pt, so a resume knows the best score
            if self.step % max(1, self.config["checkpoint_every"]) == 0 or self.step == self.total:
                self.save(os.path.join(self.config["out"], "last.pt"))
        bar.close()
        if self.rank == 0:
            with open(os.path.join(self.config["out"], "train_time.txt"), "w") as f:
                f.write(f"steps {self.total} wall_s {time.time() - start:.1f} samples {len(self.bank)} world {self.world}\n")
        if self.writer is not None:
            self.writer.close()
        return losses


def initialise_from(net: PhysicsNet, path: str) -> None:
    """Load the weights of checkpoint `path` into `net` where names and shapes match; modules the checkpoint lacks
    (a new head) keep their initialisation. Raises when anything of the checkpoint does not fit."""
    payload = load_checkpoint(path, PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION)
    own = net.state_dict()
    misfit = [k for k, v in payload["model"].items() if k not in own or own[k].shape != v.shape]
    if misfit:
        raise ValueError(f"init_weights {path}: weights {misfit[:5]} do not fit this network")
    net.load_state_dict(payload["model"], strict=False)


def export_weights(checkpoint: str, path: str) -> None:
    """Inference weights only (network + its config): what ships in reconphys_ros/weights/."""
    payload = load_checkpoint(checkpoint, PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION)
    info = {"step": int(payload.get("step", 0))}
    train_config = payload.get("train_config") or {}
    info.update({k: train_config[k] for k in ("supervised_steps", "selfsup_steps", "data") if k in train_config})
    save_checkpoint(path, PHYSICS_CHECKPOINT_KIND, PHYSICS_CHECKPOINT_VERSION, payload["config"], payload["model"],
                    training=info)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file (training/configs/); keys as TRAIN_DEFAULTS")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override top-level keys, e.g. --set supervised_steps=10 out=/tmp/run (YAML values)")
    parser.add_argument("--resume", help="full checkpoint to continue from (e.g. runs/physics/last.pt)")
    parser.add_argument("--export", help="after training, write inference weights here")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    config = load_config(args.config, overrides)
    trainer = Trainer(config, args.device)
    if args.resume:
        trainer.resume(args.resume)
    trainer.fit(progress=not args.no_progress)
    if args.export and trainer.rank == 0:
        export_weights(os.path.join(config["out"], "last.pt"), args.export)
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
