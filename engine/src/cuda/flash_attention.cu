// Fused scaled-dot-product attention for head_dim 128, bf16 in and out, f32 softmax and
// accumulation (FlashAttention-2's forward: online softmax over key tiles, the scores never
// leave registers). Compiled at run time by NVRTC for the GPU's architecture (sm_80 or newer:
// bf16 mma.sync); no headers, so it needs nothing of the CUDA toolkit beyond NVRTC.
//
// One block of 4 warps handles 64 queries of one (batch, head); each warp owns 16 of them.
// Per key tile of 64: K and V are staged in shared memory, S = Q·Kᵀ by m16n8k16 tensor-core
// MMAs (Q's fragments stay in registers for the whole loop), the running max and sum are
// updated, P = exp2(S·scale·log2e − m) goes straight from the accumulators into the A
// fragments of O += P·V.
//
// Three kernels with the same arguments and results: `flash_attention_d128` stages K and V
// with plain loads and reads fragments element by element (the reference),
// `flash_attention_d128_pipelined` copies the next K (V) tile with cp.async while the current
// V (next S) is being used and reads fragments with ldmatrix (.trans for V), and
// `flash_attention_d128_wide` (the default, at the end) gives each warp 32 queries.
//
// Every tensor is addressed through (batch, head, row) strides in elements with the last
// dimension contiguous, so strided views (a [B, L, H, d] buffer seen as [B, H, L, d], a
// cache's span) are read in place. The keys may be two spans of one buffer (a KV cache's sink
// and its recent window): key j is row `off0 + j` below `split`, `off1 + j − split` from
// there. Rows must start on 16-byte boundaries (strides and base pointers multiples of 8
// elements): the caller checks.

typedef unsigned short bf16_t;
typedef unsigned int u32;

#define BLOCK_M 64
#define BLOCK_N 64
#define HEAD_DIM 128
// Shared-memory row length in elements: 8 of padding make the fragment loads conflict-free.
#define SROW (HEAD_DIM + 8)
#define NEG_INF (-__int_as_float(0x7f800000))

__device__ __forceinline__ u32 pack_bf16(float lo, float hi) {
    u32 r;
    // cvt packs its first source into the upper half.
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies BLOCK_N rows (of HEAD_DIM elements, `stride` apart) into shared memory, zeros past
// `valid`; 16 bytes per thread per step.
__device__ __forceinline__ void load_tile(bf16_t* smem, const bf16_t* src, long long stride,
                                          int valid) {
    const int chunks = HEAD_DIM / 8;  // 16-byte chunks per row
    for (int i = threadIdx.x; i < BLOCK_N * chunks; i += blockDim.x) {
        const int r = i / chunks, c = (i % chunks) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < valid) v = *reinterpret_cast<const uint4*>(src + r * stride + c);
        *reinterpret_cast<uint4*>(smem + r * SROW + c) = v;
    }
}

// Keys (or values) k0..k0+63 of a head into shared memory through the two-span mapping,
// zeros past `lk`.
__device__ __forceinline__ void load_keys(bf16_t* smem, const bf16_t* src, long long stride,
                                          int k0, int lk, int split, int off0, int off1) {
    const int chunks = HEAD_DIM / 8;
    for (int i = threadIdx.x; i < BLOCK_N * chunks; i += blockDim.x) {
        const int r = i / chunks, c = (i % chunks) * 8, j = k0 + r;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (j < lk) {
            const long long row = j < split ? off0 + j : off1 + (j - split);
            v = *reinterpret_cast<const uint4*>(src + row * stride + c);
        }
        *reinterpret_cast<uint4*>(smem + r * SROW + c) = v;
    }
}

// Loads this warp's 16 query rows (staged in `sq`) as A fragments for the 8 steps of 16 dims.
__device__ __forceinline__ void q_fragments(u32 (&qa)[HEAD_DIM / 16][4], const bf16_t* sq,
                                            int warp, int g, int t) {
    const bf16_t* r0 = sq + (warp * 16 + g) * SROW + t * 2;
    const bf16_t* r1 = r0 + 8 * SROW;
#pragma unroll
    for (int ks = 0; ks < HEAD_DIM / 16; ++ks) {
        qa[ks][0] = *reinterpret_cast<const u32*>(r0 + ks * 16);
        qa[ks][1] = *reinterpret_cast<const u32*>(r1 + ks * 16);
        qa[ks][2] = *reinterpret_cast<const u32*>(r0 + ks * 16 + 8);
        qa[ks][3] = *reinterpret_cast<const u32*>(r1 + ks * 16 + 8);
    }
}

