"""Bit-exact numpy reference model of the MX quantized inference stack (NUMERICS.md)."""
from mxdv.refmodel.formats import (BLOCK_SIZES, FORMATS, bf16_bits_to_float32, e8m0_to_exp,
                                   float32_to_bf16_bits, get_format)
from mxdv.refmodel.mx import MXTensor, dequantize_mx, element_values, quantize_mx

__all__ = ["MXTensor", "quantize_mx", "dequantize_mx", "element_values", "FORMATS", "BLOCK_SIZES",
           "get_format", "bf16_bits_to_float32", "float32_to_bf16_bits", "e8m0_to_exp"]
