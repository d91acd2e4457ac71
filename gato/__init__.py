"""gato: an open, faithful, fast implementation of DeepMind's Gato generalist agent."""

__version__ = "0.1.0"
