// Valid/ready interface properties of one stream, as plain procedural SystemVerilog (no SVA:
// Icarus 11 has no concurrent assertions), sampled at every rising clock edge after the first
// reset:
//   held:   a beat presented and not accepted (valid && !ready) is still presented next edge;
//   stable: ... with the same payload (every data field of the stream, concatenated).
// Each property counts its violations (sticky across resets, saturating) and keeps the cycle
// (rising edges since time 0) of the first; mxdv's environment reads them at the end of a run
// and fails the job on any. A violation is also printed to the simulator log when it happens.
// Instantiated by the wrapper that mxdv.env.checked_top generates from a unit's ports.
module mxdv_vr_checker #(
    parameter int W = 1
) (
    input  logic         clk,
    input  logic         rst,
    input  logic         valid,
    input  logic         ready,
    input  logic [W-1:0] payload,
    output logic [15:0]  held_fails,
    output logic [31:0]  held_cycle,
    output logic [15:0]  stable_fails,
    output logic [31:0]  stable_cycle
);
    logic [31:0]  cycle;
    logic         armed;
    logic         stalled;
    logic [W-1:0] held_payload;

    initial begin
        cycle        = 32'd0;
        armed        = 1'b0;
        stalled      = 1'b0;
        held_payload = '0;
        held_fails   = 16'd0;
        held_cycle   = 32'd0;
        stable_fails = 16'd0;
        stable_cycle = 32'd0;
    end

    always @(posedge clk) begin
        cycle <= cycle + 32'd1;
        if (rst === 1'b1) begin
            armed   <= 1'b1;
            stalled <= 1'b0;
        end else if (armed) begin
            if (stalled && valid !== 1'b1) begin
                if (held_fails == 16'd0) held_cycle <= cycle + 32'd1;
                if (held_fails != 16'hFFFF) held_fails <= held_fails + 16'd1;
                $display("mxdv property violation: %m: valid dropped while stalled (not held until ready) at cycle %0d", cycle + 32'd1);
            end
            if (stalled && valid === 1'b1 && payload !== held_payload) begin
                if (stable_fails == 16'd0) stable_cycle <= cycle + 32'd1;
                if (stable_fails != 16'hFFFF) stable_fails <= stable_fails + 16'd1;
                $display("mxdv property violation: %m: payload changed while stalled at cycle %0d", cycle + 32'd1);
            end
            stalled      <= (valid === 1'b1) && (ready !== 1'b1);
            held_payload <= payload;
        end
    end
endmodule
