// "No output beat without a preceding input", as plain procedural SystemVerilog: counts the
// transactions' frames completed on every input stream (a frame ends with an accepted beat
// flagged in_frame_end) and on the output stream since the last reset; at every rising edge
// after the first reset, an output beat presented (out_valid) while the output has already
// completed as many frames as the least advanced input stream is a violation (an output with
// no input transaction to come from: stale after reset, duplicated, or spurious).
// Counts violations (sticky, saturating) and keeps the cycle of the first, like
// mxdv_vr_checker. Instantiated by the wrapper mxdv.env.checked_top generates.
module mxdv_io_checker #(
    parameter int NIN = 1
) (
    input  logic           clk,
    input  logic           rst,
    input  logic [NIN-1:0] in_accept,     // valid && ready of each input stream
    input  logic [NIN-1:0] in_frame_end,  // ... and that beat ends a transaction's frame
    input  logic           out_valid,
    input  logic           out_accept,
    input  logic           out_frame_end,
    output logic [15:0]    orphan_fails,
    output logic [31:0]    orphan_cycle
);
    logic [31:0] cycle;
    logic        armed;
    logic [31:0] in_frames [NIN];
    logic [31:0] out_frames;
    logic [31:0] min_in;

    initial begin
        cycle        = 32'd0;
        armed        = 1'b0;
        out_frames   = 32'd0;
        orphan_fails = 16'd0;
        orphan_cycle = 32'd0;
        for (int i = 0; i < NIN; i++) in_frames[i] = 32'd0;
    end

    always_comb begin
        min_in = in_frames[0];
        for (int i = 1; i < NIN; i++)
            if (in_frames[i] < min_in) min_in = in_frames[i];
    end

    always @(posedge clk) begin
        cycle <= cycle + 32'd1;
        if (rst === 1'b1) begin
            armed      <= 1'b1;
            out_frames <= 32'd0;
            for (int i = 0; i < NIN; i++) in_frames[i] <= 32'd0;
        end else if (armed) begin
            if (out_valid === 1'b1 && out_frames >= min_in) begin
                if (orphan_fails == 16'd0) orphan_cycle <= cycle + 32'd1;
                if (orphan_fails != 16'hFFFF) orphan_fails <= orphan_fails + 16'd1;
                $display("mxdv property violation: %m: output beat without a preceding input transaction at cycle %0d", cycle + 32'd1);
            end
            for (int i = 0; i < NIN; i++)
                if (in_accept[i] === 1'b1 && in_frame_end[i] === 1'b1) in_frames[i] <= in_frames[i] + 32'd1;
            if (out_accept === 1'b1 && out_frame_end === 1'b1) out_frames <= out_frames + 32'd1;
        end
    end
endmodule
