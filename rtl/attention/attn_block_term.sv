`timescale 1ns/1ps
// One block of a score (NUMERICS.md rules A1-A2, combinational):
//   I    = sum_e q_code[e] * k_code[e]                    (exact, signed)
//   sh   = sq + sk - 254 - 6 - (KB - 2) + 12              (Q is MXINT8, K is MXINT<KB>)
//   term = sat32(floor(I * 2^sh))                          (arithmetic right shift if sh < 0)
module attn_block_term #(
    parameter int BLOCK = 16,            // elements per block
    parameter int KB    = 8              // K element width (8 or 4)
) (
    input  logic [BLOCK*8-1:0]  q_codes,   // element e at [e*8 +: 8], two's complement
    input  logic [BLOCK*KB-1:0] k_codes,   // element e at [e*KB +: KB]
    input  logic [7:0]          q_scale,   // E8M0
    input  logic [7:0]          k_scale,   // E8M0
    output logic signed [31:0]  term
);
    localparam int IW = 16 + $clog2(BLOCK) + 1;   // |I| <= BLOCK * 2^7 * 2^(KB-1)
    localparam int SH_OFF = 254 + 6 + (KB - 2) - 12;

    logic signed [IW-1:0] dot;
    logic signed [10:0]   sh;                      // -250 .. 262
    logic signed [63:0]   wide;

    always @* begin
        dot = '0;
        for (int e = 0; e < BLOCK; e++)
            dot = dot + $signed(q_codes[e*8 +: 8]) * $signed(k_codes[e*KB +: KB]);
    end

    assign sh = $signed({3'b000, q_scale}) + $signed({3'b000, k_scale}) - 11'(SH_OFF);

    always @* begin
        wide = 64'(dot);
        if (sh >= 0) begin
            if (dot == 0)
                term = 32'sd0;
            else if (sh >= 11'sd32)
                term = dot[IW-1] ? 32'sh80000000 : 32'sh7fffffff;
            else begin
                wide = wide <<< sh[4:0];
                if (wide > 64'sh7fffffff)       term = 32'sh7fffffff;
                else if (wide < -64'sh80000000) term = 32'sh80000000;
                else                            term = wide[31:0];
            end
        end else begin
            if (-sh >= 11'(IW))
                term = dot[IW-1] ? -32'sd1 : 32'sd0;
            else begin
                wide = wide >>> (-sh);
                term = wide[31:0];
            end
        end
    end
endmodule
