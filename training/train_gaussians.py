"""Train / evaluate the learned Gaussian predictor (reconphys_ros/core/models/gaussian_predictor.py).

    python -m training.train_gaussians --config training/configs/gaussians_cpu.yaml          # train
    python -m training.train_gaussians --config training/configs/gaussians_cpu.yaml --eval   # test split

Training example: one view of one frame of a synthetic clip as input; the predicted Gaussians are rendered
(CPU torch rasterizer) into all the dataset's views of that frame and compared with their RGB and alpha:
L2 on the colour composited over the target image itself (the backgrounds are unknown) + `alpha_weight` x L2
on alpha. The depth prior is the true centre of the object's Gaussians (the pipeline gives its free-fall fit).
Evaluation on the test split, against mask inflation with the same depth prior: silhouette IoU and PSNR in the
3 novel views, and the convex-hull volume ratio to the true Gaussians.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import yaml
from scipy.spatial import ConvexHull
from torch.nn import functional as F

from reconphys_ros.core.models import gaussian_predictor as gp
from reconphys_ros.core.models.mask_inflation import inflate_mask
from reconphys_ros.core.models.object_depth import DepthPrior, FallTrack
from reconphys_ros.core.pipeline import FALL_TRACK_FRAMES
from reconphys_ros.core.render import Camera, render_views
from training.data.backgrounds import render_background
from training.data.dataset import SyntheticDataset

DEFAULTS = {
    "data": "data/learn64", "split": "train", "test_data": "data/learn64_test", "test_split": "test",
    "out": "runs/gaussians_cpu", "seed": 0, "steps": 1000, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-5,
    "frame_stride": 3, "alpha_weight": 1.0, "chamfer_weight": 0.0, "init_from": None, "log_every": 10, "checkpoint_every": 50, "max_minutes": 20.0,
    "net": {"input_size": 64, "output_size": 32, "width": 32, "layers": 2},
}


def load_config(path: str | None, overrides: dict | None = None) -> dict:
    config = json.loads(json.dumps(DEFAULTS))
    for source in ([yaml.safe_load(open(path)) or {}] if path else []) + [overrides or {}]:
        for key, value in source.items():
            if key not in config:
                raise ValueError(f"unknown config key {key!r}; known: {sorted(config)}")
            if isinstance(config[key], dict):
                config[key].update(value)
            else:
                config[key] = value
    if config["steps"] < 1 or config["batch_size"] < 1 or config["frame_stride"] < 1:
        raise ValueError("steps, batch_size and frame_stride must be >= 1")
    return config


def object_depth(means: torch.Tensor, camera: Camera) -> float:
    """Camera z of the centre of (N, 3) world points."""
    centre = means.mean(0)
    return float((camera.world_to_cam[:3, :3] @ centre + camera.world_to_cam[:3, 3])[2])


class FrameBank:
    """Views of (sample, frame) pairs in memory: rgb (S, T, V, H, W, 3) in [0, 1], alpha (S, T, V, H, W),
    cameras [S][V], Gaussian centres means [S] (T, N, 3) (world)."""

    def __init__(self, rgb: torch.Tensor, alpha: torch.Tensor, cameras: list, means: list):
        if rgb.dim() != 6 or rgb.shape[-1] != 3 or tuple(alpha.shape) != tuple(rgb.shape[:-1]):
            raise ValueError(f"FrameBank needs rgb (S, T, V, H, W, 3) and alpha (S, T, V, H, W), got "
                             f"{tuple(rgb.shape)} and {tuple(alpha.shape)}")
        if len(cameras) != rgb.shape[0] or len(means) != rgb.shape[0]:
            raise ValueError(f"FrameBank needs cameras and means for each of the {rgb.shape[0]} samples")
        self.rgb, self.alpha, self.cameras, self.means = rgb, alpha, cameras, means

    @staticmethod
    def load(root: str, split: str, frame_stride: int) -> "FrameBank":
        ds = SyntheticDataset(root, split, frames=slice(0, None, frame_stride), with_depth=False)
        rgb, alpha, cameras, means = [], [], [], []
        for i in range(len(ds)):
            item = ds[i]
            rgb.append(item["rgb"].permute(1, 0, 3, 4, 2))  # (T, V, H, W, 3)
            alpha.append(item["alpha"][:, :, 0].permute(1, 0, 2, 3))  # (T, V, H, W)
            h, w = item["rgb"].shape[-2:]
            cameras.append([Camera(k, e, w, h) for k, e in zip(item["K"], item["world_to_cam"])])
            means.append(item["gaussian_means"])  # (T, N, 3)
        return FrameBank(torch.stack(rgb), torch.stack(alpha), cameras, means)

    def example(self, s: int, t: int, v: int, input_size: int):
        """-> net input (6, S, S), crop mask (S, S), window, depth prior (m)."""
        rgb = self.rgb[s, t, v].numpy()
        mask = self.alpha[s, t, v].numpy() >= 0.5
        inp, crop_mask, window = gp.crop_inputs(rgb, mask, input_size)
        return torch.from_numpy(inp), torch.from_numpy(crop_mask), window, object_depth(self.means[s][t], self.cameras[s][v])


def render_loss(cloud, cameras, target_rgb, target_alpha, alpha_weight: float) -> torch.Tensor:
    """target_rgb (V, H, W, 3), target_alpha (V, H, W) -> scalar loss."""
    out = render_views(cloud, cameras, background=(0.0, 0.0, 0.0), backend="torch")
    composite = out.rgb + (1.0 - out.alpha)[..., None] * target_rgb  # over the target image: no background needed
    return F.mse_loss(composite, target_rgb) + alpha_weight * F.mse_loss(out.alpha, target_alpha)


def chamfer_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Symmetric mean squared nearest-neighbour distance between (M, 3) and (N, 3) points, in units of the true
    points' largest extent: keeps the predicted centres inside the object (its volume sets the physics)."""
    d2 = torch.cdist(pred, true) ** 2  # (M, N)
    extent = (true.max(0).values - true.min(0).values).max().clamp_min(1e-6)
    return (d2.min(1).values.mean() + d2.min(0).values.mean()) / extent ** 2


