"""Where the package reaches past a dependency's public API, one module per
dependency: `internals.keras`, `internals.tensorflow` (and, for the
deployment checks, `deploy/kubernetes_internals.py`).

Each use is here because the dependency has no public API for what is
needed; each module's docstring says what and why, and
tests/test_internals.py exercises every function against the installed
version, so an upgrade that moves or changes one fails there, by name,
instead of somewhere in training or serving.  Nothing else in the package
imports `keras.src`, `tensorflow.python` or a private attribute.
"""
