//! Weighted prompts and transitions, blended in the text encoder's embedding space (the
//! `[512, d]` UMT5 contexts the DiT's cross-attention reads), as the upstream app does
//! (`daydreamlive/scope` `core/pipelines/blending.py`):
//!
//! - **linear** (`prompt_interpolation_method: linear`): weights normalised to sum 1
//!   (all zero → equal), `Σ wᵢ·eᵢ`, then rescaled to the weighted mean of the prompts'
//!   norms (`Σ wᵢ·‖eᵢ‖`, Frobenius) so a blend is not washed out;
//! - **slerp** (exactly two prompts; more fall back to linear): per context row, spherical
//!   interpolation at `t = w₂/(w₁+w₂)` — rows normalised, `ω = acos(clamp(n₁·n₂))`,
//!   `sin((1−t)ω)/sin ω · e₁ + sin(tω)/sin ω · e₂` (ε = 1e-8 in norms and `sin ω`); plain
//!   lerp when every row's ω is below 1e-4;
//! - **transitions** (`transition: {target_prompts, num_steps, temporal_interpolation_method}`):
//!   from the blend in use to the target's blend over `num_steps` chunks, chunk `k` at
//!   `t = k/num_steps` (lerp or the same slerp). Upstream takes `linspace(0, 1, n)`, which
//!   repeats the source on the first chunk and never reaches the target for `n = 1`; here
//!   the last chunk of a transition is the target. A new prompt change cancels a running
//!   transition (and starts its own from where that one was).
//!
//! A prompt's context comes from the text encoder's LRU cache, so repeating a prompt costs
//! nothing; the blend is recomputed only when the prompts, weights or method change.

use crate::pipeline::params::{TransitionValue, WeightedPrompt};
use std::sync::Arc;

const EPSILON: f64 = 1e-8;
const SLERP_PARALLEL_THRESHOLD: f64 = 1e-4;

/// How prompts (or two contexts in time) are interpolated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Interpolation {
    #[default]
    Linear,
    Slerp,
}

impl Interpolation {
    pub fn parse(s: &str) -> Self {
        if s == "slerp" {
            Self::Slerp
        } else {
            Self::Linear
        }
    }
}

/// A context: `rows × dim` values, row-major (f32).
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    pub values: Arc<Vec<f32>>,
    pub dim: usize,
}

impl Context {
    pub fn new(values: Vec<f32>, dim: usize) -> Self {
        Self {
            values: Arc::new(values),
            dim,
        }
    }

    fn norm(&self) -> f64 {
        self.values
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt()
    }
}

/// The angle between two rows (after normalising each, ε = 1e-8), in f32 as the reference
/// computes it (so nearly parallel rows come out exactly parallel).
fn row_angle(ra: &[f32], rb: &[f32]) -> f64 {
    let norm = |r: &[f32]| r.iter().map(|x| x * x).sum::<f32>().sqrt() + EPSILON as f32;
    let (na, nb) = (norm(ra), norm(rb));
    let dot: f32 = ra.iter().zip(rb).map(|(x, y)| (x / na) * (y / nb)).sum();
    f64::from(dot.clamp(-1.0, 1.0).acos())
}

/// Spherical interpolation of two contexts, row by row (see the module doc).
pub fn slerp(a: &Context, b: &Context, t: f64) -> Context {
    let dim = a.dim;
    let rows = || a.values.chunks(dim).zip(b.values.chunks(dim));
    let omegas: Vec<f64> = rows().map(|(ra, rb)| row_angle(ra, rb)).collect();
    if omegas.iter().all(|o| o.abs() < SLERP_PARALLEL_THRESHOLD) {
        return lerp(a, b, t);
    }
    let values = rows()
        .zip(&omegas)
        .flat_map(|((ra, rb), omega)| {
            let s = omega.sin() + EPSILON;
            let (ca, cb) = (((1.0 - t) * omega).sin() / s, (t * omega).sin() / s);
            ra.iter()
                .zip(rb)
                .map(move |(x, y)| (ca * f64::from(*x) + cb * f64::from(*y)) as f32)
        })
        .collect();
    Context::new(values, dim)
}

/// `(1 − t)·a + t·b`.
pub fn lerp(a: &Context, b: &Context, t: f64) -> Context {
    let values = a
        .values
        .iter()
        .zip(b.values.iter())
        .map(|(x, y)| ((1.0 - t) * f64::from(*x) + t * f64::from(*y)) as f32)
        .collect();
    Context::new(values, a.dim)
}

