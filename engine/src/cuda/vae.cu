// Kernels of the Wan VAE's CUDA path (engine/src/wan/vae): the causal convolutions' input, and
// the RMS norm + SiLU before them. Compiled at run time by NVRTC; no headers.
//
// The causal 3-D convolution runs as one 2-D convolution: its input
// is the live time taps' frames side by side on the channel axis. These kernels build that
// input channels-last in one pass, straight from the frame-major activations and the
// convolution's cached history, for cuDNN's tensor-core convolutions (which read NHWC):
// without them it takes a concatenation of the history, one of the taps, and a transpose.
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

// The VAE's RMS norm over the channels then SiLU, one pass: each thread takes one pixel of one
// frame, sums the squares of its C channels, then writes silu(x · γ' / max(‖x‖, 1e-12)) with
// γ' = γ·√C (f32, given). x is [B, T, C, H, W] through any strides (frame-major, or the
// channels-last buffer a convolution leaves behind a permuted view); the result is [B, T, C,
// H, W] contiguous. f32 math; bf16 rounded to nearest even.

__device__ __forceinline__ float load_f32(float v) { return v; }
__device__ __forceinline__ float store_f32(float v) { return v; }
__device__ __forceinline__ float load_bf16(bf16_t v) { return __uint_as_float(((unsigned)v) << 16); }
__device__ __forceinline__ bf16_t store_bf16(float v) {
    bf16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(v));
    return r;
}

#define RMS_NORM_SILU(NAME, T, LOAD, STORE)                                                    \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                    \
        const T* x, long long sb, long long st, long long sc, long long sy, long long sx,      \
        const float* gamma, T* out, int t_len, int channels, int height, int width,            \
        long long pixels) {                                                                    \
        const long long i = (long long)blockIdx.x * 256 + threadIdx.x;                         \
        if (i >= pixels) return;                                                               \
        const int px = (int)(i % width);                                                       \
        const long long r = i / width;                                                         \
        const int py = (int)(r % height);                                                      \
        const long long f = r / height;                                                        \
        const long long b = f / t_len, t = f % t_len;                                          \
        const T* src = x + b * sb + t * st + py * sy + px * sx;                                \
        float ss = 0.0f;                                                                       \
        for (int c = 0; c < channels; c++) {                                                   \
            const float v = LOAD(src[c * sc]);                                                 \
            ss += v * v;                                                                       \
        }                                                                                      \
        const float inv = 1.0f / fmaxf(sqrtf(ss), 1e-12f);                                     \
        const long long plane = (long long)height * width;                                     \
        T* dst = out + f * channels * plane + (long long)py * width + px;                      \
        for (int c = 0; c < channels; c++) {                                                   \
            const float v = LOAD(src[c * sc]) * inv * gamma[c];                                \
            dst[c * plane] = STORE(v / (1.0f + expf(-v)));                                     \
        }                                                                                      \
    }

RMS_NORM_SILU(rms_norm_silu_channels_f32, float, load_f32, store_f32)
RMS_NORM_SILU(rms_norm_silu_channels_bf16, bf16_t, load_bf16, store_bf16)

// The residual blocks' `y + h`, written frame-major ([B, T, C, H, W] contiguous, what the RMS
// norm and the causal taps read best). Each operand comes through its own strides: a
// convolution's channels-last result (channel stride 1), or a frame-major tensor. One block
// takes a 32-channel × 32-pixel tile of one frame: an operand with channel stride 1 is read
// along the channels, any other along the pixels (both coalesced), summed in shared memory in
// f32, and written along the pixels. bf16 rounded to nearest even, as burn's bf16 add.

#define RESIDUAL_TILE_LOAD(SRC, SB, ST, SC, SY, SX, LOAD, FIRST)                                \
    {                                                                                          \
        const T* base = SRC + b * SB + t * ST;                                                 \
        if (SC == 1) {                                                                         \
            for (int i = ty; i < TILE; i += ROWS) {                                            \
                const int p = p0 + i, c = c0 + tx;                                             \
                float v = 0.0f;                                                                \
                if (p < pixels && c < channels)                                                \
                    v = LOAD(base[c + (long long)(p / width) * SY + (long long)(p % width) * SX]); \
                if (FIRST) tile[tx][i] = v; else tile[tx][i] += v;                             \
            }                                                                                  \
        } else {                                                                               \
            for (int i = ty; i < TILE; i += ROWS) {                                            \
                const int c = c0 + i, p = p0 + tx;                                             \
                float v = 0.0f;                                                                \
                if (p < pixels && c < channels)                                                \
                    v = LOAD(base[(long long)c * SC + (long long)(p / width) * SY +            \
                                  (long long)(p % width) * SX]);                               \
                if (FIRST) tile[i][tx] = v; else tile[i][tx] += v;                             \
            }                                                                                  \
        }                                                                                      \
        __syncthreads();                                                                       \
    }

#define RESIDUAL_ADD(NAME, TY, LOAD, STORE)                                                    \
    extern "C" __global__ void __launch_bounds__(TILE * ROWS) NAME(                            \
        const TY* y, long long yb, long long yt, long long yc, long long yy, long long yx,     \
        const TY* h, long long hb, long long ht, long long hc, long long hy, long long hx,     \
        TY* out, int t_len, int channels, int width, int pixels) {                             \
        typedef TY T;                                                                          \
        __shared__ float tile[TILE][TILE + 1];                                                 \
        const int p0 = blockIdx.x * TILE, c0 = blockIdx.y * TILE;                              \
        const long long f = blockIdx.z;                                                        \
        const long long t = f % t_len, b = f / t_len;                                          \
        const int tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;                            \
        RESIDUAL_TILE_LOAD(y, yb, yt, yc, yy, yx, LOAD, 1)                                     \
        RESIDUAL_TILE_LOAD(h, hb, ht, hc, hy, hx, LOAD, 0)                                     \
        T* dst = out + f * channels * (long long)pixels;                                       \
        for (int i = ty; i < TILE; i += ROWS) {                                                \
            const int c = c0 + i, p = p0 + tx;                                                 \
            if (p < pixels && c < channels) dst[(long long)c * pixels + p] = STORE(tile[i][tx]); \
        }                                                                                      \
    }

RESIDUAL_ADD(residual_add_f32, float, load_f32, store_f32)
RESIDUAL_ADD(residual_add_bf16, bf16_t, load_bf16, store_bf16)
