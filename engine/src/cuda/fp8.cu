// The input side of the fp8 GEMM (`gemm::linear_fp8`): the tensor's largest magnitude, then
// every element scaled by 448 / max and rounded to float8 e4m3fn (nearest, ties to even,
// saturating), the scale `max / 448` written where cuBLASLt reads it. The rounding is
// `engine::wan::quant::e4m3fn_encode` bit for bit (the CPU path and the tests use that one).
// Compiled at run time by NVRTC, no headers; plain C, so it also builds for sm_80.

typedef unsigned short bf16_t;
typedef unsigned int u32;

__device__ __forceinline__ float bf16_to_f32(bf16_t x) { return __uint_as_float(u32(x) << 16); }

// max |x[i]| over n elements, folded into *amax (zeroed before the launch) with an integer
// atomicMax: non-negative floats order as their bit patterns.
extern "C" __global__ void absmax_bf16(const bf16_t* __restrict__ x, long long n,
                                       float* __restrict__ amax) {
    float m = 0.f;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        m = fmaxf(m, fabsf(bf16_to_f32(x[i])));
#pragma unroll
    for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
    if (threadIdx.x % 32 == 0) atomicMax(reinterpret_cast<u32*>(amax), __float_as_uint(m));
}

__device__ __forceinline__ unsigned char e4m3fn_encode(float v) {
    if (isnan(v)) return 0x7f;
    const unsigned char sign = signbit(v) ? 0x80 : 0;
    const float a = fminf(fabsf(v), 448.f);
    // Subnormal codes m·2⁻⁹ below 2⁻⁶ (code 8 is 2⁻⁶ itself).
    if (a < 0.015625f) return sign | (unsigned char)__float2int_rn(a * 512.f);
    int e = int((__float_as_uint(a) >> 23) & 0xff) - 127;
    const float inv_step = __uint_as_float(u32(127 - (e - 3)) << 23);  // 2^-(e-3), exact
    int r = __float2int_rn(a * inv_step);                               // 8..16, ties to even
    if (r == 16) {
        e += 1;
        r = 8;
    }
    return sign | (unsigned char)((e + 7) << 3) | (unsigned char)(r - 8);
}

// q[i] = e4m3fn(x[i] / s) with s = max(*amax, 1e-12) / 448, written to *scale.
extern "C" __global__ void quantize_e4m3fn_bf16(const bf16_t* __restrict__ x, long long n,
                                                const float* __restrict__ amax,
                                                float* __restrict__ scale,
                                                unsigned char* __restrict__ q) {
    const float s = fmaxf(*amax, 1e-12f) / 448.f;
    const float inv = 1.f / s;
    if (blockIdx.x == 0 && threadIdx.x == 0) *scale = s;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        q[i] = e4m3fn_encode(bf16_to_f32(x[i]) * inv);
}
