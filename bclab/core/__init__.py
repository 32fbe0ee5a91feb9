"""BinaryConnect in Keras: binarization, the clip, binary layers and the optimizer wrapper.

`keras.ops` only (no TensorFlow, no widgets), so these run on any Keras backend.
"""