// The online-softmax step for one tile of scores `s` (keys k0..k0+N−1): scales into the log2
// domain, hides keys past `lk`, updates the rows' running max (m0, m1) and partial sums
// (l0, l1), rescales the output accumulators and leaves P (bf16) as the A fragments of the
// P·V product.
template <int N>
__device__ __forceinline__ void softmax_step(float (&s)[N / 8][4], int k0, int lk, int t,
                                             float scale_log2, float& m0, float& m1,
                                             float& l0, float& l1,
                                             float (&acc)[HEAD_DIM / 8][4],
                                             u32 (&pa)[N / 16][4]) {
    float mx0 = m0, mx1 = m1;
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const bool valid = k0 + j * 8 + t * 2 + i < lk;
            s[j][i] = valid ? s[j][i] * scale_log2 : NEG_INF;
            s[j][2 + i] = valid ? s[j][2 + i] * scale_log2 : NEG_INF;
            mx0 = fmaxf(mx0, s[j][i]);
            mx1 = fmaxf(mx1, s[j][2 + i]);
        }
    }
    // The four threads of a row group hold its N columns between them.
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 2));
    // A row with every key so far hidden keeps 0 as its reference (exp2(−inf) = 0).
    const float ref0 = mx0 == NEG_INF ? 0.f : mx0, ref1 = mx1 == NEG_INF ? 0.f : mx1;
    const float c0 = fast_exp2((m0 == NEG_INF ? ref0 : m0) - ref0);
    const float c1 = fast_exp2((m1 == NEG_INF ? ref1 : m1) - ref1);
    m0 = mx0;
    m1 = mx1;
    l0 *= c0;
    l1 *= c1;
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; ++i) {
        acc[i][0] *= c0;
        acc[i][1] *= c0;
        acc[i][2] *= c1;
        acc[i][3] *= c1;
    }
    // P = exp2(S − m), rounded to bf16 once: the sum counts what the MMA multiplies.
#pragma unroll
    for (int j = 0; j < N / 8; ++j) {
        const float p0 = fast_exp2(s[j][0] - ref0), p1 = fast_exp2(s[j][1] - ref0);
        const float p2 = fast_exp2(s[j][2] - ref1), p3 = fast_exp2(s[j][3] - ref1);
        const u32 lo = pack_bf16(p0, p1), hi = pack_bf16(p2, p3);
        l0 += __uint_as_float(lo << 16) + __uint_as_float(lo & 0xffff0000u);
        l1 += __uint_as_float(hi << 16) + __uint_as_float(hi & 0xffff0000u);
        // Column tile j is keys 8j..8j+7: the low (j even) or high (j odd) half of the 16-key
        // step j/2.
        pa[j / 2][(j % 2) * 2 + 0] = lo;
        pa[j / 2][(j % 2) * 2 + 1] = hi;
    }
}

// O / l for this warp's rows, as bf16 into o (already at this batch and head).
__device__ __forceinline__ void write_out(bf16_t* o, long long o_sl, int lq, int row0, int t,
                                          float l0, float l1,
                                          const float (&acc)[HEAD_DIM / 8][4]) {
    l0 += __shfl_xor_sync(0xffffffff, l0, 1);
    l0 += __shfl_xor_sync(0xffffffff, l0, 2);
    l1 += __shfl_xor_sync(0xffffffff, l1, 1);
    l1 += __shfl_xor_sync(0xffffffff, l1, 2);
    const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    const int row1 = row0 + 8;
    bf16_t* o0 = o + row0 * o_sl + t * 2;
    bf16_t* o1 = o0 + 8 * o_sl;
#pragma unroll
    for (int dn = 0; dn < HEAD_DIM / 8; ++dn) {
        if (row0 < lq)
            *reinterpret_cast<u32*>(o0 + dn * 8) = pack_bf16(acc[dn][0] * inv0, acc[dn][1] * inv0);
        if (row1 < lq)
            *reinterpret_cast<u32*>(o1 + dn * 8) = pack_bf16(acc[dn][2] * inv1, acc[dn][3] * inv1);
    }
}

