"""BinaryConnect in Keras: binarization, the clip, binary layers and the optimizer wrapper.

`keras.ops` only (no TensorFlow, no widgets), so these run on any Keras backend; the golden tests
run on TensorFlow and on JAX (`tests/test_jax_backend.py`). `patching` holds
the one way a live object is patched: for the length of a `with` block.

Keras is imported here, before any module of this package runs: its import registers bclab's
classes (see `bclab/__init__.py`), which imports `layers` and `optimizers`, and those must not
find one of their siblings half-imported.
"""

import keras  # noqa: F401  (imported first on purpose: see above)
