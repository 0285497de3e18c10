"""Training: the CycleGAN step (G phase then D phase), the loop, checkpoints, distributed set-up, logging."""