#define ATTENTION_ARGS                                                                          \
    const bf16_t *__restrict__ q, const bf16_t *__restrict__ k, const bf16_t *__restrict__ v,   \
        bf16_t *__restrict__ o, int heads, int lq, int lk, long long q_sb, long long q_sh,      \
        long long q_sl, long long k_sb, long long k_sh, long long k_sl, long long v_sb,         \
        long long v_sh, long long v_sl, long long o_sb, long long o_sh, long long o_sl,         \
        int split, int off0, int off1, float scale_log2

extern "C" __global__ void __launch_bounds__(128) flash_attention_d128(ATTENTION_ARGS) {
    __shared__ __align__(16) bf16_t sk[BLOCK_N * SROW];
    __shared__ __align__(16) bf16_t sv[BLOCK_N * SROW];

    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BLOCK_M;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;  // mma groupID and thread-in-group
    q += b * q_sb + h * q_sh + q0 * q_sl;
    k += b * k_sb + h * k_sh;
    v += b * v_sb + h * v_sh;

    // This warp's 16 query rows as A fragments, through shared memory (sk).
    load_tile(sk, q, q_sl, lq - q0);
    __syncthreads();
    u32 qa[HEAD_DIM / 16][4];
    q_fragments(qa, sk, warp, g, t);

    float acc[HEAD_DIM / 8][4];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    // Rows g and g + 8: running max (scaled, log2 domain) and this thread's part of the sum.
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f;

    for (int k0 = 0; k0 < lk; k0 += BLOCK_N) {
        __syncthreads();  // every warp is done with the previous tile (and with Q)
        load_keys(sk, k, k_sl, k0, lk, split, off0, off1);
        load_keys(sv, v, v_sl, k0, lk, split, off0, off1);
        __syncthreads();

        // S = Q·Kᵀ: 8 column tiles of 8 keys.
        float s[BLOCK_N / 8][4];
#pragma unroll
        for (int j = 0; j < BLOCK_N / 8; ++j) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
            const bf16_t* kr = sk + (j * 8 + g) * SROW + t * 2;
#pragma unroll
            for (int ks = 0; ks < HEAD_DIM / 16; ++ks) {
                const u32 b0 = *reinterpret_cast<const u32*>(kr + ks * 16);
                const u32 b1 = *reinterpret_cast<const u32*>(kr + ks * 16 + 8);
                mma_bf16(s[j], qa[ks], b0, b1);
            }
        }

        u32 pa[BLOCK_N / 16][4];
        softmax_step<BLOCK_N>(s, k0, lk, t, scale_log2, m0, m1, l0, l1, acc, pa);

        // O += P·V: 16 column tiles of 8 dimensions, 4 steps of 16 keys.
#pragma unroll
        for (int kk = 0; kk < BLOCK_N / 16; ++kk) {
            const bf16_t* vr = sv + (kk * 16 + t * 2) * SROW + g;
#pragma unroll
            for (int dn = 0; dn < HEAD_DIM / 8; ++dn) {
                const bf16_t* p = vr + dn * 8;
                const u32 b0 = u32(p[0]) | (u32(p[SROW]) << 16);
                const u32 b1 = u32(p[8 * SROW]) | (u32(p[9 * SROW]) << 16);
                mma_bf16(acc[dn], pa[kk], b0, b1);
            }
        }
    }
    write_out(o + b * o_sb + h * o_sh, o_sl, lq, q0 + warp * 16 + g, t, l0, l1, acc);
}

__device__ __forceinline__ u32 shared_address(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

// Four 8×8 b16 matrices; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], const bf16_t* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], const bf16_t* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(p)));
}

// The keys (values) k0..k0+ROWS−1 into shared memory by cp.async (16 bytes per copy; past
// `lk` the copy reads nothing and writes zeros), through the two-span mapping; one commit
// group.
template <int ROWS>
__device__ __forceinline__ void load_keys_async(bf16_t* smem, const bf16_t* src,
                                                long long stride, int k0, int lk, int split,
                                                int off0, int off1) {
    const int chunks = HEAD_DIM / 8;
    for (int i = threadIdx.x; i < ROWS * chunks; i += blockDim.x) {
        const int r = i / chunks, c = (i % chunks) * 8, j = k0 + r;
        const bool valid = j < lk;
        const long long row = !valid ? 0 : j < split ? off0 + j : off1 + (j - split);
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                     :
                     : "r"(shared_address(smem + r * SROW + c)), "l"(src + row * stride + c),
                       "r"(valid ? 16 : 0));
    }
    asm volatile("cp.async.commit_group;");
}

