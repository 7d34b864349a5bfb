// The DiT's row-wise element-wise work, fused: RMSNorm (q/k across heads), LayerNorm with
// the per-frame modulation `LN(x)·(1 + scale) + shift` or with its own affine `LN(x)·w + b`,
// and the gated residual `x + y·gate`. bf16 storage, f32 math; one block per row of D elements,
// rows contiguous. Each kernel comes twice: for any D (256 threads striding over the row, which
// they read again for each pass), and `_v8` for D a multiple of 8 up to 8192 with 16-byte
// aligned rows (each thread holds 8 elements in registers: one 16-byte load and store each,
// the statistics from the registers; blockDim.x = D / 8 rounded up to a warp). Compiled at run
// time by NVRTC (sm_80 or newer), no headers.

typedef unsigned short bf16_t;
typedef unsigned int u32;

__device__ __forceinline__ float bf16_to_f32(bf16_t x) { return __uint_as_float(u32(x) << 16); }

__device__ __forceinline__ bf16_t f32_to_bf16(float x) {
    bf16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
}

// The sum of `v` over the block (blockDim.x a multiple of 32, at most 1024), on every thread.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    __syncthreads();  // `partial` may still be read by an earlier call
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffff, v, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : 0.f;
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffff, v, o);
    return v;
}

// 1 / sqrt(mean(x²) + eps) over the row x[0..d), on every thread of the block.
__device__ __forceinline__ float inv_rms(const bf16_t* __restrict__ x, int d, float eps) {
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float v = bf16_to_f32(x[i]);
        ss += v * v;
    }
    return 1.f / sqrtf(block_sum(ss) / d + eps);
}

// y = x / sqrt(mean(x²) + eps) · w
extern "C" __global__ void rms_norm_bf16(const bf16_t* __restrict__ x, const float* __restrict__ w,
                                         bf16_t* __restrict__ y, int d, float eps) {
    const long long row = blockIdx.x;
    x += row * d;
    y += row * d;
    const float inv = inv_rms(x, d, eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) y[i] = f32_to_bf16(bf16_to_f32(x[i]) * inv * w[i]);
}

// The mean of the row x[0..d) and 1 / sqrt(var + eps), on every thread of the block.
__device__ __forceinline__ float2 mean_inv_std(const bf16_t* __restrict__ x, int d, float eps) {
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += bf16_to_f32(x[i]);
    const float mean = block_sum(s) / d;
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float c = bf16_to_f32(x[i]) - mean;
        ss += c * c;
    }
    return make_float2(mean, 1.f / sqrtf(block_sum(ss) / d + eps));
}

