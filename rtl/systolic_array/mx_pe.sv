`timescale 1ns/1ps
// Output-stationary processing element of the MX systolic array.
//
// Every advancing cycle (adv = 1) the PE forwards its activation bundle to the right and its
// weight bundle downwards (one register each) and, for a valid beat, adds the exact product
// a * w of the two element codes to its block sum (NUMERICS.md "Block-scaled GEMM", rule G1).
// On the last beat of a block it hands (S_b, e_b, NaN) to a one-entry pending stage (rule G2:
// e_b = sa + sw - 266 for MXINT8 weights, - 262 for MXINT4); the next advancing cycle adds the
// block into the FP32 accumulator (rule G3) and ORs the NaN flag (rule G4). The first block of a
// tile starts from +0 and a clear NaN flag. `acc`/`nan` hold the tile's result from the cycle
// after the tile's last block until that PE's next block end (at least BLOCK cycles).
//
// Activation bundle: {valid, blk_end, first_blk, tile_end, wfmt, a_scale[7:0], a[7:0]}
// Weight bundle:     {w_scale[7:0], w[7:0]} (w already sign-extended to 8 bits)
module mx_pe #(
    parameter int BLOCK = 32
) (
    input  logic        clk,
    input  logic        rst,
    input  logic        adv,
    input  logic [20:0] a_in,
    input  logic [15:0] w_in,
    output logic [20:0] a_out,
    output logic [15:0] w_out,
    output logic [31:0] acc,
    output logic        nan,
    output logic        done  // 1 for one advancing cycle: acc/nan now hold a tile result
);
  localparam int SW = 16 + $clog2(BLOCK);  // |S_b| <= BLOCK * 2^14

  logic       in_valid, in_blk_end, in_first_blk, in_tile_end, in_wfmt;
  logic [7:0] in_a_scale, in_w_scale;
  logic signed [7:0] in_a, in_w;
  assign {in_valid, in_blk_end, in_first_blk, in_tile_end, in_wfmt, in_a_scale, in_a} = a_in;
  assign {in_w_scale, in_w} = w_in;

  logic signed [15:0]   product;
  logic signed [SW-1:0] block_sum, sum_now;
  logic signed [11:0]   block_exp;
  assign product   = in_a * in_w;
  assign sum_now   = block_sum + {{(SW - 16){product[15]}}, product};
  assign block_exp = $signed({4'd0, in_a_scale}) + $signed({4'd0, in_w_scale})
                     - (in_wfmt ? 12'sd262 : 12'sd266);

  // pending block (one entry; blocks end at least one beat apart)
  logic                 pend_valid, pend_first, pend_last, pend_nan;
  logic signed [SW-1:0] pend_sum;
  logic signed [11:0]   pend_exp;
  logic [31:0]          acc_next;

  mx_fp32_block_add #(.SW(SW)) u_add (
      .acc(pend_first ? 32'h0000_0000 : acc),
      .s  (pend_sum),
      .e  (pend_exp),
      .sum(acc_next)
  );

  always_ff @(posedge clk) begin
    if (rst) begin
      a_out      <= '0;
      w_out      <= '0;
      block_sum  <= '0;
      pend_valid <= 1'b0;
      pend_first <= 1'b0;
      pend_last  <= 1'b0;
      pend_nan   <= 1'b0;
      pend_sum   <= '0;
      pend_exp   <= '0;
      acc        <= '0;
      nan        <= 1'b0;
      done       <= 1'b0;
    end else if (adv) begin
      a_out <= a_in;
      w_out <= w_in;
      if (in_valid) begin
        if (in_blk_end) begin
          block_sum  <= '0;
          pend_sum   <= sum_now;
          pend_exp   <= block_exp;
          pend_nan   <= (in_a_scale == 8'hFF) || (in_w_scale == 8'hFF);
          pend_first <= in_first_blk;
          pend_last  <= in_tile_end;
        end else begin
          block_sum <= sum_now;
        end
      end
      pend_valid <= in_valid && in_blk_end;
      if (pend_valid) begin
        acc <= acc_next;
        nan <= (pend_first ? 1'b0 : nan) | pend_nan;
      end
      done <= pend_valid && pend_last;
    end
  end

endmodule