// Waits until at most one committed group of this thread's copies is still in flight.
__device__ __forceinline__ void wait_all_but_one() { asm volatile("cp.async.wait_group 1;"); }

extern "C" __global__ void __launch_bounds__(128) flash_attention_d128_pipelined(ATTENTION_ARGS) {
    __shared__ __align__(16) bf16_t sk[BLOCK_N * SROW];
    __shared__ __align__(16) bf16_t sv[BLOCK_N * SROW];

    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BLOCK_M;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int g = lane / 4, t = lane % 4;
    q += b * q_sb + h * q_sh + q0 * q_sl;
    k += b * k_sb + h * k_sh;
    v += b * v_sb + h * v_sh;

    load_tile(sk, q, q_sl, lq - q0);
    __syncthreads();
    u32 qa[HEAD_DIM / 16][4];
    q_fragments(qa, sk, warp, g, t);
    __syncthreads();  // every warp has its Q before sk is overwritten

    float acc[HEAD_DIM / 8][4];
#pragma unroll
    for (int i = 0; i < HEAD_DIM / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f;

    // Groups in flight, oldest first: K(0), V(0); then each step commits K(next) after S and
    // V(next) after P·V (empty groups past the end), so "all but one" is always the tile
    // about to be read.
    load_keys_async<BLOCK_N>(sk, k, k_sl, 0, lk, split, off0, off1);
    load_keys_async<BLOCK_N>(sv, v, v_sl, 0, lk, split, off0, off1);
    // ldmatrix row addresses: lane → row lane % 8 of matrix lane / 8.
    const int mat = lane / 8, mrow = lane % 8;
    for (int k0 = 0; k0 < lk; k0 += BLOCK_N) {
        wait_all_but_one();  // K(k0) is in
        __syncthreads();

        // S = Q·Kᵀ. ldmatrix x4 of K rows j*8.. gives B fragments for two 16-dim steps:
        // matrices (dims ks*16 + 0..7, +8..15, +16..23, +24..31).
        float s[BLOCK_N / 8][4];
#pragma unroll
        for (int j = 0; j < BLOCK_N / 8; ++j) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
            const bf16_t* kr = sk + (j * 8 + mrow) * SROW + mat * 8;
#pragma unroll
            for (int ks = 0; ks < HEAD_DIM / 16; ks += 2) {
                u32 kb[4];
                ldmatrix_x4(kb, kr + ks * 16);
                mma_bf16(s[j], qa[ks], kb[0], kb[1]);
                mma_bf16(s[j], qa[ks + 1], kb[2], kb[3]);
            }
        }
        __syncthreads();  // every warp is done with sk
        if (k0 + BLOCK_N < lk) {
            load_keys_async<BLOCK_N>(sk, k, k_sl, k0 + BLOCK_N, lk, split, off0, off1);
        } else {
            asm volatile("cp.async.commit_group;");
        }

        u32 pa[BLOCK_N / 16][4];
        softmax_step<BLOCK_N>(s, k0, lk, t, scale_log2, m0, m1, l0, l1, acc, pa);

        wait_all_but_one();  // V(k0) is in
        __syncthreads();
        // O += P·V. ldmatrix.trans x4 gives B fragments for two 8-dim column tiles: matrices
        // (keys kk*16 + 0..7, dims dn*8..), (keys +8..15, dn*8..), (keys 0..7, dn*8 + 8..),
        // (keys +8..15, dn*8 + 8..).
#pragma unroll
        for (int kk = 0; kk < BLOCK_N / 16; ++kk) {
            const bf16_t* vr = sv + (kk * 16 + (mat % 2) * 8 + mrow) * SROW + (mat / 2) * 8;
#pragma unroll
            for (int dn = 0; dn < HEAD_DIM / 8; dn += 2) {
                u32 vb[4];
                ldmatrix_x4_trans(vb, vr + dn * 8);
                mma_bf16(acc[dn], pa[kk], vb[0], vb[1]);
                mma_bf16(acc[dn + 1], pa[kk], vb[2], vb[3]);
            }
        }
        __syncthreads();  // every warp is done with sv
        if (k0 + BLOCK_N < lk) {
            load_keys_async<BLOCK_N>(sv, v, v_sl, k0 + BLOCK_N, lk, split, off0, off1);
        } else {
            asm volatile("cp.async.commit_group;");
        }
    }
    asm volatile("cp.async.wait_all;");
    write_out(o + b * o_sb + h * o_sh, o_sl, lq, q0 + warp * 16 + g, t, l0, l1, acc);
}

