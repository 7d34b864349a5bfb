//! `hanzo-live download`: fetches what pipelines need into the models directory, with a
//! progress bar per file and one for the whole download, or lists what they need.
//!
//! Exit codes: 0 done (or nothing missing), 1 the download failed, 2 a bad argument,
//! 130 interrupted (Ctrl-C; run it again to resume).

use super::{Planned, merge, resumable_bytes, run};
use crate::{
    config::{Cli, Environment, Settings},
    hub::Hub,
    pipelines::{LoadContext, PipelineManager, Registry},
};
use app::{downloads::DownloadProgress, format::bytes};
use engine::{backend::TextEncoderDevice, pipeline::wan::files::TextEncoderFile};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

/// Download model files for pipelines, from Hugging Face (HF_ENDPOINT, HF_TOKEN, HF_HOME)
#[derive(clap::Args, Debug, Clone)]
pub struct DownloadArgs {
    /// Pipelines to download for (self-forcing, longlive, streamdiffusionv2), or `all`
    pub pipelines: Vec<String>,
    /// Print what each pipeline needs, how big it is and what is present; download nothing
    #[arg(long)]
    pub list: bool,
    /// The text encoder to fetch: fp8 (about half the bytes) or bf16 (either is used when present)
    #[arg(long, default_value = "fp8")]
    pub text_encoder: String,
    /// The autoencoder to fetch for (the pipelines' vae_type): wan, lightvae, tae or lighttae
    #[arg(long, default_value = "wan")]
    pub vae_type: String,
    /// Directory to download into [default: the server's models directory]
    #[arg(long)]
    pub models_dir: Option<PathBuf>,
}

/// A usage error (exit code 2) or a failure (1).
enum Failure {
    Usage(String),
    Failed(String),
    Interrupted,
}

