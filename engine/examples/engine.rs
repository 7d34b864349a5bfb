//! The engine's CLI without the web server, for the GPU machine and quick benchmarks:
//! `cargo run -p engine --profile perf --example engine -- bench --model 1.3b`. It is the
//! same code as `hanzo-live engine …` ([`engine::cli`]).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "engine",
    about = "The Wan engine's tools (same as `hanzo-live engine`)"
)]
struct Cli {
    #[command(flatten)]
    args: engine::cli::EngineArgs,
}

fn main() {
    std::process::exit(engine::cli::run(Cli::parse().args));
}
