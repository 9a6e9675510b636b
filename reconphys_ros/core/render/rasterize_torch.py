"""Differentiable CPU rasterizer in pure torch: sparse (pixel, Gaussian) pairs inside 2D ellipses.

Per-pixel front-to-back compositing with gsplat's rules, written as vectorised tensor ops:
  alpha_i = min(0.999, o_i exp(-sigma_i)), skipped if sigma_i < 0 or alpha_i < 1/255,
  T_i = prod_{j<i} (1 - alpha_j), and the pixel stops before the Gaussian that would bring T to <= 1e-4,
  C = sum_i alpha_i T_i c_i (+ T_final * background).
Candidates are the pixels inside each Gaussian's alpha >= 1/255 ellipse, enumerated row by row. The
exclusive product is a segmented cumulative sum of log(1 - alpha) over pairs sorted by (pixel, depth).
The backward pass is analytic (as in gsplat): dL/dalpha_i = T_i g_i - S_i / (1 - alpha_i), with g_i
the pair's output gradient and S_i the suffix sum of w_j g_j behind it in the same pixel; it saves
only (Gaussian, pixel, T) per pair instead of autograd's many intermediate tensors.
Gaussians are processed in depth order in chunks of at most `max_pairs` pairs, carrying each
pixel's transmittance forward (and the suffix sums backward), which bounds transient memory.
"""
from __future__ import annotations

import math

import torch

from .conventions import ALPHA_THRESHOLD, MAX_ALPHA, MIN_TRANSMITTANCE
from .projection import ProjectedGaussians

# Small enough that pixels which terminate early skip the later (deeper) chunks.
DEFAULT_MAX_PAIRS = 1 << 17
MAX_GAUSSIAN_IMAGES_PER_GROUP = 400_000

__all__ = ["rasterize_pairs"]