def train_step(net: gp.GaussianNet, bank: FrameBank, picks, alpha_weight: float,
               chamfer_weight: float = 0.0) -> torch.Tensor:
    """Mean loss over picks [(sample, frame, view)] (differentiable): render loss + chamfer_weight x the
    chamfer distance of the predicted centres to the true Gaussian centres (3D supervision of the volume)."""
    cfg = net.config
    examples = [bank.example(s, t, v, cfg.input_size) for s, t, v in picks]
    x = torch.stack([e[0] for e in examples])  # (B, 6, S, S)
    raw = net(x)  # (B, L, 11, So, So)
    crop_rgb = F.adaptive_avg_pool2d(x[:, :3], cfg.output_size)  # (B, 3, So, So)
    losses = []
    for b, ((s, t, v), (_, crop_mask, window, depth)) in enumerate(zip(picks, examples)):
        keep = gp.keep_cells(crop_mask, cfg.output_size)
        if not keep.any():
            continue
        cloud = gp.lift_gaussians(raw[b], crop_rgb[b], keep, window, bank.cameras[s][v], depth)
        loss = render_loss(cloud, bank.cameras[s], bank.rgb[s, t], bank.alpha[s, t], alpha_weight)
        if chamfer_weight > 0:
            loss = loss + chamfer_weight * chamfer_loss(cloud.means, bank.means[s][t])
        losses.append(loss)
    if not losses:
        raise ValueError("no example in the batch has an object inside its crop")
    return torch.stack(losses).mean()


