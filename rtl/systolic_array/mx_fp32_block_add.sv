`timescale 1ns/1ps
// FP32 block accumulation step of the block-scaled MX GEMM (NUMERICS.md "Block-scaled GEMM",
// rule G3):  sum = RNE_fp32(acc + s * 2^e), the exact sum rounded once, with gradual underflow,
// overflow to +-inf, +-inf + finite = +-inf, and an exact zero sum encoded as +0.
// Combinational. `acc` must not be NaN (NaN is tracked outside, rule G4).
//
// Datapath: both operands are normalized to 24-bit significands (MSB at bit 23) with a top
// exponent; the smaller one is shifted right by the alignment shift d (clamped to 27) into a
// 27-bit frame (significand, guard, round, sticky); add or subtract; normalize left by the
// leading-zero count; denormalize right for subnormal results (more sticky); round to nearest
// even; pack (a significand carry increments the exponent field); exponent field >= 255 -> inf.
module mx_fp32_block_add #(
    parameter int SW = 21  // width of the signed block sum s (<= 24)
) (
    input  logic [31:0]         acc,
    input  logic signed [SW-1:0] s,
    input  logic signed [11:0]  e,    // exponent of the LSB of s
    output logic [31:0]         sum
);
  // ---------------------------------------------------------------- leading-zero counts
  function automatic logic [4:0] lzc24(input logic [23:0] v);
    logic found;
    lzc24 = 5'd0;
    found = 1'b0;
    for (int k = 23; k >= 0; k--) begin
      if (!found) begin
        if (v[k]) found = 1'b1;
        else lzc24 = lzc24 + 5'd1;
      end
    end
  endfunction

  function automatic logic [4:0] lzc28(input logic [27:0] v);
    logic found;
    lzc28 = 5'd0;
    found = 1'b0;
    for (int k = 27; k >= 0; k--) begin
      if (!found) begin
        if (v[k]) found = 1'b1;
        else lzc28 = lzc28 + 5'd1;
      end
    end
  endfunction

  // ---------------------------------------------------------------- decode the accumulator
  logic        a_sign, a_inf, a_zero, a_sub;
  logic [23:0] a_mant, a_norm;
  logic [4:0]  a_lz;
  logic signed [11:0] a_top;

  // ---------------------------------------------------------------- decode the block value
  logic        b_sign, b_zero;
  logic [SW-1:0] b_mag;
  logic [23:0] b_mant, b_norm;
  logic [4:0]  b_lz;
  logic signed [11:0] b_top;

  // ---------------------------------------------------------------- align, add, round
  logic        swap, x_sign, y_sign;
  logic [23:0] x_mant, y_mant;
  logic signed [11:0] x_top, y_top, d;
  logic [4:0]  d_cl;
  logic [50:0] y_shift;
  logic [26:0] x27, y27;
  logic [27:0] z, z_norm, z_den;
  logic [55:0] z_wide;
  logic [4:0]  z_lz;
  logic signed [11:0] r_top, sub_sh;
  logic [4:0]  sh_cl;
  logic        subnormal, guard, sticky, round_up, overflow;
  logic [23:0] m;
  logic [24:0] m_rounded;
  logic [11:0] e_base;
  logic [34:0] packed_bits;

  always @* begin
    a_sign = acc[31];
    a_sub  = (acc[30:23] == 8'd0);
    a_inf  = (acc[30:23] == 8'hFF);
    a_mant = {~a_sub, acc[22:0]};
    a_zero = (a_mant == 24'd0);
    a_lz   = lzc24(a_mant);
    a_norm = a_mant << a_lz;
    // top exponent = LSB exponent + 23 - lz; LSB exponent = E - 150 (normal) or -149
    a_top  = (a_sub ? -12'sd149 : $signed({4'd0, acc[30:23]}) - 12'sd150) + 12'sd23
             - $signed({7'd0, a_lz});

    b_sign = s[SW-1];
    b_mag  = b_sign ? -s : s;  // |s|; -(-2^(SW-1)) = 2^(SW-1) fits unsigned SW bits
    b_mant = {{(24 - SW){1'b0}}, b_mag};
    b_zero = (b_mant == 24'd0);
    b_lz   = lzc24(b_mant);
    b_norm = b_mant << b_lz;
    b_top  = e + 12'sd23 - $signed({7'd0, b_lz});

    // X is the operand of larger magnitude (a zero operand is always Y)
    if (a_zero) swap = 1'b1;
    else if (b_zero) swap = 1'b0;
    else swap = (b_top > a_top) || ((b_top == a_top) && (b_norm > a_norm));
    x_sign = swap ? b_sign : a_sign;
    y_sign = swap ? a_sign : b_sign;
    x_mant = swap ? b_norm : a_norm;
    y_mant = swap ? a_norm : b_norm;
    x_top  = swap ? b_top : a_top;
    y_top  = swap ? a_top : b_top;
    d      = x_top - y_top;
    d_cl   = (d > 12'sd27) ? 5'd27 : d[4:0];

    x27     = {x_mant, 3'b000};
    y_shift = {y_mant, 27'd0} >> d_cl;
    y27     = {y_shift[50:25], |y_shift[24:0]};
    z       = (x_sign ^ y_sign) ? ({1'b0, x27} - {1'b0, y27}) : ({1'b0, x27} + {1'b0, y27});

    z_lz   = lzc28(z);
    z_norm = z << z_lz;
    r_top  = x_top + 12'sd1 - $signed({7'd0, z_lz});

    // subnormal result: shift right so that bit 27 weighs 2^-126
    subnormal = (r_top < -12'sd126);
    sub_sh    = -12'sd126 - r_top;
    sh_cl     = !subnormal ? 5'd0 : ((sub_sh > 12'sd28) ? 5'd28 : sub_sh[4:0]);
    z_wide    = {z_norm, 28'd0} >> sh_cl;
    z_den     = z_wide[55:28];

    m         = z_den[27:4];
    guard     = z_den[3];
    sticky    = (|z_den[2:0]) | (|z_wide[27:0]);
    round_up  = guard & (sticky | m[0]);
    m_rounded = {1'b0, m} + {24'd0, round_up};
    e_base    = subnormal ? 12'd0 : (r_top[11:0] + 12'd126);
    packed_bits = {e_base, 23'd0} + {10'd0, m_rounded};
    overflow  = (packed_bits[34:23] >= 12'd255);

    if (a_inf) sum = acc;
    else if (z == 28'd0) sum = 32'h0000_0000;
    else if (overflow) sum = {x_sign, 8'hFF, 23'd0};
    else sum = {x_sign, packed_bits[30:0]};
  end

endmodule
