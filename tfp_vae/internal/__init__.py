"""What every layer uses: errors, value checks, the registry of extension
points, whole-file writes and storage faults, an export directory's
layout, progress lines, child-process fan-out, fault points and test
helpers; and every use of a dependency's internals (`keras_internals`,
`tensorflow_internals`: one module per dependency, each use there because
the dependency has no public API for it; tests/internal/test_<module>.py
exercises each against the installed version; nothing else in the package
imports `keras.src`, `tensorflow.python` or a private attribute).

The bottom layer: imports nothing else of tfp_vae.
"""
