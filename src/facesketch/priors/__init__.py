"""Frozen pretrained networks used as fixed functions: DSINE (normals), HED (edges), LPIPS (perceptual distance)."""
