"""One bit per binary weight: the signs of a test-time kernel `Wb = +-H`, packed 8 to a byte. NumPy only.

Layout: the kernel is read in C order (row-major, the order of `Wb.ravel()`), `+H` is bit 1 and
`-H` bit 0, and `np.packbits` fills each byte from its most significant bit (`bitorder="big"`);
the last byte's unused low bits are 0. A kernel of `n` weights takes `ceil(n / 8)` bytes, against
`4 n` as float32: 32 times less, the paper's figure (Courbariaux et al. 2015, section 1).

`H` is not in the bits: the caller keeps it, and `unpack_signs` gives `+-dtype(H)`. Only the signs
matter to a layer that binarizes that kernel again: its test-time kernel is `+-H` by its own cast
(`bclab.core.binarize`), the same `Wb` as the original's.
"""

from __future__ import annotations

import math

import numpy as np

from bclab.validation import invalid_data, invalid_value

KERNEL_DTYPES = ("float16", "float32", "float64")  # the float dtypes NumPy holds (bfloat16 it does not)


def packed_length(count: int) -> int:
    """The bytes that hold `count` bits: `ceil(count / 8)`."""
    return (count + 7) // 8


def pack_signs(Wb: np.ndarray) -> np.ndarray:
    """The bits of a binary kernel: 1 where `Wb` is `+m`, 0 where it is `-m` (1-D `uint8`).

    `m` is whatever magnitude the layer's cast of `H` gave (a float64 layer's `Wb` holds
    `float32(H)` widened, as Keras casts a Python float through float32); only the signs are kept.

    Raises:
        ValueError: `Wb` is not an array of a dtype in `KERNEL_DTYPES`, or does not hold one positive
            magnitude with either sign (the first value that differs is named).
    """
    if not isinstance(Wb, np.ndarray) or Wb.dtype.name not in KERNEL_DTYPES:
        raise invalid_value("Wb", Wb if not isinstance(Wb, np.ndarray) else Wb.dtype, f"an array of {KERNEL_DTYPES}")
    flat = Wb.ravel()
    magnitude = np.abs(flat[0]) if flat.size else Wb.dtype.type(1)
    plus = flat == magnitude
    valid = (plus | (flat == -magnitude)) & (magnitude > 0)
    if not np.all(valid):
        index = np.unravel_index(np.argmin(valid), Wb.shape)
        expected = f"one positive magnitude with either sign (+-{magnitude!r}, as Wb[0] holds)"
        raise invalid_data("Wb", expected, f"Wb[{', '.join(map(str, index))}]={Wb[index]!r}")
    return np.packbits(plus)


def unpack_signs(bits: np.ndarray, shape: tuple[int, ...], H: float, dtype: str) -> np.ndarray:
    """The kernel `pack_signs` packed: `+H` where a bit is 1, `-H` where 0, of `shape` and `dtype`.

    Raises:
        ValueError: `bits` is not a 1-D `uint8` array of `packed_length(prod(shape))` bytes, its
            padding bits are not 0, or `dtype` is not in `KERNEL_DTYPES`.
    """
    check_bits(bits, math.prod(shape))
    if dtype not in KERNEL_DTYPES:
        raise invalid_value("dtype", dtype, f"one of {KERNEL_DTYPES}")
    signs = np.unpackbits(bits, count=math.prod(shape)).astype(bool).reshape(shape)
    magnitude = np.dtype(dtype).type(H)
    return np.where(signs, magnitude, -magnitude).astype(dtype, copy=False)


def check_bits(bits: np.ndarray, count: int) -> None:
    """`bits` holds exactly `count` bits as `pack_signs` writes them (padding bits 0), else ValueError."""
    length = packed_length(count)
    if not isinstance(bits, np.ndarray) or bits.dtype != np.uint8 or bits.shape != (length,):
        received = f"dtype {bits.dtype}, shape {bits.shape}" if isinstance(bits, np.ndarray) else repr(bits)
        raise invalid_data("bits", f"a 1-D uint8 array of {length} bytes ({count} bits)", received)
    padding = 8 * length - count
    if padding and bits[-1] & ((1 << padding) - 1):
        raise invalid_data(
            "bits", f"the last byte's {padding} padding bits set to 0", f"bits[-1]={int(bits[-1]):#010b}"
        )