/// Blends prompt contexts with their weights (see the module doc). One prompt is returned
/// as it is.
pub fn blend(contexts: &[Context], weights: &[f64], method: Interpolation) -> Context {
    assert_eq!(contexts.len(), weights.len());
    if contexts.len() == 1 {
        return contexts[0].clone();
    }
    let total: f64 = weights.iter().sum();
    let w: Vec<f64> = if total > 0.0 {
        weights.iter().map(|w| w / total).collect()
    } else {
        vec![1.0 / weights.len() as f64; weights.len()]
    };
    if method == Interpolation::Slerp && contexts.len() == 2 {
        return slerp(&contexts[0], &contexts[1], w[1]);
    }
    let target_norm: f64 = contexts.iter().zip(&w).map(|(c, w)| c.norm() * w).sum();
    let n = contexts[0].values.len();
    let mut sum = vec![0f64; n];
    for (c, w) in contexts.iter().zip(&w) {
        for (s, x) in sum.iter_mut().zip(c.values.iter()) {
            *s += w * f64::from(*x);
        }
    }
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    let scale = if norm > EPSILON {
        target_norm / norm
    } else {
        1.0
    };
    Context::new(
        sum.into_iter().map(|x| (x * scale) as f32).collect(),
        contexts[0].dim,
    )
}

/// What one chunk is conditioned on.
#[derive(Clone, Debug)]
pub struct ChunkConditioning {
    pub context: Context,
    /// The context differs from the previous chunk's (the cross-attention cache must be
    /// recomputed).
    pub changed: bool,
    /// The change is a jump (new prompts at once), not a transition step: LongLive re-caches
    /// its window on such a change.
    pub jumped: bool,
}

struct Running {
    from: Context,
    to: Context,
    steps: usize,
    done: usize,
    method: Interpolation,
    target: Vec<WeightedPrompt>,
}

/// The prompts a stream is conditioned on, and the transition between them.
///
/// The media loop re-sends every parameter each chunk, so a `prompts` value is acted on only
/// when it differs from the last one received (a transition's target leaves that value as it
/// was: the stream does not jump back to it).
#[derive(Default)]
pub struct Conditioning {
    prompts: Vec<WeightedPrompt>,
    method: Interpolation,
    /// The last `prompts` and method received through [`Self::set_prompts`].
    received: Option<(Vec<WeightedPrompt>, Interpolation)>,
    /// The blend of `prompts` with `method`, once computed.
    blended: Option<Context>,
    /// The context the last chunk used.
    current: Option<Context>,
    transition: Option<Running>,
    /// A prompt change not yet applied.
    dirty: bool,
}

impl Conditioning {
    /// The prompts in use (the target of a running transition).
    pub fn prompts(&self) -> &[WeightedPrompt] {
        self.transition
            .as_ref()
            .map_or(&self.prompts, |t| &t.target)
    }

    /// Whether a transition is running.
    pub fn transitioning(&self) -> bool {
        self.transition.is_some()
    }

    /// Whether the next chunk jumps to another context (a change that is not a transition):
    /// the new blend is computed (from the encoder's cache) and compared with the one in use.
    pub fn pending_jump(
        &mut self,
        encode: &mut dyn FnMut(&str) -> Result<Context, String>,
    ) -> Result<bool, String> {
        if !self.dirty || self.transition.is_some() {
            return Ok(false);
        }
        let Some(current) = self.current.clone() else {
            return Ok(false);
        };
        if self.blended.is_none() {
            self.blended = Some(blend_prompts(&self.prompts, self.method, encode)?);
        }
        Ok(self.blended.as_ref() != Some(&current))
    }

    /// Sets the prompts (applied at once on the next chunk). The value last received again
    /// changes nothing, nor do the prompts already in use (a transition's target).
    pub fn set_prompts(&mut self, prompts: &[WeightedPrompt], method: Interpolation) {
        let incoming = (prompts.to_vec(), method);
        if self.received.as_ref() == Some(&incoming) {
            return;
        }
        self.received = Some(incoming);
        if prompts == self.prompts() && method == self.method {
            return;
        }
        self.prompts = prompts.to_vec();
        self.method = method;
        self.blended = None;
        self.transition = None;
        self.dirty = true;
    }

    /// Starts a transition to `t.target_prompts` (0 steps: at once).
    pub fn start_transition(
        &mut self,
        t: &TransitionValue,
        encode: &mut dyn FnMut(&str) -> Result<Context, String>,
    ) -> Result<(), String> {
        let method = self.method;
        if t.num_steps <= 0 || self.current.is_none() {
            if t.target_prompts != self.prompts() {
                self.prompts = t.target_prompts.clone();
                self.blended = None;
                self.transition = None;
                self.dirty = true;
            }
            return Ok(());
        }
        let to = blend_prompts(&t.target_prompts, method, encode)?;
        let from = self.current.clone().unwrap_or_else(|| to.clone());
        self.prompts = t.target_prompts.clone();
        self.blended = Some(to.clone());
        self.dirty = false;
        self.transition = Some(Running {
            from,
            to,
            steps: t.num_steps as usize,
            done: 0,
            method: Interpolation::parse(&t.temporal_interpolation_method),
            target: t.target_prompts.clone(),
        });
        Ok(())
    }

