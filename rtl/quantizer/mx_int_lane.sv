`timescale 1ns/1ps
// One MXINT element from one BF16 value and its block's max exponent field (combinational).
//
// BF16 value: sig * 2^(ee - 134) with sig = {e != 0, m[6:0]} (8 bits) and ee = max(e, 1),
// which covers subnormals exactly. With the block's max exponent field E (see mx_exp_max),
// shared_exp = E - 127 for E >= 1 (-127 for E = 0), and the element is
//   q = x * 2^(w-2) / 2^shared_exp = sig / 2^s,   s = E - ee + 9 - w   (E >= 1)
// For E = 0 (subnormal-only block, shared_exp = -127) the same formula holds with ee = 1:
// s = 1 - 1 = 0 for w = 8 and 4 for w = 4. So s >= 0 always, and the element is sig shifted
// right by s with round-half-to-even on the shifted-out bits (guard bit + sticky OR), then
// saturated symmetrically to +-(2^(w-1) - 1), then given x's sign.
// Since sig < 2^8, any s >= 9 gives |q| < 0.5 -> 0; s is clamped to 10 so no bit is dropped
// from the 18-bit shift window below. Precondition: E >= the lane's exponent field.
// A NaN/Inf block (E = 255) gives element 0 for every lane.
module mx_int_lane (
    input  logic [15:0] bf16,     // raw BF16 code
    input  logic [7:0]  max_exp,  // block's largest exponent field (mx_exp_max)
    input  logic        w4,       // 1: MXINT4 (w = 4), 0: MXINT8 (w = 8)
    output logic [7:0]  elem      // two's complement code; MXINT4 sign-extended to 8 bits
);
  localparam int SHIFT_CAP = 10;  // any shift >= 9 already rounds sig < 2^8 to 0

  logic       sign;
  logic [7:0] exp_field;
  logic [7:0] sig;                 // significand with hidden bit (0 for subnormals)
  logic [7:0] eff_exp;             // max(exp_field, 1)
  logic [9:0] shift_full;          // E - ee + (w4 ? 5 : 1), >= 0 by the precondition
  logic [3:0] shift;
  logic [17:0] window;             // {sig, 10'b0} >> shift: [17:10] integer, [9] guard, [8:0] sticky
  logic [7:0] trunc;
  logic       round_up;
  logic [8:0] mag_rounded;
  logic [6:0] limit;
  logic [6:0] mag;

  assign sign      = bf16[15];
  assign exp_field = bf16[14:7];
  assign sig       = {exp_field != 8'd0, bf16[6:0]};
  assign eff_exp   = (exp_field == 8'd0) ? 8'd1 : exp_field;

  assign shift_full = {2'b00, max_exp} + (w4 ? 10'd5 : 10'd1) - {2'b00, eff_exp};
  assign shift      = (shift_full > 10'(SHIFT_CAP)) ? 4'(SHIFT_CAP) : shift_full[3:0];

  assign window   = {sig, 10'b0} >> shift;
  assign trunc    = window[17:10];
  assign round_up = window[9] & ((|window[8:0]) | trunc[0]);  // round half to even

  assign mag_rounded = {1'b0, trunc} + {8'b0, round_up};
  assign limit       = w4 ? 7'd7 : 7'd127;
  assign mag         = (mag_rounded > {2'b00, limit}) ? limit : mag_rounded[6:0];

  always_comb begin
    if (max_exp == 8'hFF)  elem = 8'd0;                // NaN/Inf block
    else if (sign)         elem = -{1'b0, mag};
    else                   elem = {1'b0, mag};
  end
endmodule
