//! Logging: the application at INFO and libraries at WARN; `VERBOSE_LOGGING=1` raises the
//! libraries to INFO; `RUST_LOG` replaces both when set.

use tracing_subscriber::EnvFilter;

/// The crates whose INFO lines are the application's own.
const APP_CRATES: [&str; 4] = ["hanzo_live", "server", "app", "engine"];

/// The filter directives for the given `VERBOSE_LOGGING` value.
pub fn default_directives(verbose: bool) -> String {
    let base = if verbose { "info" } else { "warn" };
    std::iter::once(base.to_owned())
        .chain(APP_CRATES.iter().map(|c| format!("{c}=info")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Installs the global subscriber (stdout, human-readable).
pub fn init() {
    let verbose = std::env::var("VERBOSE_LOGGING")
        .map(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false);
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_directives(verbose)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(ansi)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_are_quiet_unless_verbose() {
        assert_eq!(
            default_directives(false),
            "warn,hanzo_live=info,server=info,app=info,engine=info"
        );
        assert!(default_directives(true).starts_with("info,"));
    }
}