    /// Forgets the context in use (a cache reset): the next chunk starts from the prompts.
    pub fn reset(&mut self) {
        if let Some(t) = self.transition.take() {
            self.prompts = t.target;
        }
        self.current = None;
        self.dirty = true;
    }

    /// The context of the next chunk.
    pub fn next_chunk(
        &mut self,
        encode: &mut dyn FnMut(&str) -> Result<Context, String>,
    ) -> Result<ChunkConditioning, String> {
        if let Some(t) = &mut self.transition {
            t.done += 1;
            let k = t.done as f64 / t.steps as f64;
            let context = if t.done >= t.steps {
                t.to.clone()
            } else {
                match t.method {
                    Interpolation::Linear => lerp(&t.from, &t.to, k),
                    Interpolation::Slerp => slerp(&t.from, &t.to, k),
                }
            };
            if t.done >= t.steps {
                self.transition = None;
            }
            self.current = Some(context.clone());
            return Ok(ChunkConditioning {
                context,
                changed: true,
                jumped: false,
            });
        }
        if self.blended.is_none() {
            if self.prompts.is_empty() {
                return Err("no prompt".into());
            }
            self.blended = Some(blend_prompts(&self.prompts, self.method, encode)?);
        }
        let context = self.blended.clone().unwrap_or_else(|| unreachable!());
        let changed = self.current.as_ref() != Some(&context);
        let jumped = changed && self.current.is_some();
        self.dirty = false;
        self.current = Some(context.clone());
        Ok(ChunkConditioning {
            context,
            changed,
            jumped,
        })
    }
}

