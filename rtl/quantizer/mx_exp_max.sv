`timescale 1ns/1ps
// Largest BF16 exponent field of a block (combinational, balanced binary tree).
//
// For BF16 the biased exponent field orders magnitudes by their binade, so the block's
// max exponent field E is, at once (NUMERICS.md chapter 2, quantization contract):
//   E = 255          -> the block holds a NaN or +-Inf (scale code 0xFF),
//   E = 0            -> the block holds only +-0 and subnormals (scale code 0: zero block,
//                       or shared_exp clamped to -127),
//   E in 1..254      -> floor(log2(max|x|)) = E - 127, so the scale code is E itself.
// The sign bit and the mantissa never matter, which is why no magnitude compare is needed.
//
// The tree is laid out as a heap: node n has children 2n+1 and 2n+2, leaves are the nodes
// BLOCK-1 .. 2*BLOCK-2 (a complete binary tree exists for any BLOCK >= 1), the root is node 0.
module mx_exp_max #(
    parameter int BLOCK = 32
) (
    input  logic [BLOCK*8-1:0] exps,     // lane i = bits [8*i +: 8]: BF16 exponent field (14:7)
    output logic [7:0]         max_exp   // largest exponent field over all lanes
);
  // One always_comb block rather than one assign per node: with per-node assigns Verilator sees
  // the array feeding itself and reports UNOPTFLAT (circular combinational logic).
  logic [2*BLOCK-2:0][7:0] node;  // packed: Yosys keeps it as plain wires, not a memory

  always_comb begin
    for (int i = 0; i < BLOCK; i++) begin
      node[BLOCK-1+i] = exps[8*i +: 8];
    end
    for (int n = BLOCK-2; n >= 0; n--) begin
      node[n] = (node[2*n+1] >= node[2*n+2]) ? node[2*n+1] : node[2*n+2];
    end
  end

  assign max_exp = node[0];
endmodule