/// Runs `hanzo-live download` to its exit code.
pub fn main(cli: &Cli, args: &DownloadArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hanzo-live download: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(download(cli, args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("hanzo-live download: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("hanzo-live download: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Interrupted) => {
            eprintln!("hanzo-live download: interrupted; run it again to resume");
            ExitCode::from(130)
        }
    }
}

async fn download(cli: &Cli, args: &DownloadArgs) -> Result<(), Failure> {
    let settings = Settings::load(cli, &Environment::from_process())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let models_dir = args.models_dir.clone().unwrap_or(settings.models_dir);
    let te = TextEncoderFile::parse(&args.text_encoder).ok_or_else(|| {
        Failure::Usage(format!(
            "--text-encoder {:?}: choose fp8 or bf16",
            args.text_encoder
        ))
    })?;
    // Only the file table is used: no engine backend is chosen.
    let manager = PipelineManager::new(
        Registry::standard(),
        LoadContext {
            models_dir: models_dir.clone(),
            backend: Err("not needed to download".into()),
            text_encoder_device: TextEncoderDevice::Auto,
            progress: None,
        },
    );
    let load = json!({ "vae_type": args.vae_type });
    let with_files: Vec<String> = manager
        .ids()
        .into_iter()
        .filter(|id| manager.needs(id, &load, te).is_ok_and(|n| !n.is_empty()))
        .collect();
    let chosen: Vec<String> =
        if args.pipelines.iter().any(|p| p == "all") || (args.list && args.pipelines.is_empty()) {
            with_files.clone()
        } else {
            args.pipelines.clone()
        };
    if chosen.is_empty() {
        return Err(Failure::Usage(format!(
            "name the pipelines to download for ({}), or all",
            with_files.join(", ")
        )));
    }
    let mut plans = Vec::new();
    for id in &chosen {
        let needs = manager.needs(id, &load, te).map_err(|e| {
            Failure::Usage(format!(
                "{e} (pipelines with files: {})",
                with_files.join(", ")
            ))
        })?;
        if args.list {
            print_needs(id, &needs, &models_dir);
        }
        plans.push(
            needs
                .iter()
                .filter(|n| n.present.is_none())
                .map(|n| Planned::from(n.artefact))
                .collect::<Vec<_>>(),
        );
    }
    let files = merge(plans);
    let total: u64 = files.iter().map(|f| f.approx_bytes).sum();
    if args.list {
        println!(
            "to download: {} files, about {} (into {})",
            files.len(),
            bytes(total as f64),
            models_dir.display()
        );
        return Ok(());
    }
    if files.is_empty() {
        println!(
            "nothing to download: every file is in {}",
            models_dir.display()
        );
        return Ok(());
    }
    let label = chosen.join(", ");
    let resumable = resumable_bytes(&models_dir, &files);
    println!(
        "downloading {} files for {label}, about {} into {}{}",
        files.len(),
        bytes(total as f64),
        models_dir.display(),
        if resumable > 0 {
            format!(" (resuming from {} on disk)", bytes(resumable as f64))
        } else {
            String::new()
        }
    );
    fetch_all(&models_dir, &files, &label).await
}

/// One pipeline's files for `--list`.
fn print_needs(
    id: &str,
    needs: &[engine::pipeline::wan::files::Need],
    models_dir: &std::path::Path,
) {
    println!("{id}:");
    for n in needs {
        let (mark, size) = match &n.present {
            Some(path) => (
                "present",
                std::fs::metadata(path).map_or(0, |m| m.len()) as f64,
            ),
            None => ("missing", n.artefact.approx_bytes as f64),
        };
        let approx = if n.present.is_some() { "" } else { "≈" };
        println!(
            "  {mark:8} {approx}{:>10}  {}  ({} {})",
            bytes(size),
            models_dir.join(n.artefact.local).display(),
            n.artefact.repo,
            n.artefact.file
        );
    }
}

async fn fetch_all(
    models_dir: &std::path::Path,
    files: &[Planned],
    label: &str,
) -> Result<(), Failure> {
    let hub = Hub::from_env();
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.store(true, Ordering::Relaxed);
                // A second Ctrl-C does not wait for the download to notice.
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("\nhanzo-live download: interrupted; run it again to resume");
                    std::process::exit(130);
                }
            }
        });
    }
    let bars = MultiProgress::new();
    let style = |template: &str| {
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    };
    let overall = bars.add(ProgressBar::new(0));
    overall.set_style(style(
        "total [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} ({msg})",
    ));
    let file = bars.add(ProgressBar::new(0));
    file.set_style(style("{msg:40!} [{bar:30}] {bytes}/{total_bytes}"));
    let mut progress = DownloadProgress {
        pipeline_id: label.to_owned(),
        ..Default::default()
    };
    let mut report = |p: &DownloadProgress| {
        overall.set_length(p.bytes_total);
        overall.set_position(p.bytes_done);
        overall.set_message(format!("{}/{} files", p.files_done, p.files_total));
        if let Some(name) = &p.current_file {
            file.set_message(name.clone());
            file.set_length(p.file_bytes_total);
            file.set_position(p.file_bytes_done);
        }
    };
    let result = run(&hub, models_dir, files, &cancel, &mut progress, &mut report).await;
    overall.finish_and_clear();
    file.finish_and_clear();
    match result {
        Ok(fetched) => {
            let size: u64 = fetched.iter().map(|f| f.fetched.size).sum();
            let moved: u64 = fetched.iter().map(|f| f.fetched.transferred).sum();
            for f in &fetched {
                println!(
                    "  ok  {}  {}  commit {}",
                    f.local,
                    bytes(f.fetched.size as f64),
                    f.fetched.commit.as_deref().unwrap_or("unknown")
                );
            }
            println!(
                "downloaded {} files for {label}: {} ({} transferred) into {}",
                fetched.len(),
                bytes(size as f64),
                bytes(moved as f64),
                models_dir.display()
            );
            Ok(())
        }
        Err(crate::hub::HubError::Cancelled) => Err(Failure::Interrupted),
        Err(e) => Err(Failure::Failed(e.to_string())),
    }
}
