"""The top floor: `gato <command>` functions, each also the Python API. They drive the library
(gato.rollout, gato.training, gato.data, ...), which never imports from here."""
