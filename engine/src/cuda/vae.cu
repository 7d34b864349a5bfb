// The Wan VAE's causal 3-D convolution as one 2-D convolution (engine/src/wan/vae): its input
// is the live time taps' frames side by side on the channel axis. These kernels build that
// input channels-last in one pass, straight from the frame-major activations and the
// convolution's cached history, for cuDNN's tensor-core convolutions (which read NHWC):
// without them it takes a concatenation of the history, one of the taps, and a transpose.
// Compiled at run time by NVRTC; no headers.
//
// Frames, in order: `zeros` zero frames, the `nh` history frames, the input's frames. Output
// frame t's tap k (k < live) is frame t·stride_t + first + k of that sequence, written to
// channels k·C … k·C + C − 1 of out[(b·t_out + t), y, x, ·] ([B·t_out, H, W, live·C]).
// Sources are [B, T, C, H, W] through their batch, frame and channel strides (elements), each
// frame's H×W plane contiguous.
//
// One block moves a 32-channel × 32-pixel tile of one (b, t, k) frame through shared memory:
// reads along the pixels, writes along the channels, both coalesced.

#define TILE 32
#define ROWS 8

#define CAUSAL_TAPS_NHWC(NAME, T)                                                              \
    extern "C" __global__ void __launch_bounds__(TILE * ROWS) NAME(                            \
        const T* hist, long long hb, long long ht, long long hc, int nh, const T* x,          \
        long long xb, long long xt, long long xc, T* out, int zeros, int first, int live,      \
        int stride_t, int t_out, int channels, int pixels) {                                   \
        __shared__ T tile[TILE][TILE + 1];                                                     \
        const int p0 = blockIdx.x * TILE, c0 = blockIdx.y * TILE;                              \
        const int k = blockIdx.z % live;                                                       \
        const int bt = blockIdx.z / live;                                                      \
        const int t = bt % t_out, b = bt / t_out;                                              \
        const int f = t * stride_t + first + k;                                                \
        const T* src = 0;                                                                      \
        long long cs = 0;                                                                      \
        if (f >= zeros && f - zeros < nh) {                                                    \
            src = hist + b * hb + (long long)(f - zeros) * ht;                                 \
            cs = hc;                                                                           \
        } else if (f >= zeros + nh) {                                                          \
            src = x + b * xb + (long long)(f - zeros - nh) * xt;                               \
            cs = xc;                                                                           \
        }                                                                                      \
        const int tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;                            \
        for (int i = ty; i < TILE; i += ROWS) {                                                \
            const int c = c0 + i, p = p0 + tx;                                                 \
            T v = (T)0;                                                                        \
            if (src && c < channels && p < pixels) v = src[c * cs + p];                        \
            tile[i][tx] = v;                                                                   \
        }                                                                                      \
        __syncthreads();                                                                       \
        const long long width = (long long)live * channels;                                    \
        T* dst = out + (long long)bt * pixels * width + (long long)k * channels;                \
        for (int i = ty; i < TILE; i += ROWS) {                                                \
            const int p = p0 + i, c = c0 + tx;                                                 \
            if (p < pixels && c < channels) dst[p * width + c] = tile[tx][i];                  \
        }                                                                                      \
    }

typedef unsigned short bf16_t;

CAUSAL_TAPS_NHWC(causal_taps_nhwc_f32, float)
CAUSAL_TAPS_NHWC(causal_taps_nhwc_bf16, bf16_t)
