`timescale 1ns/1ps
// Fixed-point 2^(-x/1024) of NUMERICS.md rule A4 (combinational).
//   x  : unsigned logit difference, 10 fraction bits
//   pf : Q1.15 mantissa of the fraction part, (LUT_HI[f>>5] * LUT_LO[f&31] + 2^14) >> 15,
//        2^14 < pf <= 2^15
//   xi : integer part x >> 10 (the right shift applied by the caller)
// LUT_HI[a] = round(2^15 * 2^(-a/32)), LUT_LO[b] = round(2^15 * 2^(-b/1024)).
module attn_exp2 #(
    parameter int XW = 31                // width of x
) (
    input  logic [XW-1:0]    x,
    output logic [15:0]      pf,
    output logic [XW-11:0]   xi
);
    logic [15:0] lut_hi, lut_lo;
    /* verilator lint_off UNUSEDSIGNAL */
    logic [31:0] prod;                   // <= 2^30 + 2^14; low 15 bits dropped by the shift
    /* verilator lint_on UNUSEDSIGNAL */

    always @* begin
        case (x[9:5])
            5'd0 : lut_hi = 16'd32768;
            5'd1 : lut_hi = 16'd32066;
            5'd2 : lut_hi = 16'd31379;
            5'd3 : lut_hi = 16'd30706;
            5'd4 : lut_hi = 16'd30048;
            5'd5 : lut_hi = 16'd29405;
            5'd6 : lut_hi = 16'd28774;
            5'd7 : lut_hi = 16'd28158;
            5'd8 : lut_hi = 16'd27554;
            5'd9 : lut_hi = 16'd26964;
            5'd10: lut_hi = 16'd26386;
            5'd11: lut_hi = 16'd25821;
            5'd12: lut_hi = 16'd25268;
            5'd13: lut_hi = 16'd24726;
            5'd14: lut_hi = 16'd24196;
            5'd15: lut_hi = 16'd23678;
            5'd16: lut_hi = 16'd23170;
            5'd17: lut_hi = 16'd22674;
            5'd18: lut_hi = 16'd22188;
            5'd19: lut_hi = 16'd21713;
            5'd20: lut_hi = 16'd21247;
            5'd21: lut_hi = 16'd20792;
            5'd22: lut_hi = 16'd20347;
            5'd23: lut_hi = 16'd19911;
            5'd24: lut_hi = 16'd19484;
            5'd25: lut_hi = 16'd19066;
            5'd26: lut_hi = 16'd18658;
            5'd27: lut_hi = 16'd18258;
            5'd28: lut_hi = 16'd17867;
            5'd29: lut_hi = 16'd17484;
            5'd30: lut_hi = 16'd17109;
            5'd31: lut_hi = 16'd16743;
            default: lut_hi = 16'd0;
        endcase
    end

    always @* begin
        case (x[4:0])
            5'd0 : lut_lo = 16'd32768;
            5'd1 : lut_lo = 16'd32746;
            5'd2 : lut_lo = 16'd32724;
            5'd3 : lut_lo = 16'd32702;
            5'd4 : lut_lo = 16'd32679;
            5'd5 : lut_lo = 16'd32657;
            5'd6 : lut_lo = 16'd32635;
            5'd7 : lut_lo = 16'd32613;
            5'd8 : lut_lo = 16'd32591;
            5'd9 : lut_lo = 16'd32569;
            5'd10: lut_lo = 16'd32547;
            5'd11: lut_lo = 16'd32525;
            5'd12: lut_lo = 16'd32503;
            5'd13: lut_lo = 16'd32481;
            5'd14: lut_lo = 16'd32459;
            5'd15: lut_lo = 16'd32437;
            5'd16: lut_lo = 16'd32415;
            5'd17: lut_lo = 16'd32393;
            5'd18: lut_lo = 16'd32371;
            5'd19: lut_lo = 16'd32349;
            5'd20: lut_lo = 16'd32327;
            5'd21: lut_lo = 16'd32306;
            5'd22: lut_lo = 16'd32284;
            5'd23: lut_lo = 16'd32262;
            5'd24: lut_lo = 16'd32240;
            5'd25: lut_lo = 16'd32218;
            5'd26: lut_lo = 16'd32196;
            5'd27: lut_lo = 16'd32175;
            5'd28: lut_lo = 16'd32153;
            5'd29: lut_lo = 16'd32131;
            5'd30: lut_lo = 16'd32109;
            5'd31: lut_lo = 16'd32088;
            default: lut_lo = 16'd0;
        endcase
    end

    assign prod = lut_hi * lut_lo + 32'd16384;
    assign pf   = prod[30:15];
    assign xi   = x[XW-1:10];
endmodule
