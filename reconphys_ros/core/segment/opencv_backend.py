"""Classical segmentation of a falling object: background model + motion + colour difference.

Per frame:
1. colour distance of the (blurred) frame to a background model, with a threshold that adapts to the
   measured noise level;
2. morphology, connected components, and a choice of ONE component: the largest that moves, else the one
   that overlaps the previous mask (the object has come to rest), else the largest (first frame);
3. optional GrabCut refinement around that component; hole filling;
4. background update: slow running average where nothing is seen; foreground that stays still for
   `absorb_frames` frames is absorbed (static clutter stops being foreground); foreground outside the chosen
   object that moved recently and then stays still for `ghost_frames` frames is absorbed at once (the
   background uncovered where an object stood in the first frame of a cluttered scene, a "ghost").

The background starts from the first frame. When the image border is made of a few plain colours (a backdrop;
sky and a checkered floor), anything unlike all of them is foreground already in the first frame and the
background there is inpainted, so an object that is visible from the first frame is segmented at once. That
initial background is kept as a second reference (where it was guessed: the border colours): a pixel must
differ from both references to be foreground, which removes the "ghost" left behind when an absorbed object
moves away. Soft edges are cut where a rim pixel is less than half object (as an alpha > 0.5 silhouette).
"""
from __future__ import annotations

import cv2
import numpy as np

from .base import Segmenter, validate_rgb_image

__all__ = ["OpenCvSegmenter"]

# 25th percentile of the chi distribution with 3 degrees of freedom: turns a low percentile of RGB distances
# into a per-channel noise sigma while staying robust to objects that cover up to ~75 % of the frame.
_CHI3_P25 = 1.10


def _odd(n: float) -> int:
    n = max(1, int(round(n)))
    return n if n % 2 == 1 else n + 1


# At most this many plain colours may make up the image border for the scene to count as "plain".
BORDER_COLOURS = 4
_SUM_CHANNELS = np.ones((1, 3), np.float32)


