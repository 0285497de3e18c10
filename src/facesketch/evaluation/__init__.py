"""Sketch-quality evaluation under the FS2K protocol: LPIPS, SSIM, MS-SSIM, FSIM and SCOOT on uint8 grey images."""

# Metric keys, in the paper's column order; `ssim_wang2003` is reported beside them (see docs/metrics.md).
METRICS = ("lpips", "ssim", "ms_ssim", "fsim", "scoot")
EXTRA_METRICS = ("ssim_wang2003",)
# Direction of "better" for each key, for tables and logs.
HIGHER_IS_BETTER = {"lpips": False, "ssim": True, "ms_ssim": True, "fsim": True, "scoot": True, "ssim_wang2003": True}
