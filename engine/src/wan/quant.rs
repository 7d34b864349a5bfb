//! fp8 (float8 e4m3fn) quantization of the DiT's block linears, the upstream app's
//! `quantization: fp8_e4m3fn` load option (torchao's `Float8DynamicActivationFloat8Weight`
//! with per-tensor scales, its default granularity):
//!
//! - each weight `W` is stored as e4m3fn codes with one f32 scale, `W ≈ codes·s_w`,
//!   `s_w = max|W| / 448` (448: e4m3fn's largest finite value), rounded to nearest even and
//!   saturated;
//! - each call rounds its input the same way with a scale of its own (`s_x = max|x| / 448`,
//!   "dynamic"), and the product of the two fp8 operands is accumulated in f32 and scaled by
//!   `s_x·s_w`.
//!
//! On CUDA with compute capability 8.9+ (Ada, Hopper) and the CUDA ops enabled the codes are
//! what the GPU keeps (one byte a weight) and cuBLASLt's fp8 GEMM does the product
//! ([`crate::cuda::linear_fp8`]). Elsewhere the same rounding is emulated in the compute
//! dtype (the weight kept dequantised, the input rounded through e4m3 on every call): no
//! saving; exact in f32 (how the CPU tests measure what fp8 costs in accuracy), while in bf16
//! the scaled values are rounded once more (about 2⁻⁹ relative).

use super::weights::fp8::e4m3fn_table;
use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};

/// e4m3fn's largest finite value.
pub const E4M3_MAX: f32 = 448.0;

/// The quantization a load asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantization {
    /// The weights in the compute dtype.
    #[default]
    None,
    /// The block linears in fp8 e4m3fn, per-tensor scales (weights and inputs).
    Fp8E4m3fn,
}

impl Quantization {
    /// The load option's values: `none` (or JSON null) and `fp8_e4m3fn`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "fp8_e4m3fn" => Some(Self::Fp8E4m3fn),
            _ => None,
        }
    }
}

/// The e4m3fn code nearest to `v` (ties to the even code), saturating at ±448; NaN → NaN.
pub fn e4m3fn_encode(v: f32) -> u8 {
    if v.is_nan() {
        return 0x7f;
    }
    let sign = if v.is_sign_negative() { 0x80 } else { 0 };
    let a = v.abs().min(E4M3_MAX);
    // Below 2⁻⁶ the codes are subnormal, m·2⁻⁹ (code m, 0..=8; 8 is 2⁻⁶, the first normal).
    if a < 2f32.powi(-6) {
        return sign | (a * 512.0).round_ties_even() as u8;
    }
    // 2^e ≤ a < 2^(e+1): the codes there step by 2^(e−3); r in 8..=16 steps of it.
    let mut e = ((a.to_bits() >> 23) & 0xff) as i32 - 127;
    let step = f32::from_bits(((e - 3 + 127) as u32) << 23);
    let mut r = (a / step).round_ties_even() as u32;
    if r == 16 {
        e += 1;
        r = 8;
    }
    sign | (((e + 7) as u8) << 3) | (r - 8) as u8
}

/// Per-tensor fp8 quantization of `values`: the codes and the scale `s` (values ≈ codes·s).
pub fn quantize(values: &[f32]) -> (Vec<u8>, f32) {
    let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = amax.max(1e-12) / E4M3_MAX;
    let inv = 1.0 / scale;
    (
        values.iter().map(|v| e4m3fn_encode(v * inv)).collect(),
        scale,
    )
}

/// `codes·scale` in f32.
pub fn dequantize(codes: &[u8], scale: f32) -> Vec<f32> {
    let table = e4m3fn_table();
    codes.iter().map(|c| table[*c as usize] * scale).collect()
}

/// A weight's values on the host, in f32, row-major.
fn host_values<B: Backend>(w: Tensor<B, 2>) -> Vec<f32> {
    w.cast(DType::F32)
        .into_data()
        .to_vec::<f32>()
        .expect("an f32 tensor reads as f32")
}

/// An fp8 weight as the GPU's fp8 GEMM reads it.
#[derive(Clone, Debug)]
pub struct Fp8Weight<B: Backend> {
    /// `[out, in]` e4m3fn codes (U8), PyTorch's row-major weight layout.
    pub codes: Tensor<B, 2, Int>,
    /// `[1]` f32: `W ≈ codes·scale`.
    pub scale: Tensor<B, 1>,
}

impl<B: Backend> Fp8Weight<B> {
    /// # Shapes
    /// - weight_t: `[in, out]` → codes `[out, in]`
    pub fn from_weight_t(weight_t: &Tensor<B, 2>) -> Self {
        let [d_in, d_out] = weight_t.dims();
        let device = weight_t.device();
        let (codes, scale) = quantize(&host_values(weight_t.clone().transpose()));
        Self {
            codes: Tensor::from_data(TensorData::new(codes, [d_out, d_in]), (&device, DType::U8)),
            scale: Tensor::from_data(TensorData::new(vec![scale], [1]), (&device, DType::F32)),
        }
    }

    /// `[out, in]`.
    pub fn dims(&self) -> [usize; 2] {
        self.codes.dims()
    }