fn blend_prompts(
    prompts: &[WeightedPrompt],
    method: Interpolation,
    encode: &mut dyn FnMut(&str) -> Result<Context, String>,
) -> Result<Context, String> {
    let contexts = prompts
        .iter()
        .map(|p| encode(&p.text))
        .collect::<Result<Vec<_>, _>>()?;
    let weights: Vec<f64> = prompts.iter().map(|p| p.weight).collect();
    Ok(blend(&contexts, &weights, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(v: &[f32], dim: usize) -> Context {
        Context::new(v.to_vec(), dim)
    }

    fn close(a: &Context, b: &[f32]) {
        for (x, y) in a.values.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{:?} vs {b:?}", a.values);
        }
    }

    fn wp(text: &str, weight: f64) -> WeightedPrompt {
        WeightedPrompt {
            text: text.into(),
            weight,
        }
    }

    #[test]
    fn linear_blend_keeps_the_weighted_norm() {
        // e1 = [3, 0], e2 = [0, 4] (one row of 2), weights 1 and 3 → w = 1/4, 3/4.
        // Σ w·e = [0.75, 3]; target norm = 1/4·3 + 3/4·4 = 3.75; ‖[0.75, 3]‖ = √9.5625.
        let b = blend(
            &[ctx(&[3., 0.], 2), ctx(&[0., 4.], 2)],
            &[1.0, 3.0],
            Interpolation::Linear,
        );
        let s = 3.75 / 9.5625f64.sqrt();
        close(&b, &[(0.75 * s) as f32, (3.0 * s) as f32]);
        // All weights zero: equal weights.
        let b = blend(
            &[ctx(&[2., 0.], 2), ctx(&[0., 2.], 2)],
            &[0.0, 0.0],
            Interpolation::Linear,
        );
        let s = 2.0 / 2f64.sqrt();
        close(&b, &[s as f32, s as f32]);
        // One prompt is itself.
        assert_eq!(
            blend(&[ctx(&[1., 2.], 2)], &[0.3], Interpolation::Slerp),
            ctx(&[1., 2.], 2)
        );
    }

    #[test]
    fn slerp_turns_each_row_on_its_great_circle() {
        // Orthogonal unit rows: ω = π/2, t = 1/2 → both coefficients sin(π/4) = √2/2.
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let b = blend(
            &[ctx(&[1., 0.], 2), ctx(&[0., 1.], 2)],
            &[1.0, 1.0],
            Interpolation::Slerp,
        );
        close(&b, &[h, h]);
        // t = 1/3 (weights 2 and 1 → t = w₂ = 1/3): sin(π/3), sin(π/6).
        let b = blend(
            &[ctx(&[2., 0.], 2), ctx(&[0., 2.], 2)],
            &[2.0, 1.0],
            Interpolation::Slerp,
        );
        close(&b, &[2.0 * 0.866_025_4, 1.0]);
        // Parallel rows interpolate (nearly) linearly.
        let b = slerp(&ctx(&[1., 1.], 2), &ctx(&[2., 2.], 2), 0.5);
        assert!(
            b.values.iter().all(|x| (x - 1.5).abs() < 1e-3),
            "{:?}",
            b.values
        );
        let same = slerp(&ctx(&[0., 0.], 2), &ctx(&[0., 0.], 2), 0.5);
        close(&same, &[0., 0.]);
        // A zero row stays zero.
        let b = slerp(&ctx(&[1., 0., 0., 0.], 2), &ctx(&[0., 1., 0., 0.], 2), 0.5);
        close(&b, &[h, h, 0., 0.]);
    }

    #[test]
    fn a_transition_reaches_the_target_on_its_last_chunk_and_then_holds() {
        let mut enc = |p: &str| -> Result<Context, String> {
            Ok(match p {
                "a" => ctx(&[0., 0.], 2),
                _ => ctx(&[4., 8.], 2),
            })
        };
        let mut c = Conditioning::default();
        c.set_prompts(&[wp("a", 1.0)], Interpolation::Linear);
        let first = c.next_chunk(&mut enc).unwrap();
        assert!(first.changed && !first.jumped);
        assert!(!c.next_chunk(&mut enc).unwrap().changed);
        c.start_transition(
            &TransitionValue {
                target_prompts: vec![wp("b", 1.0)],
                num_steps: 4,
                temporal_interpolation_method: "linear".into(),
            },
            &mut enc,
        )
        .unwrap();
        for k in 1..=4 {
            let step = c.next_chunk(&mut enc).unwrap();
            assert!(step.changed && !step.jumped);
            let t = k as f32 / 4.0;
            close(&step.context, &[4.0 * t, 8.0 * t]);
        }
        let after = c.next_chunk(&mut enc).unwrap();
        assert!(!after.changed);
        close(&after.context, &[4., 8.]);
        assert_eq!(c.prompts(), &[wp("b", 1.0)]);
        // 0 steps is a jump.
        c.start_transition(
            &TransitionValue {
                target_prompts: vec![wp("a", 1.0)],
                num_steps: 0,
                temporal_interpolation_method: "linear".into(),
            },
            &mut enc,
        )
        .unwrap();
        let jump = c.next_chunk(&mut enc).unwrap();
        assert!(jump.changed && jump.jumped);
        close(&jump.context, &[0., 0.]);
    }

    #[test]
    fn the_prompts_resent_every_chunk_do_not_undo_a_transition() {
        let mut enc = |p: &str| -> Result<Context, String> {
            Ok(match p {
                "a" => ctx(&[0.], 1),
                _ => ctx(&[10.], 1),
            })
        };
        let mut c = Conditioning::default();
        let a = [wp("a", 1.0)];
        c.set_prompts(&a, Interpolation::Linear);
        c.next_chunk(&mut enc).unwrap();
        let t = TransitionValue {
            target_prompts: vec![wp("b", 1.0)],
            num_steps: 2,
            temporal_interpolation_method: "linear".into(),
        };
        c.start_transition(&t, &mut enc).unwrap();
        for want in [5.0, 10.0, 10.0] {
            // The media loop applies its (old) prompts again before each chunk.
            c.set_prompts(&a, Interpolation::Linear);
            assert!(!c.pending_jump(&mut enc).unwrap());
            close(&c.next_chunk(&mut enc).unwrap().context, &[want]);
        }
        // The viewer now sends the target itself: nothing moves.
        c.set_prompts(&[wp("b", 1.0)], Interpolation::Linear);
        assert!(!c.next_chunk(&mut enc).unwrap().changed);
        // Only the method changed, one prompt: the blend is the same, no jump.
        c.set_prompts(&[wp("b", 1.0)], Interpolation::Slerp);
        assert!(!c.pending_jump(&mut enc).unwrap());
        assert!(!c.next_chunk(&mut enc).unwrap().changed);
    }

    #[test]
    fn a_prompt_change_cancels_a_running_transition() {
        let mut enc = |p: &str| -> Result<Context, String> {
            Ok(match p {
                "a" => ctx(&[0.], 1),
                "b" => ctx(&[10.], 1),
                _ => ctx(&[-5.], 1),
            })
        };
        let mut c = Conditioning::default();
        c.set_prompts(&[wp("a", 1.0)], Interpolation::Linear);
        c.next_chunk(&mut enc).unwrap();
        let t = TransitionValue {
            target_prompts: vec![wp("b", 1.0)],
            num_steps: 10,
            temporal_interpolation_method: "slerp".into(),
        };
        c.start_transition(&t, &mut enc).unwrap();
        c.next_chunk(&mut enc).unwrap();
        c.set_prompts(&[wp("c", 1.0)], Interpolation::Linear);
        assert!(!c.transitioning());
        let j = c.next_chunk(&mut enc).unwrap();
        assert!(j.jumped);
        close(&j.context, &[-5.]);
    }
}