def train(config: dict) -> str:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(config["seed"])
    rng = np.random.default_rng(config["seed"])
    bank = FrameBank.load(config["data"], config["split"], config["frame_stride"])
    num_samples, num_frames, num_views = bank.alpha.shape[:3]
    net = gp.GaussianNet(gp.GaussianNetConfig(**config["net"]))
    if config["init_from"]:
        net.load_state_dict(gp.load(config["init_from"]).net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config["lr"], total_steps=config["steps"], pct_start=0.05)
    os.makedirs(config["out"], exist_ok=True)
    path = os.path.join(config["out"], "gaussian_predictor.pt")
    log = open(os.path.join(config["out"], "train_log.jsonl"), "a")
    start, step = time.time(), 0
    for step in range(1, config["steps"] + 1):
        picks = [(int(rng.integers(num_samples)), int(rng.integers(num_frames)), int(rng.integers(num_views)))
                 for _ in range(config["batch_size"])]
        loss = train_step(net, bank, picks, config["alpha_weight"], config["chamfer_weight"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % config["log_every"] == 0:
            log.write(json.dumps({"step": step, "loss": float(loss.detach()), "minutes": (time.time() - start) / 60}) + "\n")
            log.flush()
        out_of_time = (time.time() - start) / 60 > config["max_minutes"]
        if step % config["checkpoint_every"] == 0 or step == config["steps"] or out_of_time:
            gp.save(path, net, step=step, train_config=config)
        if out_of_time:
            break
    return path


# ---------------------------------------------------------------------------- evaluation
def hull_volume(points: np.ndarray) -> float:
    return float(ConvexHull(points.astype(np.float64)).volume)


def view_metrics(cloud, cameras, target_rgb, target_alpha, backgrounds=None) -> tuple[float, float]:
    """Mean silhouette IoU and PSNR over the given views: target_rgb (V, H, W, 3), target_alpha (V, H, W);
    the render is composited over `backgrounds` (V, H, W, 3) (the data set's exact ones), or over the target
    image itself when they are unknown (then soft edges count twice)."""
    with torch.no_grad():
        out = render_views(cloud, cameras, background=(0.0, 0.0, 0.0), backend="torch")
    under = target_rgb if backgrounds is None else backgrounds
    composite = out.rgb + (1.0 - out.alpha)[..., None] * under
    pred, true = out.alpha >= 0.5, target_alpha >= 0.5
    iou = ((pred & true).flatten(1).sum(1).float() / (pred | true).flatten(1).sum(1).clamp_min(1).float())
    mse = ((composite - target_rgb) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float(iou.mean()), float((-10.0 * torch.log10(mse)).mean())


def dataset_backgrounds(spec: dict, cameras: list) -> torch.Tensor:
    """(V, H, W, 3) background images of a generated sample's views (meta["background"])."""
    return torch.stack([torch.from_numpy(render_background(spec, c.K.numpy(), c.world_to_cam.numpy(), c.width,
                                                           c.height, v)) for v, c in enumerate(cameras)])


METHODS = ("learned", "inflation", "inflation_horizontal", "learned_no_detail")


def evaluate(config: dict, weights: str, input_views=(0,), prior_kind: str = "true") -> dict:
    """Learned predictor vs mask inflation on the test split (frame 0, each of `input_views` as the input).
    prior_kind "true": depth of the true centre; "fall": the pipeline's free-fall fit on the input view."""
    torch.set_num_threads(1)
    if prior_kind not in ("true", "fall"):
        raise ValueError(f"prior_kind must be 'true' or 'fall', got {prior_kind!r}")
    predictor = gp.load(weights)
    predictor.detail = False  # the net's own cloud; the detail split is applied below, as predict would
    ds = SyntheticDataset(config["test_data"], config["test_split"], with_depth=False)
    rows = []
    for i in range(len(ds)):
        item = ds[i]
        h, w = item["rgb"].shape[-2:]
        cams = [Camera(k, e, w, h) for k, e in zip(item["K"], item["world_to_cam"])]
        all_backgrounds = dataset_backgrounds(ds.meta(i)["background"], cams)
        true_volume = hull_volume(item["gaussian_means"][0].numpy())
        for view in input_views:
            image = (item["rgb"][view, 0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            masks = (item["alpha"][view, :, 0].numpy() >= 0.5).astype(np.uint8)
            if prior_kind == "true":
                prior = DepthPrior(depth=object_depth(item["gaussian_means"][0], cams[view]))
            else:
                n_track = min(FALL_TRACK_FRAMES, len(masks))  # as the pipeline does
                prior = DepthPrior(fall_track=FallTrack.from_masks(masks[:n_track], np.arange(n_track) / 30.0))
            novel = [v for v in range(len(cams)) if v != view]
            target_rgb = item["rgb"][novel, 0].permute(0, 2, 3, 1)
            target_alpha = item["alpha"][novel, 0, 0]
            row = {"sample_id": item["sample_id"], "input_view": view}
            try:
                net_cloud = predictor.predict(image, masks[0], cams[view], prior)
                clouds = {"learned": gp.split_for_detail(net_cloud, image.astype(np.float32) / 255.0, masks[0] > 0,
                                                             cams[view]),
                          "inflation": inflate_mask(image, masks[0], cams[view], prior),
                          # the pipeline's fallback setting (PipelineConfig.inflation_layer_axis)
                          "inflation_horizontal": inflate_mask(image, masks[0], cams[view], prior,
                                                               layer_axis="horizontal"),
                          "learned_no_detail": net_cloud}
            except ValueError as exc:
                row["error"] = str(exc)
                rows.append(row)
                continue
            for name, cloud in clouds.items():
                iou, psnr = view_metrics(cloud, [cams[v] for v in novel], target_rgb, target_alpha,
                                         all_backgrounds[novel])
                _, input_psnr = view_metrics(cloud, [cams[view]], item["rgb"][[view], 0].permute(0, 2, 3, 1),
                                             item["alpha"][[view], 0, 0], all_backgrounds[[view]])
                row[name] = {"iou": iou, "psnr": psnr, "input_psnr": input_psnr, "num_gaussians": cloud.num_gaussians,
                             "volume_ratio": hull_volume(cloud.means.numpy()) / true_volume}
            rows.append(row)
    ok = [r for r in rows if "error" not in r]
    if not ok:
        raise ValueError(f"every test case failed, first: {rows[0].get('error') if rows else 'no samples'}")
    summary = {name: {key: float(np.mean([r[name][key] for r in ok])) for key in ("iou", "psnr", "input_psnr", "num_gaussians")}
               for name in METHODS}
    for name in summary:
        ratios = np.array([r[name]["volume_ratio"] for r in ok])
        summary[name]["volume_ratio_median"] = float(np.median(ratios))
        summary[name]["volume_ratio_geomean"] = float(np.exp(np.mean(np.log(ratios))))
    summary["learned_iou_wins"] = {name: int(sum(r["learned"]["iou"] > r[name]["iou"] for r in ok))
                                   for name in METHODS[1:]}
    return {"prior": prior_kind, "input_views": list(input_views), "num_cases": len(ok),
            "failed": len(rows) - len(ok), "summary": summary, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--eval", action="store_true", help="evaluate the checkpoint in <out> on the test split")
    parser.add_argument("--weights", default=None, help="checkpoint to evaluate (default <out>/gaussian_predictor.pt)")
    parser.add_argument("--prior", default="true", choices=("true", "fall"))
    parser.add_argument("--input-views", default="0", help="comma-separated input views to evaluate from")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    config = load_config(args.config, overrides)
    if args.eval:
        weights = args.weights or os.path.join(config["out"], "gaussian_predictor.pt")
        views = tuple(int(v) for v in args.input_views.split(","))
        result = evaluate(config, weights, views, prior_kind=args.prior)
        os.makedirs(config["out"], exist_ok=True)
        out = os.path.join(config["out"], f"eval_{args.prior}.json")
        with open(out, "w") as f:
            json.dump(result, f, indent=1)
        print(json.dumps(result["summary"], indent=1), f"\ncases {result['num_cases']} failed {result['failed']}")
    else:
        print(train(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