def _colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean RGB distance of float32 (H, W, 3) images (b may be one colour (3,)) -> (H, W).
    cv2 arithmetic: ~5x faster than numpy at 512x512."""
    if b.ndim == 1:
        b = np.ascontiguousarray(np.broadcast_to(b.astype(np.float32), a.shape))
    diff = cv2.subtract(a, b)
    return cv2.sqrt(cv2.transform(cv2.multiply(diff, diff), _SUM_CHANNELS))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the inside of every outer contour: a textured object often matches the background in places."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
    return filled


INPAINT_MAX_SIDE = 128  # the first frame's hidden background is inpainted at most at this size (Telea's cost
# grows with hole area x radius^2: at 512^2 it stalled the first frame for up to 0.9 s)


def _bounded_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def _downsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average `image` to `size` (w, h); far larger frames are first decimated by striding to at most twice
    the size, since INTER_AREA over a 4000^2 frame alone took 70 ms."""
    stride = max(1, min(image.shape[1] // (2 * size[0]), image.shape[0] // (2 * size[1])))
    if stride > 1:
        image = np.ascontiguousarray(image[::stride, ::stride])
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _inpaint_background(frame: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The background hidden behind `holes` (H, W) uint8 in a float32 frame (H, W, 3), inpainted (Telea) at most
    at INPAINT_MAX_SIDE and scaled back into the holes only; the rest of the frame is kept."""
    h, w = holes.shape
    frame_u8 = np.clip(frame + 0.5, 0, 255).astype(np.uint8)
    size = _bounded_size(w, h, INPAINT_MAX_SIDE)
    if size == (w, h):
        radius = max(3, int(round(0.02 * min(h, w))))
        return cv2.inpaint(frame_u8, holes, radius, cv2.INPAINT_TELEA).astype(np.float32)
    small_holes = cv2.resize(holes, size, interpolation=cv2.INTER_AREA) > 0  # any covered share is a hole
    small = cv2.inpaint(cv2.resize(frame_u8, size, interpolation=cv2.INTER_AREA), small_holes.astype(np.uint8),
                        max(3, int(round(0.02 * min(size)))), cv2.INPAINT_TELEA)
    filled = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    return np.where(holes[..., None] > 0, filled, frame.astype(np.float32))


class OpenCvSegmenter(Segmenter):
    """Default backend: no model weights, a few milliseconds per 128x128 frame.

    Args:
        threshold: minimum RGB distance (0..255 scale, after blurring) between frame and background that counts
            as foreground.
        noise_factor: the threshold rises to `noise_factor` x the measured per-channel noise sigma when the video
            is noisy.
        blur_size: Gaussian blur kernel (odd, pixels) applied before differencing; 0 disables.
        learning_rate: weight of the current frame in the running-average background update (0..1).
        absorb_frames: foreground that shows no motion for this many frames becomes background; 0 never.
        ghost_frames: foreground outside the chosen object that moved within the last `absorb_frames` frames
            and has been still for this many frames becomes background; 0 never.
        min_area_fraction: components smaller than this fraction of the image are noise.
        morph_size: morphology kernel in pixels; None picks ~1 % of the smaller image side (at least 3).
        grabcut: refine the chosen component with GrabCut (slower, sharper edges on colourful backgrounds).
        grabcut_iterations: GrabCut iterations when enabled.
        max_foreground_fraction: more foreground than this means the scene changed (camera moved, lights):
            the background restarts from the current frame and the mask is empty.
        plain_border_fraction: share of border pixels that must match the median border colour for the
            background to be treated as plain.
        max_side: frames whose longer side exceeds this many pixels are segmented at this size (area-averaged)
            and the mask is scaled back, so no step's cost grows with the camera's resolution; None = native.
    """

    def __init__(
        self,
        threshold: float = 30.0,
        noise_factor: float = 6.0,
        blur_size: int = 5,
        learning_rate: float = 0.05,
        absorb_frames: int = 90,
        ghost_frames: int = 3,
        min_area_fraction: float = 0.001,
        morph_size: int | None = None,
        grabcut: bool = False,
        grabcut_iterations: int = 2,
        max_foreground_fraction: float = 0.9,
        plain_border_fraction: float = 0.85,
        max_side: int | None = 256,
    ) -> None:
        if not np.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"threshold must be a positive RGB distance, got {threshold}")
        if not np.isfinite(noise_factor) or noise_factor < 0:
            raise ValueError(f"noise_factor must be >= 0, got {noise_factor}")
        if int(blur_size) < 0 or (int(blur_size) > 0 and int(blur_size) % 2 == 0):
            raise ValueError(f"blur_size must be 0 or a positive odd number, got {blur_size}")
        if not 0.0 <= learning_rate <= 1.0:
            raise ValueError(f"learning_rate must lie in [0, 1], got {learning_rate}")
        if int(absorb_frames) < 0 or int(ghost_frames) < 0:
            raise ValueError(f"absorb_frames and ghost_frames must be >= 0, got {absorb_frames}, {ghost_frames}")
        if not 0.0 <= min_area_fraction < 1.0:
            raise ValueError(f"min_area_fraction must lie in [0, 1), got {min_area_fraction}")
        if morph_size is not None and int(morph_size) < 1:
            raise ValueError(f"morph_size must be >= 1 or None, got {morph_size}")
        if int(grabcut_iterations) < 1:
            raise ValueError(f"grabcut_iterations must be >= 1, got {grabcut_iterations}")
        if not 0.0 < max_foreground_fraction <= 1.0:
            raise ValueError(f"max_foreground_fraction must lie in (0, 1], got {max_foreground_fraction}")
        if not 0.0 < plain_border_fraction <= 1.0:
            raise ValueError(f"plain_border_fraction must lie in (0, 1], got {plain_border_fraction}")
        if max_side is not None and int(max_side) < 32:
            raise ValueError(f"max_side must be >= 32 pixels or None, got {max_side}")
        self.threshold = float(threshold)
        self.noise_factor = float(noise_factor)
        self.blur_size = int(blur_size)
        self.learning_rate = float(learning_rate)
        self.absorb_frames = int(absorb_frames)
        self.ghost_frames = int(ghost_frames)
        self.min_area_fraction = float(min_area_fraction)
        self.morph_size = None if morph_size is None else int(morph_size)
        self.grabcut = bool(grabcut)
        self.grabcut_iterations = int(grabcut_iterations)
        self.max_foreground_fraction = float(max_foreground_fraction)
        self.plain_border_fraction = float(plain_border_fraction)
        self.max_side = None if max_side is None else int(max_side)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._shape: tuple[int, int] | None = None
        self._background: np.ndarray | None = None  # (H, W, 3) float32, adapts over time
        self._initial_background: np.ndarray | None = None  # (H, W, 3) float32, clean plain background or None
        self._palette: np.ndarray | None = None  # (k, 3) float32 plain colours of the first frame's border
        self._guessed: np.ndarray | None = None  # (H, W) bool, initial background guessed behind an object
        self._guessed_box: tuple[int, int, int, int] | None = None  # its bounding box (x, y, w, h)
        self._previous: np.ndarray | None = None  # (H, W, 3) float32 previous blurred frame
        self._previous_mask: np.ndarray | None = None  # (H, W) bool
        self._still_count: np.ndarray | None = None  # (H, W) int32 frames of motionless foreground
        self._since_motion: np.ndarray | None = None  # (H, W) int32 frames since the pixel last changed
        self._tracked_has_moved = False  # the object in the previous mask was seen moving at some point

    @property
    def has_plain_background(self) -> bool:
        """True when the first frame's border was one plain colour (set after the first frame)."""
        return self._initial_background is not None

    def _blur(self, image: np.ndarray) -> np.ndarray:
        frame = image.astype(np.float32)
        if self.blur_size > 0:
            frame = cv2.GaussianBlur(frame, (self.blur_size, self.blur_size), 0)
        return frame

    def _kernel(self) -> np.ndarray:
        size = self.morph_size if self.morph_size is not None else max(3, _odd(min(self._shape) / 100))
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))

    def _initialise(self, frame: np.ndarray) -> None:
        """Background from the first frame; where the border is a few plain colours (backdrop, sky, floor),
        pixels unlike all of them are foreground at once and the background behind them is guessed."""
        h, w = frame.shape[:2]
        self._shape = (h, w)
        self._previous = None
        self._previous_mask = np.zeros((h, w), bool)
        self._still_count = np.zeros((h, w), np.int32)
        self._since_motion = np.full((h, w), np.iinfo(np.int32).max // 2, np.int32)
        self._tracked_has_moved = False
        self._background = frame.copy()
        self._initial_background = None
        self._palette = None
        self._guessed = None
        self._guessed_box = None
        band = max(2, int(round(0.02 * min(h, w))))
        border = np.concatenate(
            [frame[:band].reshape(-1, 3), frame[-band:].reshape(-1, 3),
             frame[:, :band].reshape(-1, 3), frame[:, -band:].reshape(-1, 3)]
        )
        palette = self._border_palette(border)
        explained = np.min(np.linalg.norm(border[:, None] - palette[None], axis=2), axis=1) < self.threshold
        if np.mean(explained) < self.plain_border_fraction:
            return  # cluttered: objects already in view are background until they move
        unlike = (self._palette_distance(frame, palette) > self.threshold).astype(np.uint8)
        unlike = cv2.dilate(unlike, self._kernel(), iterations=2)
        if unlike.any():
            self._background = _inpaint_background(frame, unlike)
        self._initial_background = self._background.copy()
        self._palette = palette
        self._guessed = unlike > 0
        self._guessed_box = cv2.boundingRect(unlike) if unlike.any() else None

    def _border_palette(self, border: np.ndarray) -> np.ndarray:
        """Up to `BORDER_COLOURS` colours (k, 3) explaining the border pixels (M, 3): farthest-point seeds, then
        a few k-means steps. Deterministic, unlike cv2.kmeans (global RNG)."""
        centres = [np.median(border, axis=0)]
        for _ in range(BORDER_COLOURS - 1):
            dist = np.min(np.linalg.norm(border[:, None] - np.array(centres)[None], axis=2), axis=1)
            if np.percentile(dist, 95) < 0.5 * self.threshold:
                break  # the colours found already explain the border
            centres.append(border[int(np.argmax(dist))])
        centres = np.array(centres, np.float32)
        for _ in range(5):
            nearest = np.argmin(np.linalg.norm(border[:, None] - centres[None], axis=2), axis=1)
            centres = np.array(
                [border[nearest == i].mean(axis=0) if np.any(nearest == i) else c for i, c in enumerate(centres)],
                np.float32,
            )
        return centres

    @staticmethod
    def _palette_distance(frame: np.ndarray, palette: np.ndarray) -> np.ndarray:
        """(H, W) distance of each pixel of a float32 (H, W, 3) frame to the nearest of k <= 4 palette colours:
        |p - c|^2 = |p|^2 - 2 p.c + |c|^2, with the dot products from one cv2.transform."""
        frame = np.ascontiguousarray(frame)
        dots = cv2.transform(frame, (-2.0 * palette).astype(np.float32)).reshape(frame.shape[:2] + (-1,))
        norms = cv2.transform(cv2.multiply(frame, frame), _SUM_CHANNELS)  # (H, W)
        squared = (dots + (palette ** 2).sum(axis=1)).min(axis=2) + norms
        return np.sqrt(np.maximum(squared, 0.0))

    def _background_distance(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) colour distance of a float32 frame to the background: a pixel must differ from the adapting
        background AND from the initial one (where that was guessed behind an object: from every border colour)."""
        distance = _colour_distance(frame, self._background)
        if self._initial_background is not None:
            initial = _colour_distance(frame, self._initial_background)
            if self._guessed_box is not None:
                x, y, w, h = self._guessed_box  # only where the background was guessed
                crop = initial[y:y + h, x:x + w]
                palette = self._palette_distance(frame[y:y + h, x:x + w], self._palette)
                np.copyto(crop, np.minimum(crop, palette), where=self._guessed[y:y + h, x:x + w])
            distance = np.minimum(distance, initial)
        return distance

    def _noise_threshold(self, distance: np.ndarray) -> float:
        sigma = float(np.percentile(distance, 25)) / _CHI3_P25
        return max(self.threshold, self.noise_factor * sigma)

    # ------------------------------------------------------------------ main
    def working_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) at which a frame of this size is segmented."""
        if self.max_side is None:
            return width, height
        return _bounded_size(width, height, self.max_side)

    def segment(self, image_rgb: np.ndarray) -> np.ndarray:
        image = validate_rgb_image(image_rgb, "image_rgb")
        height, width = image.shape[:2]
        size = self.working_size(width, height)
        if size == (width, height):
            return self._segment_working(image)
        mask = self._segment_working(_downsample(image, size))
        # Linear upsampling of the 0/255 mask, cut at half: edges land between the working pixels' centres.
        up = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return cv2.threshold(up, 127, 255, cv2.THRESH_BINARY)[1]

    def _segment_working(self, image: np.ndarray) -> np.ndarray:
        """segment() at the working resolution: image (h, w, 3) uint8 -> (h, w) uint8 mask."""
        frame = self._blur(image)
        if self._shape != image.shape[:2]:
            self._initialise(frame)  # first frame, or a new stream with another resolution
        h, w = self._shape
        distance = self._background_distance(frame)  # (H, W)
        threshold = self._noise_threshold(distance)
        foreground = distance > threshold
        if self._previous is None:
            motion = np.zeros((h, w), bool)
        else:
            motion = _colour_distance(frame, self._previous) > threshold

        if foreground.mean() > self.max_foreground_fraction:
            self._restart_from(frame)
            return np.zeros((h, w), np.uint8)

        kernel = self._kernel()
        cleaned = cv2.morphologyEx(foreground.astype(np.uint8) * 255, cv2.MORPH_OPEN, kernel)
        cleaned = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, kernel)
        chosen, moved = self._choose_component(cleaned, motion)
        self._tracked_has_moved = bool(chosen.any()) and (moved or self._tracked_has_moved)
        if chosen.any():
            chosen = self._refine_grabcut(image, chosen) if self.grabcut else self._sharpen_edges(image, chosen)
        mask = _fill_holes(chosen) if chosen.any() else chosen

        # An object that has moved stays foreground when it comes to rest; unmoved blobs may be absorbed.
        self._update_background(frame, foreground, motion, mask > 0, self._tracked_has_moved)
        self._previous = frame
        self._previous_mask = mask > 0
        return mask

    def _restart_from(self, frame: np.ndarray) -> None:
        self._background = frame.copy()
        self._initial_background = None
        self._palette = None
        self._guessed = None
        self._guessed_box = None
        self._previous = frame
        self._previous_mask = np.zeros(self._shape, bool)
        self._still_count[:] = 0
        self._since_motion[:] = np.iinfo(np.int32).max // 2
        self._tracked_has_moved = False

    def _choose_component(self, cleaned: np.ndarray, motion: np.ndarray) -> tuple[np.ndarray, bool]:
        """One component: the largest moving one, else the one continuing the previous mask, else the largest.

        Returns the (H, W) uint8 mask of that component and whether it was chosen because it moves."""
        count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
        min_area = max(4, int(self.min_area_fraction * cleaned.size))
        areas = stats[1:, cv2.CC_STAT_AREA]
        candidates = [i + 1 for i in np.flatnonzero(areas >= min_area)]
        if not candidates:
            return np.zeros_like(cleaned), False
        flat = labels.ravel()
        moving = np.bincount(flat[motion.ravel()], minlength=count)
        overlap = np.bincount(flat[self._previous_mask.ravel()], minlength=count)
        area = stats[:, cv2.CC_STAT_AREA]
        # A component "moves" when a few percent of it changed since the last frame (noise is below threshold).
        moving_ids = [i for i in candidates if moving[i] >= max(2, 0.02 * area[i])]
        if moving_ids:
            best = max(moving_ids, key=lambda i: area[i])
        elif any(overlap[i] > 0 for i in candidates):
            best = max(candidates, key=lambda i: overlap[i])
        else:
            best = max(candidates, key=lambda i: area[i])
        return np.where(labels == best, 255, 0).astype(np.uint8), bool(moving_ids)

    def _sharpen_edges(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Blurring spreads the object ~1 px into the background: trim the mask where the unblurred pixel
        matches the background. Keeps the blurred mask when the trim would remove most of it (low contrast)."""
        raw = image.astype(np.float32)
        distance = self._background_distance(raw)  # (H, W)
        trimmed = ((mask > 0) & (distance > self._noise_threshold(distance))).astype(np.uint8) * 255
        trimmed = _fill_holes(cv2.morphologyEx(trimmed, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)))
        trimmed = self._drop_mixed_edge_pixels(raw, trimmed)
        trimmed = cv2.morphologyEx(trimmed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(trimmed, connectivity=8)
        if count <= 1:
            return mask
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        if stats[best, cv2.CC_STAT_AREA] < 0.6 * np.count_nonzero(mask):
            return mask
        return np.where(labels == best, 255, 0).astype(np.uint8)

    def _drop_mixed_edge_pixels(self, raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Soft (anti-aliased, blurred) edges: a rim pixel is a mix p = a f + (1 - a) b of the nearest inner
        object colour f and the background b; keep it when the estimated coverage a >= 0.5, as a rendered
        alpha > 0.5 silhouette would. Pixels without colour contrast between f and b, or that are no such mix,
        are kept."""
        interior = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=2) > 0
        if interior.sum() < 4:
            return mask
        rim = (mask > 0) & ~interior
        # For every pixel, the label of its nearest interior pixel; DIST_LABEL_PIXEL numbers zero pixels in
        # raster order, which is the order np.nonzero returns them.
        _, labels = cv2.distanceTransformWithLabels(
            (~interior).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        inner_y, inner_x = np.nonzero(interior)
        ry, rx = np.nonzero(rim)
        nearest = labels[ry, rx] - 1
        fg = raw[inner_y[nearest], inner_x[nearest]]  # (R, 3)
        pixel = raw[ry, rx]
        bg = self._background[ry, rx]
        if self._guessed is not None:
            # Where the background was guessed behind the first-frame object, use the closest border colour.
            guessed = self._guessed[ry, rx]
            if guessed.any():
                palette_d = np.linalg.norm(pixel[guessed, None] - self._palette[None], axis=2)
                bg[guessed] = self._palette[np.argmin(palette_d, axis=1)]
        contrast = fg - bg
        contrast2 = np.einsum("ij,ij->i", contrast, contrast)
        coverage = np.einsum("ij,ij->i", pixel - bg, contrast) / np.maximum(contrast2, 1e-6)
        # Only pixels that really are such a mix (near the line from b to f): textured objects have rim
        # pixels of another colour than their nearest inner pixel, and those belong to the object.
        residual = np.linalg.norm(pixel - bg - coverage[:, None] * contrast, axis=1)
        drop = (coverage < 0.5) & (contrast2 > self.threshold ** 2) & (residual < 0.5 * self.threshold)
        out = mask.copy()
        out[ry[drop], rx[drop]] = 0
        return out

    def _refine_grabcut(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """GrabCut inside a margin around the mask: sure foreground = eroded mask, sure background = far away."""
        kernel = self._kernel()
        near = cv2.dilate(mask, kernel, iterations=3)
        x, y, w, h = cv2.boundingRect(near)
        pad = max(4, (w + h) // 8)
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(mask.shape[1], x + w + pad), min(mask.shape[0], y + h + pad)
        labels = np.full((y1 - y0, x1 - x0), cv2.GC_BGD, np.uint8)
        labels[near[y0:y1, x0:x1] > 0] = cv2.GC_PR_BGD
        labels[mask[y0:y1, x0:x1] > 0] = cv2.GC_PR_FGD
        labels[cv2.erode(mask, kernel, iterations=2)[y0:y1, x0:x1] > 0] = cv2.GC_FGD
        if not (labels == cv2.GC_BGD).any() and not (labels == cv2.GC_PR_BGD).any():
            return mask  # nothing to contrast against
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        try:
            cv2.grabCut(crop, labels, None, bgd, fgd, self.grabcut_iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return mask  # degenerate colour models (e.g. a flat crop): keep the unrefined mask
        refined = np.zeros_like(mask)
        refined[y0:y1, x0:x1] = np.where((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD), 255, 0)
        count, lab, stats, _ = cv2.connectedComponentsWithStats(refined, connectivity=8)
        if count <= 1:
            return mask
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        return np.where(lab == best, 255, 0).astype(np.uint8)

    def _update_background(
        self, frame: np.ndarray, foreground: np.ndarray, motion: np.ndarray, chosen: np.ndarray, keep_chosen: bool
    ) -> None:
        near_foreground = cv2.dilate(foreground.astype(np.uint8), self._kernel(), iterations=2) > 0
        quiet = ~near_foreground
        if self.learning_rate > 0:
            cv2.accumulateWeighted(frame, self._background, self.learning_rate, mask=quiet.astype(np.uint8))
        self._since_motion = np.where(motion, 0, np.minimum(self._since_motion + 1, 1 << 24)).astype(np.int32)
        still = foreground & ~motion
        self._still_count = np.where(still, self._still_count + 1, 0).astype(np.int32)
        absorbed = np.zeros_like(foreground)
        if self.absorb_frames > 0:
            long_still = self._still_count >= self.absorb_frames
            absorbed |= long_still & ~chosen if keep_chosen else long_still
        if self.ghost_frames > 0:
            recently_moved = self._since_motion <= max(self.absorb_frames, self.ghost_frames + 1)
            absorbed |= (self._still_count >= self.ghost_frames) & recently_moved & ~chosen
        if absorbed.any():
            np.copyto(self._background, frame, where=absorbed[..., None])
            self._still_count[absorbed] = 0
