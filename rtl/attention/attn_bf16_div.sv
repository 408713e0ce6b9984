`timescale 1ns/1ps
// Final normalization of NUMERICS.md rule A6, sequential:
//   result = RNE_bf16(num / (den * 2^14)),  num = 0 -> 0x0000
// Restoring division on operands normalized so that their leading ones line up: one cycle to
// start, 9 quotient bits (leading 1, 7 mantissa bits, round bit) one per cycle, then the sticky
// bit (remainder != 0) and round-half-to-even. done pulses for one cycle with result valid
// (and result holds until the next start): 11 cycles from start to done (2 for num == 0).
module attn_bf16_div #(
    parameter int NW = 55,               // width of num (signed)
    parameter int DW = 27                // width of den (unsigned, nonzero, DW < NW)
) (
    input  logic                 clk,
    input  logic                 rst,
    input  logic                 start,
    input  logic signed [NW-1:0] num,
    input  logic [DW-1:0]        den,
    output logic                 busy,
    output logic                 done,
    output logic [15:0]          result
);
    localparam int W = NW;               // aligned operand width (|num| < 2^(NW-1))

    // leading-one positions
    function automatic logic [6:0] msb_index(input logic [W-1:0] v);
        msb_index = '0;
        for (int i = 0; i < W; i++)
            if (v[i]) msb_index = 7'(i);
    endfunction

    logic [W-1:0] mag, den_w, mag_n, den_n;
    logic [6:0]   na, nl;
    logic signed [9:0] e0;

    assign mag   = num[NW-1] ? W'(-num) : W'(num);
    assign den_w = W'(den);
    assign na    = msb_index(mag);
    assign nl    = msb_index(den_w);
    assign mag_n = mag << (7'(W - 1) - na);
    assign den_n = den_w << (7'(W - 1) - nl);
    assign e0    = $signed({3'b000, na}) - $signed({3'b000, nl});

    logic [W:0]   rem;
    logic [W-1:0] dv;
    logic [8:0]   qbits;
    logic [3:0]   cnt;
    logic signed [9:0] e;
    logic         sign;

    // rounding of the 9 quotient bits
    /* verilator lint_off UNUSEDSIGNAL */
    logic [8:0]   mant_r;                // bit 7 is the implicit leading one
    /* verilator lint_on UNUSEDSIGNAL */
    logic         up;
    logic signed [9:0] e_r;
    logic [7:0]   exp_field;
    assign up        = qbits[0] & ((rem != '0) | qbits[1]);
    assign mant_r    = {1'b0, qbits[8:1]} + {8'd0, up};
    assign e_r       = mant_r[8] ? e + 10'sd1 : e;
    assign exp_field = 8'(e_r + 10'sd113);         // + 127 - 14

    always_ff @(posedge clk) begin
        done <= 1'b0;
        if (rst) begin
            busy   <= 1'b0;
            result <= 16'h0000;
            rem    <= '0;
            dv     <= '0;
            qbits  <= '0;
            cnt    <= '0;
            e      <= '0;
            sign   <= 1'b0;
        end else if (start && !busy) begin
            sign  <= num[NW-1];
            dv    <= den_n;
            qbits <= '0;
            cnt   <= 4'd0;
            if (mag == '0) begin
                result <= 16'h0000;
                done   <= 1'b1;
            end else begin
                busy <= 1'b1;
                if (mag_n >= den_n) begin
                    rem <= {1'b0, mag_n};
                    e   <= e0;
                end else begin
                    rem <= {mag_n, 1'b0};
                    e   <= e0 - 10'sd1;
                end
            end
        end else if (busy) begin
            if (cnt < 4'd9) begin
                if (rem >= {1'b0, dv}) begin
                    rem   <= (rem - {1'b0, dv}) << 1;
                    qbits <= {qbits[7:0], 1'b1};
                end else begin
                    rem   <= rem << 1;
                    qbits <= {qbits[7:0], 1'b0};
                end
                cnt <= cnt + 4'd1;
            end else begin
                busy   <= 1'b0;
                done   <= 1'b1;
                result <= {sign, exp_field, mant_r[8] ? 7'd0 : mant_r[6:0]};
            end
        end
    end
endmodule
