// StreamDiffusionV2's adaptive sink (engine/src/pipeline/wan/ring.rs), one cache row at a
// time: the new frame goes to the least similar sink slot when the lowest similarity is below
// the threshold, else to the FIFO's slot. Compiled at run time by NVRTC; no headers.
//
// A row's ring is `frames` slots of `fs` tokens × `hd` values (K and V alike, contiguous);
// the new frame is fs × hd values. Three kernels per row, all on the device:
// - ring_means: the mean over the tokens of each sink slot and of the new frame, K and V
//   (f32, [2][sink + 1][hd]);
// - ring_choose: the cosine similarities of the sink means to the new frame's, averaged over
//   K and V, the §8 rule, the chosen slot written as a float to slot_out;
// - ring_write: the new frame copied into the chosen slot of K and V.
// f32 math; bf16 read as its upper 16 bits.

typedef unsigned short bf16_t;

__device__ __forceinline__ float ring_load(float v) { return v; }
__device__ __forceinline__ float ring_load(bf16_t v) { return __uint_as_float(((unsigned)v) << 16); }

#define MEAN_DIMS 32
#define MEAN_GROUPS 8

// Grid (ceil(hd / 32), sink + 1, 2), block 32 × 8: 32 values of one slot (or the new frame,
// blockIdx.y == sink) of K (blockIdx.z == 0) or V, each of the 8 thread rows summing every
// 8th token, then the 8 partial sums added in a fixed order.
#define RING_MEANS(NAME, T)                                                                    \
    extern "C" __global__ void __launch_bounds__(MEAN_DIMS * MEAN_GROUPS) NAME(                \
        const T* ring_k, const T* ring_v, long long row_offset, const T* new_k,               \
        const T* new_v, long long new_offset, float* means, int sink, int fs, int hd) {        \
        __shared__ float part[MEAN_GROUPS][MEAN_DIMS];                                         \
        const int tx = threadIdx.x % MEAN_DIMS, ty = threadIdx.x / MEAN_DIMS;                  \
        const int j = blockIdx.x * MEAN_DIMS + tx;                                             \
        const int f = blockIdx.y, kv = blockIdx.z;                                             \
        const T* src = f < sink ? (kv ? ring_v : ring_k) + row_offset + (long long)f * fs * hd \
                                : (kv ? new_v : new_k) + new_offset;                           \
        float s = 0.0f;                                                                        \
        if (j < hd)                                                                            \
            for (int t = ty; t < fs; t += MEAN_GROUPS) s += ring_load(src[(long long)t * hd + j]); \
        part[ty][tx] = s;                                                                      \
        __syncthreads();                                                                       \
        if (ty == 0 && j < hd) {                                                               \
            float total = 0.0f;                                                                \
            for (int g = 0; g < MEAN_GROUPS; g++) total += part[g][tx];                        \
            means[((long long)kv * (sink + 1) + f) * hd + j] = total / (float)fs;              \
        }                                                                                      \
    }

RING_MEANS(ring_means_f32, float)
RING_MEANS(ring_means_bf16, bf16_t)

#define CHOOSE_THREADS 256
#define MAX_SINK 8

// One block. For each sink slot s and each of K, V: dot(mean_s, mean_new), |mean_s|²; and
// |mean_new|². cos = dot / max(|mean_s|·|mean_new|, 1e-8), avg = (cos_k + cos_v) / 2; the
// least avg (the first on ties) replaces its sink when below `threshold`, else `fifo`.
extern "C" __global__ void __launch_bounds__(CHOOSE_THREADS) ring_choose(
    const float* means, int sink, int hd, float threshold, int fifo, float* slot_out) {
    // Per K/V: sink dots, sink squares, the new frame's square.
    __shared__ float acc[2][2 * MAX_SINK + 1][CHOOSE_THREADS / 32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int kv = 0; kv < 2; kv++) {
        const float* m = means + (long long)kv * (sink + 1) * hd;
        const float* nw = m + (long long)sink * hd;
        for (int q = 0; q < 2 * sink + 1; q++) {
            float s = 0.0f;
            for (int j = threadIdx.x; j < hd; j += CHOOSE_THREADS) {
                const float a = q < 2 * sink ? m[(long long)(q / 2) * hd + j] : nw[j];
                const float b = q < 2 * sink && q % 2 == 0 ? nw[j] : a;
                s += a * b;
            }
            for (int o = 16; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o);
            if (lane == 0) acc[kv][q][warp] = s;
        }
    }
    __syncthreads();
    if (threadIdx.x != 0) return;
    float sum[2][2 * MAX_SINK + 1];
    for (int kv = 0; kv < 2; kv++)
        for (int q = 0; q < 2 * sink + 1; q++) {
            float s = 0.0f;
            for (int w = 0; w < CHOOSE_THREADS / 32; w++) s += acc[kv][q][w];
            sum[kv][q] = s;
        }
    int best = 0;
    float least = 0.0f;
    for (int s = 0; s < sink; s++) {
        float avg = 0.0f;
        for (int kv = 0; kv < 2; kv++) {
            const float norms = sqrtf(sum[kv][2 * s + 1]) * sqrtf(sum[kv][2 * sink]);
            avg += sum[kv][2 * s] / fmaxf(norms, 1e-8f);
        }
        avg *= 0.5f;
        if (s == 0 || avg < least) {
            least = avg;
            best = s;
        }
    }
    *slot_out = (float)(least < threshold ? best : fifo);
}

// Grid (ceil(count / 256), 1, 2): the new frame's `count` (fs × hd) values of K (blockIdx.z
// == 0) or V into the slot `*slot` of the row.
#define RING_WRITE(NAME, T)                                                                    \
    extern "C" __global__ void __launch_bounds__(256) NAME(                                    \
        T* ring_k, T* ring_v, long long row_offset, const T* new_k, const T* new_v,            \
        long long new_offset, const float* slot, long long count) {                            \
        const long long i = (long long)blockIdx.x * 256 + threadIdx.x;                         \
        if (i >= count) return;                                                                \
        const int kv = blockIdx.z;                                                             \
        T* dst = (kv ? ring_v : ring_k) + row_offset + (long long)(*slot) * count;             \
        const T* src = (kv ? new_v : new_k) + new_offset;                                      \
        dst[i] = src[i];                                                                       \
    }

RING_WRITE(ring_write_f32, float)
RING_WRITE(ring_write_bf16, bf16_t)
