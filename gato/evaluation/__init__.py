"""Evaluation: rollouts of a trained model, expert-normalised scores, the report."""
