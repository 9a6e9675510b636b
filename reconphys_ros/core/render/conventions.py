"""gsplat 1.5's rasterization constants, in one place for both backends: the CPU rasterizer (projection.py,
rasterize_torch.py) applies them itself and the gsplat backend passes them to gsplat, so their images agree."""

ALPHA_THRESHOLD = 1.0 / 255.0  # a (pixel, Gaussian) pair below this alpha is skipped
MAX_ALPHA = 0.999  # one Gaussian's alpha is clamped to this
MIN_TRANSMITTANCE = 1e-4  # a pixel stops before the Gaussian that would bring its transmittance to or below this
BLUR_EPS2D = 0.3  # px^2 low-pass dilation of every 2D covariance
NEAR_PLANE = 0.01  # m: Gaussians nearer to the camera are culled
FAR_PLANE = 1e10  # m: and farther ones

__all__ = ["ALPHA_THRESHOLD", "MAX_ALPHA", "MIN_TRANSMITTANCE", "BLUR_EPS2D", "NEAR_PLANE", "FAR_PLANE"]
