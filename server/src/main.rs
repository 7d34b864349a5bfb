//! `hanzo-live`: parses the command line and runs the server (see the `server` library).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = server::config::Cli::parse();
    match &cli.command {
        Some(server::config::Command::Engine(args)) => {
            let mut args = args.clone();
            args.cpu |= cli.cpu;
            let code = engine::cli::run_with(args, Some(&server::media::mp4::Mp4Codec));
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        Some(server::config::Command::Download(args)) => {
            return server::downloads::cli::main(&cli, args);
        }
        None => {}
    }
    server::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hanzo-live: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hanzo-live: {e}");
            ExitCode::FAILURE
        }
    }
}