// y = (x − mean) / sqrt(var + eps) · w + b (w, b f32).
extern "C" __global__ void layer_norm_affine_bf16(const bf16_t* __restrict__ x,
                                                  const float* __restrict__ w,
                                                  const float* __restrict__ b,
                                                  bf16_t* __restrict__ y, int d, float eps) {
    const long long row = blockIdx.x;
    x += row * d;
    y += row * d;
    const float2 stats = mean_inv_std(x, d, eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        y[i] = f32_to_bf16((bf16_to_f32(x[i]) - stats.x) * stats.y * w[i] + b[i]);
}

// y = (x − mean) / sqrt(var + eps) · (1 + scale) + shift, with shift and scale the rows
// `i_shift` and `i_scale` of the modulation m [B, F, 6, D] (f32) for this token's batch row
// and frame (tokens of a batch row: `tokens`; of a frame: `per_frame`).
extern "C" __global__ void layer_norm_modulate_bf16(const bf16_t* __restrict__ x,
                                                    const float* __restrict__ m,
                                                    bf16_t* __restrict__ y, int d, int tokens,
                                                    int per_frame, int frames, int i_shift,
                                                    int i_scale, float eps) {
    const long long row = blockIdx.x;
    const int b = int(row / tokens), f = int(row % tokens) / per_frame;
    const float* mrow = m + ((long long)(b * frames + f) * 6) * d;
    const float* shift = mrow + (long long)i_shift * d;
    const float* scale = mrow + (long long)i_scale * d;
    x += row * d;
    y += row * d;
    const float2 stats = mean_inv_std(x, d, eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        const float n = (bf16_to_f32(x[i]) - stats.x) * stats.y;
        y[i] = f32_to_bf16(n * (scale[i] + 1.f) + shift[i]);
    }
}

// out = x + y · gate, gate the row `i_gate` of the modulation m [B, F, 6, D] (f32).
extern "C" __global__ void gated_add_bf16(const bf16_t* __restrict__ x, const bf16_t* __restrict__ y,
                                          const float* __restrict__ m, bf16_t* __restrict__ out,
                                          int d, int tokens, int per_frame, int frames,
                                          int i_gate) {
    const long long row = blockIdx.x;
    const int b = int(row / tokens), f = int(row % tokens) / per_frame;
    const float* gate = m + ((long long)(b * frames + f) * 6 + i_gate) * d;
    x += row * d;
    y += row * d;
    out += row * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        out[i] = f32_to_bf16(bf16_to_f32(x[i]) + bf16_to_f32(y[i]) * gate[i]);
}

// RMSNorm across the heads, then Wan's rotary embedding on each head's interleaved pairs:
// n = x / sqrt(mean(x²) + eps) · w, then (n[2p], n[2p+1]) turned by the angle whose cos and
// sin are at [row's batch | 0, token, pair p mod d/2] of cos/sin [B|1, L, d/2] (f32).
// q and k of a self-attention layer go through this once each instead of an RMSNorm kernel and
// the rotation's cast, split, multiply, stack and cast kernels. `d`: the row (every head);
// `half_head`: half a head's width; `ld`: the distance between x's rows (d, or more for a view of
// a wider tensor such as the joined q|k|v projection).
extern "C" __global__ void rms_norm_rope_bf16(const bf16_t* __restrict__ x,
                                              const float* __restrict__ w,
                                              const float* __restrict__ cos_t,
                                              const float* __restrict__ sin_t,
                                              bf16_t* __restrict__ y, int d, int tokens,
                                              int half_head, int batched_angles, float eps,
                                              long long ld) {
    const long long row = blockIdx.x;
    const long long angle_row = batched_angles ? row : row % tokens;
    cos_t += angle_row * half_head;
    sin_t += angle_row * half_head;
    x += row * ld;
    y += row * d;
    const float inv = inv_rms(x, d, eps);
    for (int p = threadIdx.x; p < d / 2; p += blockDim.x) {
        const float re = bf16_to_f32(x[2 * p]) * inv * w[2 * p];
        const float im = bf16_to_f32(x[2 * p + 1]) * inv * w[2 * p + 1];
        const int j = p % half_head;
        const float c = cos_t[j], s = sin_t[j];
        y[2 * p] = f32_to_bf16(re * c - im * s);
        y[2 * p + 1] = f32_to_bf16(re * s + im * c);
    }
}

// ---- The `_v8` forms: thread t owns elements [8t, 8t + 8) of its row (none when 8t ≥ D). ----

// 8 bf16 at p (16-byte aligned) as f32.
__device__ __forceinline__ void load8(const bf16_t* __restrict__ p, float v[8]) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        v[2 * k] = __uint_as_float(w[k] << 16);
        v[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
    }
}

// 8 f32 at p (16-byte aligned).
__device__ __forceinline__ void load8f(const float* __restrict__ p, float v[8]) {
    const float4 a = *reinterpret_cast<const float4*>(p);
    const float4 b = *reinterpret_cast<const float4*>(p + 4);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
    v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

// v rounded to bf16 into p (16-byte aligned).
__device__ __forceinline__ void store8(bf16_t* __restrict__ p, const float v[8]) {
    u32 w[4];
#pragma unroll
    for (int k = 0; k < 4; k++) w[k] = u32(f32_to_bf16(v[2 * k])) | (u32(f32_to_bf16(v[2 * k + 1])) << 16);
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
}

// 1 / sqrt(mean(v²) + eps) over the row whose 8-element pieces the block's threads hold.
__device__ __forceinline__ float inv_rms8(const float v[8], int d, float eps) {
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < 8; k++) ss += v[k] * v[k];
    return 1.f / sqrtf(block_sum(ss) / d + eps);
}

// The row's mean and 1 / sqrt(var + eps); `on`: whether this thread holds a piece.
__device__ __forceinline__ float2 mean_inv_std8(const float v[8], bool on, int d, float eps) {
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < 8; k++) s += v[k];
    const float mean = block_sum(s) / d;
    float ss = 0.f;
    if (on) {
#pragma unroll
        for (int k = 0; k < 8; k++) ss += (v[k] - mean) * (v[k] - mean);
    }
    return make_float2(mean, 1.f / sqrtf(block_sum(ss) / d + eps));
}

