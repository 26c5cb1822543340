"""Reconstruction error of a model over a set of images: NMSE = Σ‖x−x̂‖² / Σ‖x‖², linear and in dB."""

from __future__ import annotations

import math

import torch
from torch import Tensor


@torch.no_grad()
def nmse(model, images: Tensor, batch_size: int = 512) -> tuple[float, float]:
    """(NMSE linear, NMSE dB) over the whole set (global sums, not a mean of per-image ratios)."""
    device = next(model.parameters()).device
    err = energy = 0.0
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device).float()
        xhat = torch.sigmoid(model.decode(model.encode(x, sample=False).mean).float())
        err += float(((x - xhat) ** 2).sum(dtype=torch.float64))
        energy += float((x**2).sum(dtype=torch.float64))
    lin = err / max(energy, 1e-12)
    return lin, 10.0 * math.log10(max(lin, 1e-12))


SSIM_SIGMA = 1.5  # Wang et al. (2004): an 11×11 Gaussian window of σ 1.5
SSIM_K = (0.01, 0.03)


def _gauss_window(sigma: float, device, dtype) -> Tensor:
    radius = int(3.5 * sigma + 0.5)  # skimage's truncate=3.5: 11 taps at σ = 1.5
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim_images(x: Tensor, y: Tensor, data_range: float = 1.0, sigma: float = SSIM_SIGMA) -> Tensor:
    """Mean SSIM of each image pair (N,) between x and y (N, C, H, W) in [0, data_range]: Gaussian-weighted local
    means, variances and covariance (population form), C1 = (0.01·L)², C2 = (0.03·L)², averaged over the pixels whose
    window lies inside the image and over channels (skimage's `structural_similarity(gaussian_weights=True,
    use_sample_covariance=False)` convention)."""
    x, y = x.double(), y.double()
    c = x.shape[1]
    w = _gauss_window(sigma, x.device, x.dtype)
    k = len(w)
    kx = w.view(1, 1, 1, k).expand(c, 1, 1, k)
    ky = w.view(1, 1, k, 1).expand(c, 1, k, 1)

    def blur(t: Tensor) -> Tensor:  # 'valid' separable Gaussian filter: the windows inside the image
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(t, kx, groups=c), ky, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (SSIM_K[0] * data_range) ** 2, (SSIM_K[1] * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def ssim(model, images: Tensor, batch_size: int = 512) -> float:
    """Mean SSIM between the images and their reconstructions (posterior means decoded)."""
    device = next(model.parameters()).device
    vals = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device).float()
        xhat = torch.sigmoid(model.decode(model.encode(x, sample=False).mean).float())
        vals.append(ssim_images(x, xhat).cpu())
    return float(torch.cat(vals).mean())
