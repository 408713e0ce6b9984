`timescale 1ns/1ps
// FlashAttention over an MX KV cache: one query tile against a streamed key/value sequence,
// bit for bit as refmodel/numerics/40_attention.md (mxdv.refmodel.attention.mx_attention_bits
// with tile = TILE) specifies.
//
// Streams (valid/ready, a beat moves when valid && ready):
//   q_   one beat per query row (1..QROWS rows, q_last on the last one; row QROWS-1 ends the
//        tile anyway). q_causal and q_offset are taken from the first row's beat.
//   kv_  one beat per key (position 0, 1, ...): K and V rows of the KV cache, kv_last on the
//        last key (sequence length 1..MAXLEN; key MAXLEN-1 ends the sequence anyway).
//   out_ one beat per query row, in row order: D BF16 results, out_last on the last row.
// Element e of a row is at [e*W +: W] (W = 8 for Q, KB for K/V, 16 for out); block b's E8M0
// scale is at [b*8 +: 8].
//
// Datapath (sequential, one operation per cycle): per KV tile, LOAD (1 cycle per key), SCORE
// (1 cycle per row x key x block), then per row: max update (1 cycle), rescale (D cycles, only
// when the running max changed), P x V (D cycles per visible key, 1 per invisible key); after
// the last tile, per row: D divisions (11 cycles each) and one output beat.
module attention_unit #(
    parameter int D       = 32,          // head dimension: 16, 32 or 64
    parameter int BLOCK   = 16,          // MX block size along d: 8, 16 or 32 (divides D)
    parameter int KB      = 8,           // K/V element width: 8 (MXINT8) or 4 (MXINT4)
    parameter int QROWS   = 4,           // max query rows per tile
    parameter int TILE    = 8,           // keys per online-softmax tile
    parameter int MAXLEN  = 64           // max sequence length (<= 16384)
) (
    input  logic                 clk,
    input  logic                 rst,

    input  logic                 q_valid,
    output logic                 q_ready,
    input  logic [D*8-1:0]       q_codes,
    input  logic [D/BLOCK*8-1:0] q_scales,
    input  logic                 q_causal,
    input  logic [15:0]          q_offset,
    input  logic                 q_last,

    input  logic                 kv_valid,
    output logic                 kv_ready,
    input  logic [D*KB-1:0]      kv_k_codes,
    input  logic [D/BLOCK*8-1:0] kv_k_scales,
    input  logic [D*KB-1:0]      kv_v_codes,
    input  logic [D/BLOCK*8-1:0] kv_v_scales,
    input  logic                 kv_last,

    output logic                 out_valid,
    input  logic                 out_ready,
    output logic [D*16-1:0]      out_data,
    output logic                 out_last
);
    // ---------------------------------------------------------------- widths and constants
    localparam int NB    = D / BLOCK;
    localparam int LOGN  = (MAXLEN > 1) ? $clog2(MAXLEN) : 1;
    localparam int LW    = 21 + LOGN;                  // l: unsigned, 20 fraction bits
    localparam int OW    = 49 + LOGN;                  // O: signed, 34 fraction bits
    localparam int TW    = 30;                         // logit t: signed, 10 fraction bits
    localparam int XW    = TW + 1;                     // m - t >= 0
    localparam int KW    = LOGN + 1;                   // key index 0..MAXLEN
    localparam int RW    = (QROWS > 1) ? $clog2(QROWS) : 1;
    localparam int SW    = (TILE > 1) ? $clog2(TILE) : 1;
    localparam int BW    = (NB > 1) ? $clog2(NB) : 1;
    localparam int JW    = $clog2(D);
    localparam int LB    = $clog2(BLOCK);
    localparam logic [SW:0] TILE_M1  = (SW+1)'(TILE - 1);
    localparam logic [JW:0] D_M1     = (JW+1)'(D - 1);
    localparam logic [RW:0] QROWS_M1 = (RW+1)'(QROWS - 1);
    localparam logic [BW:0] NB_M1    = (BW+1)'(NB - 1);
    localparam logic [19:0] C_D = (D == 16) ? 20'd378194 : (D == 32) ? 20'd267423 : 20'd189097;

    typedef enum logic [3:0] {
        S_LOADQ, S_LOADKV, S_SCORE, S_ROW, S_RESCALE, S_PV, S_DIV, S_DIVWAIT, S_OUT
    } state_t;
    state_t state;

    // ---------------------------------------------------------------- storage
    logic [D*8-1:0]       qbuf   [QROWS];
    logic [NB*8-1:0]      qscale [QROWS];
    logic [D*KB-1:0]      kbuf   [TILE];
    logic [NB*8-1:0]      kscale [TILE];
    logic [D*KB-1:0]      vbuf   [TILE];
    logic [NB*8-1:0]      vscale [TILE];
    logic signed [TW-1:0] tbuf   [QROWS][TILE];
    logic                 visbuf [QROWS][TILE];

    logic signed [TW-1:0] m      [QROWS];      // running max
    logic                 m_ok   [QROWS];      // a visible key has been seen
    logic signed [TW-1:0] tmax   [QROWS];      // max of the current tile
    logic                 tmax_ok[QROWS];
    logic [LW-1:0]        lsum   [QROWS];
    logic signed [OW-1:0] acc    [QROWS][D];
    logic                 row_nan[QROWS];
    logic [NB-1:0]        col_nan[QROWS];

    logic                 causal;
    logic [15:0]          offset;
    logic [RW:0]          nq;                  // query rows in the tile
    logic [KW-1:0]        base;                // position of the tile's first key
    logic [SW:0]          ntile;               // keys in the current tile
    logic                 seq_last;            // current tile is the last one
    logic [15:0]          outbuf [D];

    // loop counters
    logic [RW:0]          r;
    logic [SW:0]          s;
    logic [BW:0]          b;
    logic [JW:0]          j;
    logic signed [34:0]   sacc;                // sum of block terms
    logic [15:0]          pf_a;                // rescale factor (pf, xi)
    logic [XW-11:0]       xi_a;

    // ---------------------------------------------------------------- score datapath
    logic [RW-1:0] ri;
    logic [SW-1:0] si;
    logic [BW-1:0] bi;
    logic [JW-1:0] ji;
    assign ri = r[RW-1:0];
    assign si = s[SW-1:0];
    assign bi = (NB > 1) ? b[BW-1:0] : '0;
    assign ji = j[JW-1:0];
    logic [BW-1:0] cbi;                                // block of column j
    assign cbi = BW'(ji >> LB);

    logic signed [31:0] term;
    attn_block_term #(.BLOCK(BLOCK), .KB(KB)) u_term (
        .q_codes (qbuf[ri][bi*BLOCK*8 +: BLOCK*8]),
        .k_codes (kbuf[si][bi*BLOCK*KB +: BLOCK*KB]),
        .q_scale (qscale[ri][bi*8 +: 8]),
        .k_scale (kscale[si][bi*8 +: 8]),
        .term    (term)
    );

    logic signed [34:0] s_sum;
    logic signed [31:0] s_sat;
    logic signed [52:0] s_prod;
    /* verilator lint_off UNUSEDSIGNAL */
    logic signed [52:0] s_shift;                       // |t| < 2^28: bits above TW are sign
    /* verilator lint_on UNUSEDSIGNAL */
    logic signed [TW-1:0] t_new;
    assign s_sum  = sacc + 35'(term);
    assign s_sat  = (s_sum > 35'sh7fffffff) ? 32'sh7fffffff
                  : (s_sum < -35'sh80000000) ? 32'sh80000000 : s_sum[31:0];
    assign s_prod  = s_sat * $signed({1'b0, C_D});
    assign s_shift = s_prod >>> 22;
    assign t_new   = s_shift[TW-1:0];

    // visibility of key (base + s) for row r: not causal, or key <= q_offset + r
    logic visible;
    assign visible = !causal || (18'(base) + 18'(s) <= 18'(offset) + 18'(r));

    logic k_nan_key;
    logic [NB-1:0] v_nan_blocks;
    always @* begin
        k_nan_key = 1'b0;
        for (int i = 0; i < NB; i++) begin
            k_nan_key       = k_nan_key | (kscale[si][i*8 +: 8] == 8'hff);
            v_nan_blocks[i] = (vscale[si][i*8 +: 8] == 8'hff);
        end
    end

    // ---------------------------------------------------------------- softmax datapath
    // One 2^-x unit: the running-max update (S_ROW) or a key's weight (S_PV).
    logic signed [TW-1:0] m_new;
    logic signed [XW-1:0] x_max, x_key;
    logic [XW-1:0]  x_in;
    logic [15:0]    pf;
    logic [XW-11:0] xi;
    assign m_new = (!m_ok[ri] || tmax[ri] > m[ri]) ? tmax[ri] : m[ri];
    assign x_max = m_new - m[ri];
    assign x_key = m[ri] - tbuf[ri][si];
    assign x_in  = (state == S_ROW) ? x_max : x_key;
    attn_exp2 #(.XW(XW)) u_exp2 (.x(x_in), .pf(pf), .xi(xi));

    logic [20:0] p;                                     // Q1.20 weight
    assign p = (xi >= 21) ? 21'd0 : 21'({pf, 5'b00000} >> xi);

    logic [5:0] sh_a;                                   // rescale shift, capped at 63
    assign sh_a = (xi_a > 63) ? 6'd63 : xi_a[5:0];

    logic [LW+15:0] l_prod;
    logic [LW-1:0]  l_rescaled;
    assign l_prod     = lsum[ri] * pf_a;
    assign l_rescaled = LW'((l_prod >> 15) >> sh_a);

    logic signed [OW+16:0] o_prod;
    logic signed [OW-1:0]  o_rescaled;
    assign o_prod     = acc[ri][ji] * $signed({1'b0, pf_a});
    assign o_rescaled = OW'((o_prod >>> 15) >>> sh_a);

    logic signed [27:0] vfx;
    attn_value_fixed #(.KB(KB)) u_vfx (
        .code  (vbuf[si][ji*KB +: KB]),
        .scale (vscale[si][cbi*8 +: 8]),
        .vfx   (vfx)
    );
    logic signed [48:0] pv_prod;
    logic signed [OW-1:0] o_added;
    assign pv_prod = $signed({1'b0, p}) * vfx;
    assign o_added = acc[ri][ji] + OW'(pv_prod);

    // ---------------------------------------------------------------- final division
    logic        div_start, div_busy, div_done;
    logic [15:0] div_result;
    attn_bf16_div #(.NW(OW), .DW(LW)) u_div (
        .clk(clk), .rst(rst), .start(div_start), .num(acc[ri][ji]), .den(lsum[ri]),
        .busy(div_busy), .done(div_done), .result(div_result)
    );
    logic out_nan;
    assign out_nan   = row_nan[ri] || col_nan[ri][cbi];
    assign div_start = (state == S_DIV) && !out_nan && !div_busy;

    // ---------------------------------------------------------------- handshakes
    assign q_ready   = (state == S_LOADQ);
    assign kv_ready  = (state == S_LOADKV);
    assign out_valid = (state == S_OUT);
    assign out_last  = (r == nq - 1'b1);
    always @*
        for (int i = 0; i < D; i++) out_data[i*16 +: 16] = outbuf[i];

    logic q_nan_row;
    always @* begin
        q_nan_row = 1'b0;
        for (int i = 0; i < NB; i++) q_nan_row = q_nan_row | (q_scales[i*8 +: 8] == 8'hff);
    end

    logic kv_end;    // the accepted key ends the tile
    logic kv_seq_end;
    assign kv_seq_end = kv_last || (base + KW'(s) == KW'(MAXLEN - 1));
    assign kv_end     = kv_seq_end || (s == TILE_M1);

    logic last_key, last_col, last_row;
    assign last_key = (s == ntile - 1'b1);
    assign last_col = (j == D_M1);
    assign last_row = (r == nq - 1'b1);

    // ---------------------------------------------------------------- control
    always_ff @(posedge clk) begin
        if (rst) begin
            state <= S_LOADQ;
            r <= '0; s <= '0; b <= '0; j <= '0;
            nq <= '0; base <= '0; ntile <= '0; seq_last <= 1'b0;
            causal <= 1'b0; offset <= '0; sacc <= '0; pf_a <= '0; xi_a <= '0;
        end else begin
            case (state)
            S_LOADQ: if (q_valid) begin
                qbuf[ri]   <= q_codes;
                qscale[ri] <= q_scales;
                if (r == 0) begin
                    causal <= q_causal;
                    offset <= q_offset;
                end
                if (q_last || r == QROWS_M1) begin
                    nq <= r + 1'b1;
                    r  <= '0;
                    s  <= '0;
                    base <= '0;
                    state <= S_LOADKV;
                    for (int i = 0; i < QROWS; i++) begin
                        m_ok[i]    <= 1'b0;
                        lsum[i]    <= '0;
                        col_nan[i] <= '0;
                        row_nan[i] <= (RW'(i) == ri) ? q_nan_row : row_nan[i];
                        for (int c = 0; c < D; c++) acc[i][c] <= '0;
                    end
                end else begin
                    row_nan[ri] <= q_nan_row;
                    r <= r + 1'b1;
                end
            end

            S_LOADKV: if (kv_valid) begin
                kbuf[si]   <= kv_k_codes;
                kscale[si] <= kv_k_scales;
                vbuf[si]   <= kv_v_codes;
                vscale[si] <= kv_v_scales;
                if (kv_end) begin
                    ntile    <= s + 1'b1;
                    seq_last <= kv_seq_end;
                    s <= '0; r <= '0; b <= '0; sacc <= '0;
                    for (int i = 0; i < QROWS; i++) tmax_ok[i] <= 1'b0;
                    state <= S_SCORE;
                end else
                    s <= s + 1'b1;
            end

            S_SCORE: begin
                if (b != NB_M1) begin
                    sacc <= s_sum;
                    b <= b + 1'b1;
                end else begin
                    sacc <= '0;
                    b <= '0;
                    tbuf[ri][si]   <= t_new;
                    visbuf[ri][si] <= visible;
                    if (visible) begin
                        if (!tmax_ok[ri] || t_new > tmax[ri]) tmax[ri] <= t_new;
                        tmax_ok[ri] <= 1'b1;
                        if (k_nan_key) row_nan[ri] <= 1'b1;
                        col_nan[ri] <= col_nan[ri] | v_nan_blocks;
                    end
                    if (last_key) begin
                        s <= '0;
                        if (last_row) begin
                            r <= '0;
                            state <= S_ROW;
                        end else
                            r <= r + 1'b1;
                    end else
                        s <= s + 1'b1;
                end
            end

            S_ROW: begin
                s <= '0;
                j <= '0;
                if (!tmax_ok[ri]) begin                 // nothing visible in this tile
                    if (last_row) begin
                        r <= '0;
                        state <= seq_last ? S_DIV : S_LOADKV;
                        base  <= base + KW'(ntile);
                    end else
                        r <= r + 1'b1;
                end else begin
                    m[ri]    <= m_new;
                    m_ok[ri] <= 1'b1;
                    if (m_ok[ri] && m_new != m[ri]) begin
                        pf_a <= pf;
                        xi_a <= xi;
                        state <= S_RESCALE;
                    end else
                        state <= S_PV;
                end
            end

            S_RESCALE: begin
                acc[ri][ji] <= o_rescaled;
                if (j == 0) lsum[ri] <= l_rescaled;
                j <= j + 1'b1;
                if (last_col) begin
                    j <= '0;
                    state <= S_PV;
                end
            end

            S_PV: begin
                if (visbuf[ri][si]) begin
                    acc[ri][ji] <= o_added;
                    if (j == 0) lsum[ri] <= lsum[ri] + LW'(p);
                    j <= j + 1'b1;
                end
                if (!visbuf[ri][si] || last_col) begin
                    j <= '0;
                    s <= s + 1'b1;
                    if (last_key) begin
                        s <= '0;
                        if (last_row) begin
                            r <= '0;
                            state <= seq_last ? S_DIV : S_LOADKV;
                            base  <= base + KW'(ntile);
                        end else begin
                            r <= r + 1'b1;
                            state <= S_ROW;
                        end
                    end
                end
            end

            S_DIV: begin                                // start one element (or write NaN)
                if (out_nan) begin
                    outbuf[ji] <= 16'h7fc0;
                    j <= j + 1'b1;
                    if (last_col) begin
                        j <= '0;
                        state <= S_OUT;
                    end
                end else
                    state <= S_DIVWAIT;
            end

            S_DIVWAIT: if (div_done) begin
                outbuf[ji] <= div_result;
                j <= j + 1'b1;
                state <= S_DIV;
                if (last_col) begin
                    j <= '0;
                    state <= S_OUT;
                end
            end

            S_OUT: if (out_ready) begin
                if (last_row) begin
                    r <= '0;
                    state <= S_LOADQ;
                end else begin
                    r <= r + 1'b1;
                    state <= S_DIV;
                end
            end

            default: state <= S_LOADQ;
            endcase
        end
    end
endmodule
