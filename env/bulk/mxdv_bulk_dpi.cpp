// DPI side of the mxdv bulk harness (env/bulk/harness_gen.py): each channel is a buffer of
// 32-bit words owned by Python (a numpy array bound with mxdv_bulk_bind through ctypes; the
// simulator is linked with -rdynamic so Python finds these symbols). The harness reads
// stimulus, schedule and parameters with mxdv_rd and writes captures with mxdv_wr; reads
// beyond a channel's capacity return 0 and writes beyond it are dropped (the harness checks
// capacities itself and ends the batch before it would overflow).
#include <cstdint>

#define MXDV_MAX_CHANNELS 64

namespace {
struct Channel {
    uint32_t* data = nullptr;
    int64_t capacity = 0;
};
Channel channels[MXDV_MAX_CHANNELS];
}  // namespace

extern "C" {

int mxdv_bulk_max_channels() { return MXDV_MAX_CHANNELS; }

int mxdv_bulk_bind(int ch, uint32_t* data, int64_t capacity) {
    if (ch < 0 || ch >= MXDV_MAX_CHANNELS) return -1;
    channels[ch].data = data;
    channels[ch].capacity = capacity;
    return 0;
}

int mxdv_rd(int ch, int idx) {
    if (ch < 0 || ch >= MXDV_MAX_CHANNELS || idx < 0 || idx >= channels[ch].capacity) return 0;
    return static_cast<int>(channels[ch].data[idx]);
}

void mxdv_wr(int ch, int idx, int value) {
    if (ch < 0 || ch >= MXDV_MAX_CHANNELS || idx < 0 || idx >= channels[ch].capacity) return;
    channels[ch].data[idx] = static_cast<uint32_t>(value);
}

}  // extern "C"