// The wide kernel: 128 queries per block of 4 warps, each warp 32 of them as two 16-row MMA
// tiles, so every K and V fragment read from shared memory feeds both (twice the MMAs per
// shared-memory read of the kernels above, two independent accumulation chains per warp).
// Keys in tiles of WIDE_N, double-buffered: tile i+1 is copied (cp.async) while tile i is
// used, one barrier per tile. Q stays in shared memory (its fragments are re-read by ldmatrix
// each tile: registers hold the two output tiles instead). Dynamic shared memory:
// WIDE_SHARED bytes (over the 48 KiB static limit).
#define WIDE_M 128
#define WIDE_N 32
#define WIDE_SHARED ((WIDE_M + 4 * WIDE_N) * SROW * 2)

extern "C" __global__ void __launch_bounds__(128) flash_attention_d128_wide(ATTENTION_ARGS) {
    extern __shared__ __align__(16) bf16_t smem[];
    bf16_t* sq = smem;
    bf16_t* sk = sq + WIDE_M * SROW;  // two stages of WIDE_N rows
    bf16_t* sv = sk + 2 * WIDE_N * SROW;

    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * WIDE_M;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int t = lane % 4;
    q += b * q_sb + h * q_sh + q0 * q_sl;
    k += b * k_sb + h * k_sh;
    v += b * v_sb + h * v_sh;

    // Q (rows past lq zero), then K and V tile 0.
    load_keys_async<WIDE_M>(sq, q, q_sl, 0, lq - q0, lq, 0, 0);
    load_keys_async<WIDE_N>(sk, k, k_sl, 0, lk, split, off0, off1);
    load_keys_async<WIDE_N>(sv, v, v_sl, 0, lk, split, off0, off1);

    float acc[2][HEAD_DIM / 8][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
#pragma unroll
        for (int i = 0; i < HEAD_DIM / 8; ++i)
            acc[mt][i][0] = acc[mt][i][1] = acc[mt][i][2] = acc[mt][i][3] = 0.f;
    float m[2][2] = {{NEG_INF, NEG_INF}, {NEG_INF, NEG_INF}};
    float l[2][2] = {{0.f, 0.f}, {0.f, 0.f}};

    // ldmatrix row addresses: lane → row lane % 8 of matrix lane / 8. A fragments of a 16×16
    // tile: matrices (rows 0..7, cols 0..7), (rows 8..15, 0..7), (0..7, 8..15), (8..15, 8..15).
    const int mat = lane / 8, mrow = lane % 8;
    const bf16_t* qrow[2];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
        qrow[mt] = sq + (warp * 32 + mt * 16 + (mat % 2) * 8 + mrow) * SROW + (mat / 2) * 8;

    const int tiles = (lk + WIDE_N - 1) / WIDE_N;
    for (int i = 0; i < tiles; ++i) {
        const int k0 = i * WIDE_N, stage = i % 2;
        asm volatile("cp.async.wait_group 0;");
        __syncthreads();  // tile i is in; every warp is done with the other stage
        if (i + 1 < tiles) {
            const int next = (i + 1) % 2;
            load_keys_async<WIDE_N>(sk + next * WIDE_N * SROW, k, k_sl, k0 + WIDE_N, lk, split,
                                    off0, off1);
            load_keys_async<WIDE_N>(sv + next * WIDE_N * SROW, v, v_sl, k0 + WIDE_N, lk, split,
                                    off0, off1);
        }
        const bf16_t* kt = sk + stage * WIDE_N * SROW;
        const bf16_t* vt = sv + stage * WIDE_N * SROW;

        // S = Q·Kᵀ for both row tiles, 16 dims at a time.
        float s[2][WIDE_N / 8][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
            for (int j = 0; j < WIDE_N / 8; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < HEAD_DIM / 16; ks += 2) {
            u32 qa[2][2][4];
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                ldmatrix_x4(qa[mt][0], qrow[mt] + ks * 16);
                ldmatrix_x4(qa[mt][1], qrow[mt] + ks * 16 + 16);
            }
#pragma unroll
            for (int j = 0; j < WIDE_N / 8; ++j) {
                u32 kb[4];
                ldmatrix_x4(kb, kt + (j * 8 + mrow) * SROW + mat * 8 + ks * 16);
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    mma_bf16(s[mt][j], qa[mt][0], kb[0], kb[1]);
                    mma_bf16(s[mt][j], qa[mt][1], kb[2], kb[3]);
                }
            }
        }

        u32 pa[2][WIDE_N / 16][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
            softmax_step<WIDE_N>(s[mt], k0, lk, t, scale_log2, m[mt][0], m[mt][1], l[mt][0],
                                 l[mt][1], acc[mt], pa[mt]);

        // O += P·V (as in the pipelined kernel, each V fragment feeding both row tiles).
#pragma unroll
        for (int kk = 0; kk < WIDE_N / 16; ++kk) {
            const bf16_t* vr = vt + (kk * 16 + (mat % 2) * 8 + mrow) * SROW + (mat / 2) * 8;
#pragma unroll
            for (int dn = 0; dn < HEAD_DIM / 8; dn += 2) {
                u32 vb[4];
                ldmatrix_x4_trans(vb, vr + dn * 8);
#pragma unroll
                for (int mt = 0; mt < 2; ++mt) {
                    mma_bf16(acc[mt][dn], pa[mt][kk], vb[0], vb[1]);
                    mma_bf16(acc[mt][dn + 1], pa[mt][kk], vb[2], vb[3]);
                }
            }
        }
    }
    asm volatile("cp.async.wait_all;");
    const int g = lane / 4;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt)
        write_out(o + b * o_sb + h * o_sh, o_sl, lq, q0 + warp * 32 + mt * 16 + g, t, l[mt][0],
                  l[mt][1], acc[mt]);
}

