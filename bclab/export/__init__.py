"""1-bit export: binary kernels packed to 1 bit per weight, and the inference model rebuilt from them.

`bits` packs and unpacks the signs of a kernel `+-H`, `fileformat` reads and writes the `.bclab`
file (both NumPy only: `import bclab.export.fileformat` loads no framework); `keras_model` walks
a Keras model to export it (`export_packed`) and rebuilds it (`load_packed`).
"""
