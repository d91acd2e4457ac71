"""Images -> 16x16 patches in raster order (ViT), scaled to [-1, 1] then divided by sqrt(16).

Rule for sizes that are not multiples of 16: the image is padded at the bottom and right with
black (0) to the next multiple of 16; pixels are never resampled. Adapters that want fewer
patches resize frames before tokenizing. Greyscale images are replicated to 3 channels so one
patch network serves every task. Float images must already be in [0, 1].
"""

from __future__ import annotations

import numpy as np

PATCH = 16
POSITION_BINS = 128  # patch row/column position vocabulary (paper)
CHANNELS = 3


def normalise(image: np.ndarray, name: str = "image") -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3), uint8 or float in [0, 1] -> float32 (H, W, 3) in [0, 1]."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, CHANNELS):
        raise ValueError(f"{name}: expected an image of shape (H, W), (H, W, 1) or (H, W, 3), "
                         f"got {img.shape}")
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all():
            raise ValueError(f"{name}: image contains NaN or inf")
        if img.size and (img.min() < 0.0 or img.max() > 1.0):
            raise ValueError(f"{name}: float image values must be in [0, 1], "
                             f"got [{img.min():.3g}, {img.max():.3g}]")
        out = img.astype(np.float32)
    else:
        raise ValueError(f"{name}: image dtype must be uint8 or float, got {img.dtype}")
    if out.shape[2] == 1:
        out = np.repeat(out, CHANNELS, axis=2)
    return out


def grid_shape(height: int, width: int) -> tuple[int, int]:
    """Number of patch rows and columns after padding to a multiple of 16."""
    return -(-height // PATCH), -(-width // PATCH)


def patchify(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Image -> (rows * cols, 16, 16, 3) float32 patches in raster order, values in [-1/4, 1/4]."""
    return _patches(normalise(image, name)[None])[0]


def patchify_batch(images: np.ndarray) -> np.ndarray:
    """N uint8 images (N, H, W), (N, H, W, 1) or (N, H, W, 3) -> (N, rows * cols, 16, 16, 3),
    row n equal to patchify(images[n]), in one call."""
    img = np.asarray(images)
    if img.ndim == 3:
        img = img[..., None]
    if img.dtype != np.uint8 or img.ndim != 4 or img.shape[3] not in (1, CHANNELS):
        raise ValueError(f"expected uint8 images of shape (N, H, W[, 1 or 3]), got {img.dtype} {img.shape}")
    out = img.astype(np.float32) / 255.0
    if out.shape[3] == 1:
        out = np.repeat(out, CHANNELS, axis=3)
    return _patches(out)


def _patches(img: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) float32 in [0, 1] -> (N, rows * cols, 16, 16, 3), zero-padded to whole patches."""
    n, h, w, _ = img.shape
    rows, cols = grid_shape(h, w)
    padded = np.zeros((n, rows * PATCH, cols * PATCH, CHANNELS), dtype=np.float32)
    padded[:, :h, :w] = img
    patches = padded.reshape(n, rows, PATCH, cols, PATCH, CHANNELS).transpose(0, 1, 3, 2, 4, 5)
    return (patches.reshape(n, rows * cols, PATCH, PATCH, CHANNELS) * 2.0 - 1.0) / 4.0


def unpatchify(patches: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Inverse of `patchify` (before cropping the padding): float32 (H, W, 3) in [0, 1]."""
    p = (np.asarray(patches) * 4.0 + 1.0) / 2.0
    p = p.reshape(rows, cols, PATCH, PATCH, CHANNELS).transpose(0, 2, 1, 3, 4)
    return p.reshape(rows * PATCH, cols * PATCH, CHANNELS)


def patch_positions(rows: int, cols: int) -> np.ndarray:
    """(rows * cols, 4) int16: [row_lo, row_hi, col_lo, col_hi) of each patch, its pixel interval
    normalised by the image size and quantised to 128 bins. The model draws a random index in
    [lo, hi) in training and uses the rounded mean at evaluation."""
    r = np.arange(rows)
    c = np.arange(cols)
    r_lo, r_hi = (r * POSITION_BINS) // rows, -((-(r + 1) * POSITION_BINS) // rows)
    c_lo, c_hi = (c * POSITION_BINS) // cols, -((-(c + 1) * POSITION_BINS) // cols)
    out = np.empty((rows, cols, 4), dtype=np.int16)
    out[..., 0], out[..., 1] = r_lo[:, None], r_hi[:, None]
    out[..., 2], out[..., 3] = c_lo[None, :], c_hi[None, :]
    return out.reshape(rows * cols, 4)