    /// `codes·scale` transposed, decoded on the device, f32.
    ///
    /// # Shapes
    /// → `[in, out]`
    pub fn dequantized_t(&self) -> Tensor<B, 2> {
        let [d_out, d_in] = self.dims();
        let device = self.codes.device();
        let table: Vec<f32> = e4m3fn_table()
            .iter()
            .map(|v| if v.is_nan() { 0.0 } else { *v })
            .collect();
        let table = Tensor::<B, 1>::from_data(TensorData::new(table, [256]), (&device, DType::F32));
        let indices = self.codes.clone().reshape([d_out * d_in]).cast(DType::I32);
        (table.select(0, indices).reshape([d_out, d_in]) * self.scale.clone().reshape([1, 1]))
            .transpose()
    }
}

/// The dequantized weight `codes·s_w` of `weight_t` in its own dtype, computed on the host.
///
/// # Shapes
/// - weight_t: `[in, out]` → `[in, out]`
pub fn fake_quantize_weight<B: Backend>(weight_t: &Tensor<B, 2>) -> Tensor<B, 2> {
    let dims = weight_t.dims();
    let dtype = weight_t.dtype();
    let (codes, scale) = quantize(&host_values(weight_t.clone()));
    Tensor::from_data(
        TensorData::new(dequantize(&codes, scale), dims).convert_dtype(dtype),
        (&weight_t.device(), dtype),
    )
}

/// `x` rounded through e4m3fn with a per-tensor scale of its own (`max|x| / 448`), in f32:
/// what the fp8 GEMM sees of its input. Built from comparisons with exact powers of two, so
/// every backend rounds the same way.
///
/// # Shapes
/// - x: any → same, f32
pub fn fake_quantize_input<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let x = x.cast(DType::F32);
    let scale = x.clone().abs().max().clamp_min(1e-12) / E4M3_MAX as f64;
    let scale = scale.reshape([1; D]);
    let scaled = x * scale.clone().recip();
    let sign = scaled.clone().sign();
    let a = scaled.abs().clamp_max(E4M3_MAX);
    // The spacing of e4m3fn codes around a: 2⁻⁹ below 2⁻⁵ (the subnormals and the first
    // binade), doubling at every power of two up to 2⁸.
    let mut step = a.zeros_like() + 2f64.powi(-9);
    for k in -5..=8 {
        let bump = a.clone().greater_equal_elem(2f64.powi(k)).float() * 2f64.powi(k - 4);
        step = step + bump;
    }
    (a / step.clone()).round() * step * sign * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_encodes_to_itself_and_midpoints_go_to_the_even_code() {
        let table = e4m3fn_table();
        for code in 0u8..=0xfe {
            if code & 0x7f == 0x7f {
                continue;
            }
            let v = table[code as usize];
            assert_eq!(e4m3fn_encode(v), code, "{v}");
        }
        // Between consecutive positive codes: just below the midpoint rounds down, just
        // above rounds up, the midpoint itself goes to the even code.
        for code in 0u8..0x7e {
            let (lo, hi) = (table[code as usize], table[code as usize + 1]);
            let mid = (lo + hi) / 2.0;
            let even = if code % 2 == 0 { code } else { code + 1 };
            assert_eq!(e4m3fn_encode(mid), even, "midpoint of {lo} and {hi}");
            assert_eq!(e4m3fn_encode(mid - (hi - lo) / 8.0), code);
            assert_eq!(e4m3fn_encode(mid + (hi - lo) / 8.0), code + 1);
        }
        assert_eq!(e4m3fn_encode(1e9), 0x7e);
        assert_eq!(e4m3fn_encode(-1e9), 0xfe);
        assert_eq!(e4m3fn_encode(f32::NAN), 0x7f);
        assert_eq!(table[0x7e], 448.0);
    }

    #[test]
    fn the_tensor_rounding_matches_the_encoder() {
        type B = burn::backend::Flex;
        // Values across every binade, the subnormals and past the saturation point, with
        // the largest at 448 so the input's own scale is 1.
        let mut values: Vec<f32> = (0..4000)
            .map(|i| {
                let t = i as f32 / 4000.0;
                (if i % 2 == 0 { 1.0 } else { -1.0 }) * 2f32.powf(-11.0 + 19.8 * t)
            })
            .collect();
        values.push(448.0);
        let n = values.len();
        let x =
            Tensor::<B, 1>::from_data(TensorData::new(values.clone(), [n]), &Default::default());
        let got = fake_quantize_input(x).into_data().to_vec::<f32>().unwrap();
        let table = e4m3fn_table();
        for (v, g) in values.iter().zip(&got) {
            let want = table[e4m3fn_encode(*v) as usize];
            assert_eq!(*g, want, "{v}");
        }
    }

    #[test]
    fn a_quantized_weight_is_within_fp8s_step_of_the_original() {
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 37.0)
            .collect();
        let (codes, scale) = quantize(&values);
        let amax = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert_eq!(scale, amax / 448.0);
        for (v, d) in values.iter().zip(dequantize(&codes, scale)) {
            // Three mantissa bits: half a step is 1/16 of the value's binade, at most 2⁻⁴·|v|
            // (plus the subnormal floor).
            assert!(
                (v - d).abs() <= v.abs() / 16.0 + scale * 2f32.powi(-10),
                "{v} vs {d}"
            );
        }
    }
}
