//! `cargo leptos`, built from the cargo-leptos library with versions pinned for rustc 1.95.

use cargo_leptos::config::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> color_eyre::Result<()> {
    // Invoked as `cargo leptos <cmd>`, cargo passes "leptos" as the first argument.
    let args: Vec<String> = std::env::args()
        .enumerate()
        .filter(|(i, a)| !(*i == 1 && a == "leptos"))
        .map(|(_, a)| a)
        .collect();
    let cli = Cli::parse_from(args);
    let verbosity = cli.opts().map_or(0, |o| o.verbose);
    cargo_leptos::logger::setup(verbosity, &cli.log);
    cargo_leptos::run(cli).await
}
