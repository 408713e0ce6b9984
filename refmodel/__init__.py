"""Bit-exact numpy reference model of the MX quantized inference stack (NUMERICS.md)."""
from mxdv.refmodel.formats import (BLOCK_SIZES, E8M0_BIAS, E8M0_NAN, FORMATS, ElementFormat,
                                   bf16_bits_to_float32, bits_to_float32, check_block_size,
                                   e8m0_to_exp, e8m0_to_float, float32_to_bf16_bits,
                                   float32_to_bits, fp_element_values, get_format)
from mxdv.refmodel.mx import MXTensor, dequantize_mx, element_values, quantize_mx

__all__ = ["MXTensor", "quantize_mx", "dequantize_mx", "element_values",
           "FORMATS", "BLOCK_SIZES", "ElementFormat", "E8M0_BIAS", "E8M0_NAN", "get_format",
           "check_block_size", "bf16_bits_to_float32", "float32_to_bf16_bits", "float32_to_bits",
           "bits_to_float32", "e8m0_to_exp", "e8m0_to_float", "fp_element_values"]
