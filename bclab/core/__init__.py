"""BinaryConnect in Keras: binarization, the clip, binary layers and the optimizer wrapper.

`keras.ops` only (no TensorFlow, no widgets), so these run on any Keras backend. `patching` holds
the one way a live object is patched: for the length of a `with` block.
"""
