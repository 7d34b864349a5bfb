//! The opt-in stage profile (`HANZO_LIVE_PROFILE`): nested stages count their own time only,
//! the report adds up to the work timed, and the Wan VAE's stages show up when it runs. The
//! variable is read once per process: the test runs itself again with it set.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use engine::profile::{clear, enabled, report, stage};
use std::time::Duration;

type B = Flex;

/// The rows of a report: (label, calls, ms).
fn rows(table: &str) -> Vec<(String, f64, f64)> {
    table
        .lines()
        .skip(2)
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let ms = cells.get(2)?.parse().ok()?;
            Some((cells[0].to_owned(), cells[1].parse().unwrap_or(0.0), ms))
        })
        .collect()
}

#[test]
fn stages_nest_and_add_up_and_the_vae_reports_its_stages() {
    if !enabled() {
        let status = std::process::Command::new(std::env::current_exe().expect("this test"))
            .args([
                "--exact",
                "stages_nest_and_add_up_and_the_vae_reports_its_stages",
                "--nocapture",
            ])
            .env("HANZO_LIVE_PROFILE", "1")
            .status()
            .expect("runs itself");
        assert!(status.success(), "the profiled run failed");
        return;
    }
    let device = Default::default();

    // An outer stage of ~30 ms around two inner ones of ~20 ms: the outer keeps ~10 ms.
    clear();
    stage::<B, _>(
        &device,
        || "outer".into(),
        || {
            std::thread::sleep(Duration::from_millis(10));
            for _ in 0..2 {
                stage::<B, _>(
                    &device,
                    || "inner".into(),
                    || std::thread::sleep(Duration::from_millis(10)),
                );
            }
        },
    );
    let table = report(1).expect("a report");
    let got = rows(&table);
    let find = |label: &str| got.iter().find(|r| r.0 == label).cloned();
    let (_, inner_calls, inner_ms) = find("inner").expect("the inner stage");
    let (_, outer_calls, outer_ms) = find("outer").expect("the outer stage");
    assert_eq!((inner_calls, outer_calls), (2.0, 1.0), "{table}");
    assert!((20.0..40.0).contains(&inner_ms), "{table}");
    assert!(
        (10.0..20.0).contains(&outer_ms),
        "the outer stage less the inner ones: {table}"
    );
    let (_, _, sum) = find("sum of the stages").expect("the sum row");
    assert!((sum - inner_ms - outer_ms).abs() < 0.02, "{table}");
    assert!(report(1).is_none(), "a report clears the totals");

    // The Wan VAE's decode, tiny config: its convolutions and norms are stages.
    let cfg = engine::wan::vae::AutoencoderKLWanConfig {
        base_dim: 4,
        ..engine::wan::vae::AutoencoderKLWanConfig::wan2_1()
    };
    let vae = engine::wan::vae::WanVae::<B>::load(
        cfg,
        engine::wan::Checkpoint::random_fill(3, burn::tensor::DType::F32),
        &device,
        burn::tensor::DType::F32,
    )
    .expect("random weights load");
    let z = Tensor::<B, 5>::random([1, 16, 1, 4, 6], Distribution::Normal(0.0, 1.0), &device);
    clear();
    let _ = vae
        .decode(z, engine::wan::vae::LatentSpace::Normalized)
        .expect("decodes");
    let table = report(1).expect("the decode's report");
    let labels: Vec<String> = rows(&table).into_iter().map(|r| r.0).collect();
    for stage in ["RMS norm + SiLU", "bias add", "sum of the stages"] {
        assert!(
            labels.iter().any(|l| l == stage),
            "{stage} missing: {table}"
        );
    }
    assert!(
        labels.iter().any(|l| l.starts_with("conv3d ")),
        "no convolution stage: {table}"
    );
}
