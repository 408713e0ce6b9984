`timescale 1ns/1ps
// MX quantizer: one block of BLOCK BF16 values -> E8M0 shared scale + BLOCK MXINT elements.
//
// Numerics: NUMERICS.md chapter 2 (quantization contract), bit for bit with
// mxdv.refmodel.quantize_mx(x, fmt="mxint8" | "mxint4", block_size=BLOCK).
// The element width is chosen per block at run time: in_w4 = 0 -> MXINT8, 1 -> MXINT4.
//
// Pipeline (two register stages, one block per cycle in steady state, latency 2 cycles):
//   stage 1: registers the accepted block, its width select and its max exponent field
//            (mx_exp_max); the max exponent field is already the E8M0 scale code.
//   stage 2: registers the scale and the BLOCK elements (one mx_int_lane per lane).
// Handshake: a stage takes a new block when it is empty or its block leaves in the same cycle,
// so in_ready = !s1_valid | !s2_valid | out_ready (combinational from out_ready). Holding
// out_ready low stalls the whole pipeline without losing or duplicating a block; the outputs
// stay stable while out_valid && !out_ready. rst (synchronous, active high) empties both stages.
module mx_quantizer #(
    parameter int BLOCK = 32
) (
    input  logic                clk,
    input  logic                rst,
    // input block
    input  logic                in_valid,
    output logic                in_ready,
    input  logic [BLOCK*16-1:0] in_data,   // lane i = bits [16*i +: 16], raw BF16 codes
    input  logic                in_w4,     // 0: MXINT8, 1: MXINT4
    // output block
    output logic                out_valid,
    input  logic                out_ready,
    output logic [7:0]          out_scale, // E8M0 code (0xFF: NaN/Inf block)
    output logic [BLOCK*8-1:0]  out_elems, // lane i = bits [8*i +: 8], two's complement
    output logic                out_w4     // echo of the block's in_w4
);
  // ---- stage 1: input block + its max exponent field ----
  logic                s1_valid, s1_ready, s1_w4;
  logic [BLOCK*16-1:0] s1_data;
  logic [7:0]          s1_max_exp, in_max_exp;
  logic [BLOCK*8-1:0]  in_exps;

  // ---- stage 2: quantized block (drives the outputs) ----
  logic                s2_valid, s2_ready, s2_w4;
  logic [7:0]          s2_scale;
  logic [BLOCK*8-1:0]  s2_elems, lane_elems;

  assign s2_ready = !s2_valid || out_ready;
  assign s1_ready = !s1_valid || s2_ready;
  assign in_ready = s1_ready;

  for (genvar i = 0; i < BLOCK; i++) begin : g_exp
    assign in_exps[8*i +: 8] = in_data[16*i+7 +: 8];
  end
  mx_exp_max #(.BLOCK(BLOCK)) u_exp_max (.exps(in_exps), .max_exp(in_max_exp));

  always_ff @(posedge clk) begin
    if (rst) begin
      s1_valid <= 1'b0;
    end else if (s1_ready) begin
      s1_valid <= in_valid;
    end
    if (s1_ready && in_valid) begin
      s1_data    <= in_data;
      s1_w4      <= in_w4;
      s1_max_exp <= in_max_exp;
    end
  end

  for (genvar i = 0; i < BLOCK; i++) begin : g_lane
    mx_int_lane u_lane (
        .bf16   (s1_data[16*i +: 16]),
        .max_exp(s1_max_exp),
        .w4     (s1_w4),
        .elem   (lane_elems[8*i +: 8])
    );
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      s2_valid <= 1'b0;
    end else if (s2_ready) begin
      s2_valid <= s1_valid;
    end
    if (s2_ready && s1_valid) begin
      s2_scale <= s1_max_exp;
      s2_elems <= lane_elems;
      s2_w4    <= s1_w4;
    end
  end

  assign out_valid = s2_valid;
  assign out_scale = s2_scale;
  assign out_elems = s2_elems;
  assign out_w4    = s2_w4;
endmodule
