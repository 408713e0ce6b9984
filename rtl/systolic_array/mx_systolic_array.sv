`timescale 1ns/1ps
// R x C output-stationary systolic array for the block-scaled MX GEMM
//     Y[R x C] = A[R x K] * W[K x C],  K = kblocks * BLOCK streamed one k per input beat,
// numerics exactly as NUMERICS.md "Block-scaled GEMM" (mxdv.refmodel.gemm.mx_matmul).
// See README.md for the beat formats, protocol, latency and throughput.
//
// Input stream in_*  (one beat = one k of the tile):
//   in_a[8i+7:8i]        activation code A[i][k] (MXINT8)
//   in_w[8j+7:8j]        weight code W[k][j]: MXINT8, or MXINT4 in bits [8j+3:8j] (wfmt = 1)
//   in_a_scale[8i+7:8i]  E8M0 scale of row i's block  } sampled on the LAST beat of each block
//   in_w_scale[8j+7:8j]  E8M0 scale of column j's block}
//   in_wfmt              0 = MXINT8 weights, 1 = MXINT4; sampled on the FIRST beat of a tile
//   in_last              1 on the last beat of the tile (which must end a block)
// Output stream out_* (one beat = one row of the tile, rows 0..R-1 in order):
//   out_data[32j+31:32j] FP32 code of Y[i][j];   out_last = 1 on row R-1.
// Every register advances together (adv); adv = 0 only while an output row is held and not
// taken, so in_ready = adv and a tile's rows leave on R consecutive cycles when not stalled.
module mx_systolic_array #(
    parameter int R     = 4,
    parameter int C     = 4,
    parameter int BLOCK = 32  // 8, 16 or 32; R and C must not exceed BLOCK
) (
    input  logic             clk,
    input  logic             rst,
    // input stream
    input  logic             in_valid,
    output logic             in_ready,
    input  logic [8*R-1:0]   in_a,
    input  logic [8*R-1:0]   in_a_scale,
    input  logic [8*C-1:0]   in_w,
    input  logic [8*C-1:0]   in_w_scale,
    input  logic             in_wfmt,
    input  logic             in_last,
    // output stream
    output logic             out_valid,
    input  logic             out_ready,
    output logic [32*C-1:0]  out_data,
    output logic             out_last
);
  localparam int CW = $clog2(BLOCK);

  generate
    if (R > BLOCK || C > BLOCK || (BLOCK != 8 && BLOCK != 16 && BLOCK != 32)) begin : g_bad_params
      // elaboration fails here on purpose: no such module
      mx_systolic_array_needs_block_8_16_32_and_r_c_at_most_block u_bad_parameters ();
    end
  endgenerate

  logic adv;
  assign adv      = !out_valid || out_ready;
  assign in_ready = adv;

  // ---------------------------------------------------------------- tile / block framing
  logic [CW-1:0] beat_in_block;
  logic          first_beat, first_blk, wfmt_tile;
  logic          take, blk_end, wfmt_now;
  assign take     = in_valid && adv;
  assign blk_end  = (beat_in_block == CW'(BLOCK - 1)) || in_last;
  assign wfmt_now = first_beat ? in_wfmt : wfmt_tile;

  always_ff @(posedge clk) begin
    if (rst) begin
      beat_in_block <= '0;
      first_beat    <= 1'b1;
      first_blk     <= 1'b1;
      wfmt_tile     <= 1'b0;
    end else if (take) begin
      beat_in_block <= blk_end ? '0 : beat_in_block + 1'b1;
      first_beat    <= in_last;
      first_blk     <= in_last || (first_blk && !blk_end);
      if (first_beat) wfmt_tile <= in_wfmt;
    end
  end

  // ---------------------------------------------------------------- operand bundles + skew
  // Row i's activation bundle is delayed by i cycles, column j's weight bundle by j cycles, so
  // that PE(i, j) sees beat k of both i + j advancing cycles after it was accepted.
  wire  [20:0] a_edge [R];  // into PE(i, 0)
  wire  [15:0] w_edge [C];  // into PE(0, j)

  for (genvar i = 0; i < R; i++) begin : g_row_skew
    logic [20:0] bundle;
    assign bundle = {take, blk_end, first_blk, in_last, wfmt_now, in_a_scale[8*i+:8], in_a[8*i+:8]};
    if (i == 0) begin : g_direct
      assign a_edge[i] = bundle;
    end else begin : g_delay
      // depth-i shift register, newest bundle in the low bits; the oldest feeds PE(i, 0)
      logic [21*i-1:0] line;
      /* verilator lint_off UNUSEDSIGNAL */
      logic [21*i+20:0] shifted;  // the top bundle is dropped
      /* verilator lint_on UNUSEDSIGNAL */
      assign shifted = {line, bundle};
      always_ff @(posedge clk) begin
        if (rst) line <= '0;
        else if (adv) line <= shifted[21*i-1:0];
      end
      assign a_edge[i] = line[21*i-1 -: 21];
    end
  end

  for (genvar j = 0; j < C; j++) begin : g_col_skew
    logic [7:0]  w_code;
    logic [15:0] bundle;
    // MXINT4 codes are sign-extended from bit 3
    assign w_code = wfmt_now ? {{4{in_w[8*j+3]}}, in_w[8*j+:4]} : in_w[8*j+:8];
    assign bundle = {in_w_scale[8*j+:8], w_code};
    if (j == 0) begin : g_direct
      assign w_edge[j] = bundle;
    end else begin : g_delay
      logic [16*j-1:0] line;
      /* verilator lint_off UNUSEDSIGNAL */
      logic [16*j+15:0] shifted;
      /* verilator lint_on UNUSEDSIGNAL */
      assign shifted = {line, bundle};
      always_ff @(posedge clk) begin
        if (rst) line <= '0;
        else if (adv) line <= shifted[16*j-1:0];
      end
      assign w_edge[j] = line[16*j-1 -: 16];
    end
  end

  // ---------------------------------------------------------------- PE grid
  wire  [20:0] a_link [R][C+1];
  wire  [15:0] w_link [R+1][C];
  wire  [31:0] pe_acc [R][C];
  wire         pe_nan [R][C];
  wire         pe_done[R][C];

  for (genvar i = 0; i < R; i++) begin : g_pe_row
    assign a_link[i][0] = a_edge[i];
    for (genvar j = 0; j < C; j++) begin : g_pe_col
      if (i == 0) begin : g_top
        assign w_link[0][j] = w_edge[j];
      end
      mx_pe #(.BLOCK(BLOCK)) u_pe (
          .clk  (clk),
          .rst  (rst),
          .adv  (adv),
          .a_in (a_link[i][j]),
          .w_in (w_link[i][j]),
          .a_out(a_link[i][j+1]),
          .w_out(w_link[i+1][j]),
          .acc  (pe_acc[i][j]),
          .nan  (pe_nan[i][j]),
          .done (pe_done[i][j])
      );
    end
  end

  // ---------------------------------------------------------------- output rows
  // Row i is complete when its last PE reports done; its other PEs finished 1..C-1 cycles
  // earlier and still hold their results (C <= BLOCK). Rows finish on distinct cycles.
  wire  [32*C*R-1:0] rows;  // row i at [32*C*i +: 32*C], NaN already applied (rule G4)
  logic [32*C-1:0]   row_data;
  logic              row_ready, row_last;

  for (genvar i = 0; i < R; i++) begin : g_out_row
    for (genvar j = 0; j < C; j++) begin : g_out_col
      assign rows[32*(C*i+j)+:32] = pe_nan[i][j] ? 32'h7FC0_0000 : pe_acc[i][j];
    end
  end

  always @* begin
    row_data  = '0;
    row_ready = 1'b0;
    row_last  = 1'b0;
    for (int i = 0; i < R; i++) begin
      if (pe_done[i][C-1]) begin
        row_ready = 1'b1;
        row_last  = (i == R - 1);
        row_data  = rows[32*C*i+:32*C];
      end
    end
  end

  always_ff @(posedge clk) begin
    if (rst) begin
      out_valid <= 1'b0;
      out_data  <= '0;
      out_last  <= 1'b0;
    end else if (adv) begin
      out_valid <= row_ready;
      if (row_ready) begin
        out_data <= row_data;
        out_last <= row_last;
      end
    end
  end

endmodule