// Two attentions of the same queries over disjoint key sets, merged into the attention over
// their union: with ℓ the softmax statistics (max + ln Σ exp of each row's scaled scores),
// o = o₁·e^(ℓ₁−ℓ) + o₂·e^(ℓ₂−ℓ), ℓ = ln(e^ℓ₁ + e^ℓ₂). The partial outputs and the result are
// [B, Lq, H, 128] bf16 contiguous, the statistics [B, H, Lq] f32. One warp per (b, q, h) row,
// 4 elements a lane; the result may overwrite o₁.
extern "C" __global__ void __launch_bounds__(128) attention_merge_d128(
    const bf16_t* o1, const float* l1, const bf16_t* o2, const float* l2, bf16_t* out,
    int batch, int heads, int lq) {
    const long long row = (long long)blockIdx.x * 4 + threadIdx.x / 32;
    const long long rows = (long long)batch * lq * heads;
    if (row >= rows) return;
    const int h = (int)(row % heads);
    const long long bq = row / heads;
    const int q = (int)(bq % lq);
    const long long b = bq / lq;
    const long long s = (b * heads + h) * lq + q;
    const float a = l1[s], c = l2[s];
    const float m = fmaxf(a, c);
    // Weights e^(ℓᵢ−ℓ); a row with no key in one set (ℓ = −∞) takes the other whole.
    const float wa = __expf(a - m), wc = __expf(c - m);
    const float inv = 1.0f / (wa + wc);
    const float w1 = wa * inv, w2 = wc * inv;
    const long long at = row * HEAD_DIM + (threadIdx.x % 32) * 4;
    const uint2 x = *reinterpret_cast<const uint2*>(o1 + at);
    const uint2 y = *reinterpret_cast<const uint2*>(o2 + at);
    const u32 xs[2] = {x.x, x.y}, ys[2] = {y.x, y.y};
    u32 r[2];
    for (int i = 0; i < 2; i++) {
        const float x0 = __uint_as_float(xs[i] << 16), x1 = __uint_as_float(xs[i] & 0xffff0000u);
        const float y0 = __uint_as_float(ys[i] << 16), y1 = __uint_as_float(ys[i] & 0xffff0000u);
        r[i] = pack_bf16(w1 * x0 + w2 * y0, w1 * x1 + w2 * y1);
    }
    *reinterpret_cast<uint2*>(out + at) = make_uint2(r[0], r[1]);
}
