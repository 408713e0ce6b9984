// The three units of the accelerator in one simulation, for the transformer-layer test
// (env/layer/): the MX quantizer (ports qz_*), the systolic array (sa_*) and the attention
// unit (at_*). Each unit keeps its own valid/ready streams (the test drives each with its own
// agents); they share clock and reset. No glue logic: the host (the test) moves data between
// the units, as the accelerator's controller and host CPU would.
`timescale 1ns/1ps
module mxdv_layer_top #(
    parameter int QBLOCK     = 32,  // quantizer block
    parameter int SA_R       = 8,
    parameter int SA_C       = 8,
    parameter int SA_BLOCK   = 32,
    parameter int AT_D       = 32,
    parameter int AT_BLOCK   = 32,
    parameter int AT_KB      = 8,
    parameter int AT_QROWS   = 8,
    parameter int AT_TILE    = 8,
    parameter int AT_MAXLEN  = 16
) (
    input  logic                       clk,
    input  logic                       rst,
    // quantizer
    input  logic                       qz_in_valid,
    output logic                       qz_in_ready,
    input  logic [QBLOCK*16-1:0]       qz_in_data,
    input  logic                       qz_in_w4,
    output logic                       qz_out_valid,
    input  logic                       qz_out_ready,
    output logic [7:0]                 qz_out_scale,
    output logic [QBLOCK*8-1:0]        qz_out_elems,
    output logic                       qz_out_w4,
    // systolic array
    input  logic                       sa_in_valid,
    output logic                       sa_in_ready,
    input  logic [8*SA_R-1:0]          sa_in_a,
    input  logic [8*SA_R-1:0]          sa_in_a_scale,
    input  logic [8*SA_C-1:0]          sa_in_w,
    input  logic [8*SA_C-1:0]          sa_in_w_scale,
    input  logic                       sa_in_wfmt,
    input  logic                       sa_in_last,
    output logic                       sa_out_valid,
    input  logic                       sa_out_ready,
    output logic [32*SA_C-1:0]         sa_out_data,
    output logic                       sa_out_last,
    // attention
    input  logic                       at_q_valid,
    output logic                       at_q_ready,
    input  logic [AT_D*8-1:0]          at_q_codes,
    input  logic [AT_D/AT_BLOCK*8-1:0] at_q_scales,
    input  logic                       at_q_causal,
    input  logic [15:0]                at_q_offset,
    input  logic                       at_q_last,
    input  logic                       at_kv_valid,
    output logic                       at_kv_ready,
    input  logic [AT_D*AT_KB-1:0]      at_kv_k_codes,
    input  logic [AT_D/AT_BLOCK*8-1:0] at_kv_k_scales,
    input  logic [AT_D*AT_KB-1:0]      at_kv_v_codes,
    input  logic [AT_D/AT_BLOCK*8-1:0] at_kv_v_scales,
    input  logic                       at_kv_last,
    output logic                       at_out_valid,
    input  logic                       at_out_ready,
    output logic [AT_D*16-1:0]         at_out_data,
    output logic                       at_out_last
);
  mx_quantizer #(.BLOCK(QBLOCK)) u_quantizer (
      .clk, .rst,
      .in_valid(qz_in_valid), .in_ready(qz_in_ready), .in_data(qz_in_data), .in_w4(qz_in_w4),
      .out_valid(qz_out_valid), .out_ready(qz_out_ready), .out_scale(qz_out_scale),
      .out_elems(qz_out_elems), .out_w4(qz_out_w4));

  mx_systolic_array #(.R(SA_R), .C(SA_C), .BLOCK(SA_BLOCK)) u_systolic_array (
      .clk, .rst,
      .in_valid(sa_in_valid), .in_ready(sa_in_ready), .in_a(sa_in_a), .in_a_scale(sa_in_a_scale),
      .in_w(sa_in_w), .in_w_scale(sa_in_w_scale), .in_wfmt(sa_in_wfmt), .in_last(sa_in_last),
      .out_valid(sa_out_valid), .out_ready(sa_out_ready), .out_data(sa_out_data),
      .out_last(sa_out_last));

  attention_unit #(.D(AT_D), .BLOCK(AT_BLOCK), .KB(AT_KB), .QROWS(AT_QROWS), .TILE(AT_TILE),
                   .MAXLEN(AT_MAXLEN)) u_attention (
      .clk, .rst,
      .q_valid(at_q_valid), .q_ready(at_q_ready), .q_codes(at_q_codes), .q_scales(at_q_scales),
      .q_causal(at_q_causal), .q_offset(at_q_offset), .q_last(at_q_last),
      .kv_valid(at_kv_valid), .kv_ready(at_kv_ready), .kv_k_codes(at_kv_k_codes),
      .kv_k_scales(at_kv_k_scales), .kv_v_codes(at_kv_v_codes), .kv_v_scales(at_kv_v_scales),
      .kv_last(at_kv_last),
      .out_valid(at_out_valid), .out_ready(at_out_ready), .out_data(at_out_data),
      .out_last(at_out_last));
endmodule