def _ellipse_row_spans(
    mean: torch.Tensor,  # (G, 2)
    conic: torch.Tensor,  # (G, 3)
    log_threshold: torch.Tensor,  # (G,) largest sigma with alpha >= 1/255, i.e. ln(255 * opacity)
    y0: torch.Tensor,  # (G,) int64 first row of the box
    box_h: torch.Tensor,  # (G,) int64 rows in the box
    width: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (Gaussian, row) the pixel columns whose centres lie inside the alpha >= 1/255 ellipse.
    Returns (R,) Gaussian slot, row y, first column x0 and column count."""
    slot = torch.repeat_interleave(torch.arange(box_h.shape[0], device=box_h.device), box_h)  # (R,)
    starts = torch.cumsum(box_h, 0) - box_h
    y = y0[slot] + torch.arange(slot.shape[0], device=box_h.device) - starts[slot]
    a, b, c = conic[slot].unbind(-1)
    dy = mean[slot, 1] - (y.to(mean.dtype) + 0.5)
    # 0.5 a dx^2 + b dy dx + 0.5 c dy^2 <= s  <=>  dx in [(-b dy - sqrt(disc)) / a, (-b dy + sqrt(disc)) / a]
    disc = (b * dy) ** 2 - a * (c * dy * dy - 2.0 * log_threshold[slot])
    half = disc.clamp_min(0).sqrt() / a
    centre = mean[slot, 0] + b * dy / a  # px = mx - dx
    # A small margin keeps boundary pixels; the exact alpha test later drops any extra ones.
    x_first = torch.ceil(centre - half - 0.5 - 1e-3).clamp(0, width).long()
    x_last = torch.floor(centre + half - 0.5 + 1e-3).clamp(-1, width - 1).long()
    count = torch.where(disc >= 0, (x_last - x_first + 1).clamp_min(0), torch.zeros_like(x_last))
    return slot, y, x_first, count


def _expand_spans(
    slot: torch.Tensor, y: torch.Tensor, x_first: torch.Tensor, count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row spans (R,) -> pixel candidates (M,): Gaussian slot, x, y."""
    span = torch.repeat_interleave(torch.arange(count.shape[0], device=count.device), count)  # (M,)
    starts = torch.cumsum(count, 0) - count
    x = x_first[span] + torch.arange(span.shape[0], device=count.device) - starts[span]
    return slot[span], x, y[span]


def _segment_starts(sorted_pixels: torch.Tensor) -> torch.Tensor:
    """For pairs sorted by pixel, the index of the first pair of each pair's pixel. (M,) -> (M,)"""
    idx = torch.arange(sorted_pixels.shape[0], device=sorted_pixels.device)
    is_start = torch.ones_like(sorted_pixels, dtype=torch.bool)
    is_start[1:] = sorted_pixels[1:] != sorted_pixels[:-1]
    return torch.cummax(torch.where(is_start, idx, torch.zeros_like(idx)), 0).values


def _inclusive_segment_cumsum(values: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """Running sum within each pixel's segment, in float64 so long global sums stay exact. (M,) -> (M,)"""
    v = values.double()
    inclusive = torch.cumsum(v, 0)
    return inclusive - (inclusive[starts] - v[starts])


def _pair_terms(pair_feats: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """Offsets, exponent, unclamped and clamped alpha per pair; pair_feats (M, F) -> four (M,) + (M,)."""
    dx = pair_feats[:, 0] - px
    dy = pair_feats[:, 1] - py
    sigma = 0.5 * (pair_feats[:, 2] * dx * dx + pair_feats[:, 4] * dy * dy) + pair_feats[:, 3] * dx * dy
    raw_alpha = pair_feats[:, 5] * torch.exp(-sigma)
    return dx, dy, sigma, raw_alpha, torch.clamp_max(raw_alpha, MAX_ALPHA)


def _pixel_centres(pix: torch.Tensor, width: int, height: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return (pix % width).to(dtype) + 0.5, ((pix // width) % height).to(dtype) + 0.5


class _PairPlan:
    """Visible Gaussians in depth order and their row spans, split into chunks (no gradient)."""

    def __init__(self, feats: torch.Tensor, radii: torch.Tensor, depths: torch.Tensor, width: int, height: int, max_pairs: int):
        num_images, n = depths.shape
        device, dtype = feats.device, feats.dtype
        valid = (radii > 0).all(-1)  # (I, N)
        depth_key = torch.where(valid, depths, torch.full_like(depths, float("inf")))
        order = torch.argsort(depth_key, dim=1, stable=True)  # (I, N) nearest first
        flat = (torch.arange(num_images, device=device)[:, None] * n + order).reshape(-1)
        self.flat = flat[valid.reshape(-1)[flat]]  # (G,) visible (image, Gaussian) ids, image-major, depth-sorted
        self.image_of = self.flat // max(n, 1)
        g_feats = feats[self.flat]  # (G, F)
        mean, conic = g_feats[:, 0:2], g_feats[:, 2:5]
        log_threshold = torch.log(g_feats[:, 5] / ALPHA_THRESHOLD)
        rad_y = radii.reshape(-1, 2)[self.flat][:, 1].to(dtype)
        # Rows whose pixel centre (y + 0.5) lies within [mean - r, mean + r].
        y0 = torch.ceil(mean[:, 1] - rad_y - 0.5).clamp(0, height).long()
        y1 = (torch.floor(mean[:, 1] + rad_y - 0.5) + 1).clamp(0, height).long()
        self.spans = _ellipse_row_spans(mean, conic, log_threshold, y0, (y1 - y0).clamp_min(0), width)
        span_slot, span_count = self.spans[0], self.spans[3]
        per_gaussian = torch.zeros(self.flat.shape[0], dtype=torch.long, device=device).index_add_(0, span_slot, span_count)
        chunk_of_gaussian = torch.div(torch.cumsum(per_gaussian, 0) - per_gaussian, max(int(max_pairs), 1), rounding_mode="floor")
        self.num_chunks = int(chunk_of_gaussian[-1]) + 1 if self.flat.numel() else 0
        # Spans are slot-major and chunks are contiguous slot ranges: chunk k owns one slice of spans.
        bounds = torch.searchsorted(chunk_of_gaussian[span_slot], torch.arange(self.num_chunks + 1, device=device))
        self.span_bounds = bounds.tolist()

    def chunk_pairs(self, chunk: int, width: int, height: int, done: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidate pairs of one chunk sorted by (pixel, depth), skipping pixels already `done`
        (terminated): (M,) flat Gaussian ids, (M,) pixel ids."""
        sel = slice(self.span_bounds[chunk], self.span_bounds[chunk + 1])
        slot, y, x_first, count = (t[sel] for t in self.spans)
        if done is not None:
            # Drop whole row spans whose pixels have all terminated, using per-row prefix counts.
            alive = torch.zeros(done.numel() // width, width + 1, dtype=torch.int32, device=done.device)
            alive[:, 1:] = torch.cumsum((~done).view(-1, width).to(torch.int32), 1)
            row = self.image_of[slot] * height + y
            live = alive[row, x_first + count] > alive[row, x_first]
            slot, y, x_first, count = slot[live], y[live], x_first[live], count[live]
        slot, px, py = _expand_spans(slot, y, x_first, count)
        pix = self.image_of[slot] * (height * width) + py * width + px
        if done is not None:
            live = ~done[pix]
            slot, pix = slot[live], pix[live]
        # Slot order is depth order, so this unique key sorts by pixel, then depth.
        perm = torch.argsort(pix * max(self.flat.shape[0], 1) + slot)
        return self.flat[slot[perm]], pix[perm]


class _CompositePairs(torch.autograd.Function):
    """feats (I*N, 7 + C) -> colour (P, C), alpha (P,), alpha-weighted depth (P,) for P = I*H*W pixels."""

    @staticmethod
    def forward(ctx, feats, radii, depths, width, height, max_pairs):
        num_pixels = depths.shape[0] * height * width
        num_channels = feats.shape[1] - 7
        dtype, device = feats.dtype, feats.device
        out = torch.zeros(num_pixels, 2 + num_channels, dtype=dtype, device=device)  # alpha, depth, colour
        log_t_carry = torch.zeros(num_pixels, dtype=torch.float64, device=device)
        log_min_t = math.log(MIN_TRANSMITTANCE)
        plan = _PairPlan(feats, radii, depths, width, height, max_pairs)
        saved = []
        done = None  # (P,) pixels whose compositing has stopped (gsplat breaks out of its loop)
        for chunk in range(plan.num_chunks):
            gid, pix = plan.chunk_pairs(chunk, width, height, done)
            if gid.numel() == 0:
                continue
            pair_feats = feats[gid]
            px, py = _pixel_centres(pix, width, height, dtype)
            *_, alpha = _pair_terms(pair_feats, px, py)
            keep = alpha >= ALPHA_THRESHOLD  # the spans' small margin may admit a few extra pairs
            log_1m = torch.log1p(-alpha.double()) * keep
            log_t = _inclusive_segment_cumsum(log_1m, _segment_starts(pix)) - log_1m + log_t_carry[pix]
            # Stop before the Gaussian that would bring T to <= 1e-4 (exclusive, as in gsplat);
            # T only decreases along a pixel, so this cuts a suffix of each pixel's list.
            alive = (log_t + log_1m) > log_min_t
            if not bool(alive.all()):
                if done is None:
                    done = torch.zeros(num_pixels, dtype=torch.bool, device=device)
                done[pix[~alive]] = True
                keep &= alive
            if not bool(keep.all()):
                idx = keep.nonzero()[:, 0]
                gid, pix, pair_feats, alpha, log_1m, log_t = (t[idx] for t in (gid, pix, pair_feats, alpha, log_1m, log_t))
            transmittance = torch.exp(log_t).to(dtype)
            weight = alpha * transmittance
            rows = torch.cat([weight[:, None], (weight * pair_feats[:, 6])[:, None], weight[:, None] * pair_feats[:, 7:]], 1)
            out.index_add_(0, pix, rows)
            log_t_carry.index_add_(0, pix, log_1m)
            saved.append((gid, pix, transmittance))
        ctx.saved = saved
        ctx.shape = (width, height, num_pixels)
        ctx.save_for_backward(feats)
        return out[:, 2:].contiguous(), out[:, 0].contiguous(), out[:, 1].contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_color, grad_alpha, grad_depth):
        (feats,) = ctx.saved_tensors
        width, height, num_pixels = ctx.shape
        dtype = feats.dtype
        grad_feats = torch.zeros_like(feats)
        # Per pixel, the sum of w_j g_j over pairs in chunks already visited (i.e. behind).
        behind = torch.zeros(num_pixels, dtype=torch.float64, device=feats.device)
        grad_out = torch.cat([grad_alpha[:, None], grad_depth[:, None], grad_color], 1)  # (P, 2 + C)
        for gid, pix, transmittance in reversed(ctx.saved):
            pair_feats = feats[gid]
            px, py = _pixel_centres(pix, width, height, dtype)
            dx, dy, sigma, raw_alpha, alpha = _pair_terms(pair_feats, px, py)
            g_pix = grad_out[pix]  # (M, 2 + C)
            # Gradient of the outputs w.r.t. this pair's weight w = alpha T.
            g = g_pix[:, 0] + g_pix[:, 1] * pair_feats[:, 6] + (g_pix[:, 2:] * pair_feats[:, 7:]).sum(1)
            weight = alpha * transmittance
            wg = (weight * g).double()
            seg_total = torch.zeros(num_pixels, dtype=torch.float64, device=feats.device).index_add_(0, pix, wg)
            suffix = seg_total[pix] - _inclusive_segment_cumsum(wg, _segment_starts(pix)) + behind[pix]
            behind += seg_total
            d_alpha = transmittance * g - (suffix / (1.0 - alpha.double())).to(dtype)
            d_raw = torch.where(raw_alpha < MAX_ALPHA, d_alpha, torch.zeros_like(d_alpha))
            d_sigma = -d_raw * raw_alpha
            a, b, c = pair_feats[:, 2], pair_feats[:, 3], pair_feats[:, 4]
            rows = torch.cat(
                [
                    torch.stack(
                        [
                            d_sigma * (a * dx + b * dy),
                            d_sigma * (c * dy + b * dx),
                            d_sigma * 0.5 * dx * dx,
                            d_sigma * dx * dy,
                            d_sigma * 0.5 * dy * dy,
                            d_raw * torch.exp(-sigma),
                            weight * g_pix[:, 1],
                        ],
                        1,
                    ),
                    weight[:, None] * g_pix[:, 2:],
                ],
                1,
            )
            grad_feats.index_add_(0, gid, rows)
        return grad_feats, None, None, None, None, None


def rasterize_pairs(
    proj: ProjectedGaussians,
    opacities: torch.Tensor,  # (N,) or (I, N)
    colors: torch.Tensor,  # (N, C) or (I, N, C)
    width: int,
    height: int,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians. Returns per image (I, H, W, C) colour without background,
    (I, H, W) alpha and (I, H, W) alpha-weighted depth sum (divide by alpha for expected depth)."""
    num_images, n = proj.depths.shape
    dtype = proj.means2d.dtype
    num_channels = colors.shape[-1]
    # Per (image, Gaussian) features, gathered once per pair: x, y, conic a b c, opacity, depth, colour.
    feats = torch.cat(
        [
            proj.means2d,
            proj.conics,
            opacities.to(dtype).expand(num_images, n)[..., None],
            proj.depths[..., None],
            colors.to(dtype).expand(num_images, n, num_channels),
        ],
        dim=-1,
    ).reshape(num_images * n, 7 + num_channels)  # (I*N, 7 + C)
    # Images are composited in groups so the per-(Gaussian, row) span tables stay bounded too.
    group = max(1, MAX_GAUSSIAN_IMAGES_PER_GROUP // max(n, 1))
    outputs = []
    for start in range(0, num_images, group):
        stop = min(start + group, num_images)
        outputs.append(
            _CompositePairs.apply(
                feats[start * n : stop * n], proj.radii[start:stop], proj.depths[start:stop].detach(), width, height, max_pairs
            )
        )
    color, alpha, depth = (torch.cat(parts) if len(parts) > 1 else parts[0] for parts in zip(*outputs))
    shape = (num_images, height, width)
    return color.reshape(shape + (num_channels,)), alpha.reshape(shape), depth.reshape(shape)
