`timescale 1ns/1ps
// Fixed-point V element (NUMERICS.md rule A5, combinational):
//   Vfx = sat28(floor(code * 2^(scale - 127 - (KB - 2) + 14)))   (signed 28-bit, 14 fraction bits)
module attn_value_fixed #(
    parameter int KB = 8                 // V element width (8 or 4)
) (
    input  logic [KB-1:0]       code,     // two's complement
    input  logic [7:0]          scale,    // E8M0
    output logic signed [27:0]  vfx
);
    localparam int SH_OFF = 127 + (KB - 2) - 14;

    logic signed [9:0]  sh;                        // -(SH_OFF) .. 255 - SH_OFF
    logic signed [63:0] wide;

    assign sh = $signed({2'b00, scale}) - 10'(SH_OFF);

    always @* begin
        wide = 64'($signed(code));
        if (sh >= 0) begin
            if (code == '0)
                vfx = 28'sd0;
            else if (sh >= 10'sd28)
                vfx = code[KB-1] ? 28'sh8000000 : 28'sh7ffffff;
            else begin
                wide = wide <<< sh[4:0];
                if (wide > 64'sh7ffffff)       vfx = 28'sh7ffffff;
                else if (wide < -64'sh8000000) vfx = 28'sh8000000;
                else                           vfx = wide[27:0];
            end
        end else begin
            if (-sh >= 10'(KB))
                vfx = code[KB-1] ? -28'sd1 : 28'sd0;
            else begin
                wide = wide >>> (-sh);
                vfx = wide[27:0];
            end
        end
    end
endmodule
