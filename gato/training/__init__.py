"""Training: loss, schedule, checkpoints and the training loop."""