extern "C" __global__ void rms_norm_bf16_v8(const bf16_t* __restrict__ x, const float* __restrict__ w,
                                            bf16_t* __restrict__ y, int d, float eps) {
    const long long row = blockIdx.x;
    const int i = threadIdx.x * 8;
    const bool on = i < d;
    float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (on) load8(x + row * d + i, v);
    const float inv = inv_rms8(v, d, eps);
    if (!on) return;
    float g[8];
    load8f(w + i, g);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = v[k] * inv * g[k];
    store8(y + row * d + i, v);
}

extern "C" __global__ void layer_norm_affine_bf16_v8(const bf16_t* __restrict__ x,
                                                     const float* __restrict__ w,
                                                     const float* __restrict__ b,
                                                     bf16_t* __restrict__ y, int d, float eps) {
    const long long row = blockIdx.x;
    const int i = threadIdx.x * 8;
    const bool on = i < d;
    float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (on) load8(x + row * d + i, v);
    const float2 stats = mean_inv_std8(v, on, d, eps);
    if (!on) return;
    float g[8], c[8];
    load8f(w + i, g);
    load8f(b + i, c);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = (v[k] - stats.x) * stats.y * g[k] + c[k];
    store8(y + row * d + i, v);
}

extern "C" __global__ void layer_norm_modulate_bf16_v8(const bf16_t* __restrict__ x,
                                                       const float* __restrict__ m,
                                                       bf16_t* __restrict__ y, int d, int tokens,
                                                       int per_frame, int frames, int i_shift,
                                                       int i_scale, float eps) {
    const long long row = blockIdx.x;
    const int b = int(row / tokens), f = int(row % tokens) / per_frame;
    const float* mrow = m + ((long long)(b * frames + f) * 6) * d;
    const int i = threadIdx.x * 8;
    const bool on = i < d;
    float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (on) load8(x + row * d + i, v);
    const float2 stats = mean_inv_std8(v, on, d, eps);
    if (!on) return;
    float shift[8], scale[8];
    load8f(mrow + (long long)i_shift * d + i, shift);
    load8f(mrow + (long long)i_scale * d + i, scale);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = (v[k] - stats.x) * stats.y * (scale[k] + 1.f) + shift[k];
    store8(y + row * d + i, v);
}

extern "C" __global__ void gated_add_bf16_v8(const bf16_t* __restrict__ x, const bf16_t* __restrict__ y,
                                             const float* __restrict__ m, bf16_t* __restrict__ out,
                                             int d, int tokens, int per_frame, int frames,
                                             int i_gate) {
    const long long row = blockIdx.x;
    const int i = threadIdx.x * 8;
    if (i >= d) return;
    const int b = int(row / tokens), f = int(row % tokens) / per_frame;
    float a[8], c[8], g[8];
    load8(x + row * d + i, a);
    load8(y + row * d + i, c);
    load8f(m + ((long long)(b * frames + f) * 6 + i_gate) * d + i, g);
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] = a[k] + c[k] * g[k];
    store8(out + row * d + i, a);
}

// Also needs half_head a multiple of 4 (a thread's four pairs turn by four consecutive angles
// of one head) and ld a multiple of 8.
extern "C" __global__ void rms_norm_rope_bf16_v8(const bf16_t* __restrict__ x,
                                                 const float* __restrict__ w,
                                                 const float* __restrict__ cos_t,
                                                 const float* __restrict__ sin_t,
                                                 bf16_t* __restrict__ y, int d, int tokens,
                                                 int half_head, int batched_angles, float eps,
                                                 long long ld) {
    const long long row = blockIdx.x;
    const long long angle_row = batched_angles ? row : row % tokens;
    const int i = threadIdx.x * 8;
    const bool on = i < d;
    float v[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (on) load8(x + row * ld + i, v);
    const float inv = inv_rms8(v, d, eps);
    if (!on) return;
    float g[8];
    load8f(w + i, g);
    const int j = (i / 2) % half_head;
    const float4 c = *reinterpret_cast<const float4*>(cos_t + angle_row * half_head + j);
    const float4 s = *reinterpret_cast<const float4*>(sin_t + angle_row * half_head + j);
    const float cs[4] = {c.x, c.y, c.z, c.w}, sn[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float re = v[2 * k] * inv * g[2 * k];
        const float im = v[2 * k + 1] * inv * g[2 * k + 1];
        v[2 * k] = re * cs[k] - im * sn[k];
        v[2 * k + 1] = re * sn[k] + im * cs[k];
    }
    store8(y + row * d + i, v);
}
