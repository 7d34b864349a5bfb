//! Command line, environment and `Leptos.toml`: the server's runtime configuration.
//!
//! Precedence, highest first: command-line flag > environment variable > `Leptos.toml` >
//! built-in default. Listening address only: `LEPTOS_SITE_ADDR` (set by `cargo leptos
//! serve` from the workspace metadata) is used when neither a flag, `HANZO_LIVE_HOST`/`PORT`
//! nor the file names a host or port.

use clap::Parser;
use serde::Deserialize;
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};
use thiserror::Error;

/// `hanzo-live --version`: package version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git commit ",
    env!("HANZO_GIT_COMMIT"),
    ")"
);

/// Short git commit of this build, `unknown` outside a git checkout.
pub const GIT_COMMIT: &str = env!("HANZO_GIT_COMMIT");

/// Default listening host: loopback only. Use `--host 0.0.0.0` to serve a network.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default listening port.
pub const DEFAULT_PORT: u16 = 3000;
/// Default site bundle directory (what `cargo leptos build` and `tools/build-site.sh` write).
pub const DEFAULT_SITE_ROOT: &str = "target/site";
/// Default largest recording upload: 2 GiB.
pub const DEFAULT_MAX_RECORDING_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The configuration file looked up in the working directory when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "Leptos.toml";

/// Hanzo Live: real-time generative video studio.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "hanzo-live", version = VERSION, about)]
pub struct Cli {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "HANZO_LIVE_HOST")]
    pub host: Option<String>,

    /// Port to listen on; 0 picks a free one [default: 3000]
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// Directory for the database, recordings and models [default: ~/.hanzo-live]
    #[arg(long, env = "HANZO_LIVE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Directory holding model weights [default: <data-dir>/models]
    #[arg(long, env = "HANZO_LIVE_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,

    /// Run the engine on the CPU even where a GPU is available
    #[arg(long, env = "HANZO_LIVE_CPU")]
    pub cpu: bool,

    /// Engine backend: cuda, metal, flex or candle [default: CUDA > Metal > CPU, the first usable]
    #[arg(long, env = "HANZO_LIVE_BACKEND")]
    pub backend: Option<String>,

    /// Where the Wan text encoder runs: auto (the engine backend) or cpu [default: auto]
    #[arg(long, env = "HANZO_LIVE_TEXT_ENCODER_DEVICE")]
    pub text_encoder_device: Option<String>,

    /// Refuse to stream for visitors who are not signed in
    #[arg(long, env = "HANZO_LIVE_REQUIRE_LOGIN")]
    pub require_login: bool,

    /// Largest recording upload, in MiB [default: 2048]
    #[arg(long, env = "HANZO_LIVE_MAX_RECORDING_MB")]
    pub max_recording_mb: Option<u64>,

    /// Runtime configuration file [default: ./Leptos.toml when present]
    #[arg(long, env = "HANZO_LIVE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory of the built site (wasm, JS, CSS, public assets) [default: target/site]
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands other than serving (the default).
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// The Wan engine's tools: backend info, a DiT forward from files, benchmarks
    Engine(engine::cli::EngineArgs),
    /// Download model files for pipelines (or list what they need), from Hugging Face
    Download(crate::downloads::cli::DownloadArgs),
}

/// The `Leptos.toml` file. Unknown keys are errors, so a typo never goes unnoticed.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`: where and how the server runs.
    #[serde(default)]
    pub server: ServerSection,
}

/// `[server]` in `Leptos.toml`; every key is optional.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// A leading `~/` is the home directory.
    pub data_dir: Option<String>,
    pub models_dir: Option<String>,
    pub site_root: Option<String>,
    pub cpu: Option<bool>,
    /// Engine backend (cuda, metal, flex, candle).
    pub backend: Option<String>,
    /// Where the text encoder runs (auto, cpu).
    pub text_encoder_device: Option<String>,
    pub require_login: Option<bool>,
    /// UDP addresses WebRTC binds (`ip:port`, port 0 = any).
    pub rtc_udp_addrs: Option<Vec<String>>,
    /// Largest recording upload, in MiB.
    pub max_recording_mb: Option<u64>,
}

/// Why the configuration could not be resolved.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("no data directory: pass --data-dir or set HOME")]
    NoHome,
    #[error("invalid LEPTOS_SITE_ADDR {0:?}: expected host:port")]
    SiteAddr(String),
    #[error("invalid text encoder device: {0}")]
    TextEncoderDevice(String),
}

/// Environment values that are not flags (read once, passed in, so tests control them).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `HOME`, for `~/.hanzo-live` and `~/` in the file.
    pub home: Option<PathBuf>,
    /// `LEPTOS_SITE_ADDR`, set by `cargo leptos serve`.
    pub leptos_site_addr: Option<String>,
}

impl Environment {
    /// Reads the process environment.
    pub fn from_process() -> Self {
        Self {
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            leptos_site_addr: std::env::var("LEPTOS_SITE_ADDR")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub site_root: PathBuf,
    pub cpu: bool,
    /// The engine backend asked for (`None`: the best usable one).
    pub backend: Option<String>,
    /// Where the Wan text encoder runs.
    pub text_encoder_device: engine::backend::TextEncoderDevice,
    pub require_login: bool,
    /// UDP addresses WebRTC binds: every interface plus loopback by default.
    pub rtc_udp_addrs: Vec<String>,
    /// Largest recording upload, in bytes (2 GiB by default).
    pub max_recording_bytes: u64,
    /// The file the settings came from, if any.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Resolves the command line (clap has already applied the environment variables it
    /// knows) against the config file it names, or `./Leptos.toml`.
    pub fn load(cli: &Cli, env: &Environment) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => Some((path.clone(), read_config_file(path)?)),
            None => {
                let path = PathBuf::from(DEFAULT_CONFIG_FILE);
                if path.is_file() {
                    Some((path.clone(), read_config_file(&path)?))
                } else {
                    None
                }
            }
        };
        Self::resolve(cli, file, env)
    }

    /// Applies the precedence rules; pure, for tests.
    pub fn resolve(
        cli: &Cli,
        file: Option<(PathBuf, FileConfig)>,
        env: &Environment,
    ) -> Result<Self, ConfigError> {
        let (config_file, fc) = match file {
            Some((p, c)) => (Some(p), c.server),
            None => (None, ServerSection::default()),
        };
        let site_addr = env
            .leptos_site_addr
            .as_deref()
            .map(|s| parse_host_port(s).ok_or_else(|| ConfigError::SiteAddr(s.to_owned())))
            .transpose()?;
        let host = cli
            .host
            .clone()
            .or(fc.host)
            .or_else(|| site_addr.as_ref().map(|(h, _)| h.clone()))
            .unwrap_or_else(|| DEFAULT_HOST.to_owned());
        let port = cli
            .port
            .or(fc.port)
            .or(site_addr.map(|(_, p)| p))
            .unwrap_or(DEFAULT_PORT);
        let home = env.home.as_deref();
        let data_dir = match (&cli.data_dir, fc.data_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => expand_home(&d, home)?,
            (None, None) => home.ok_or(ConfigError::NoHome)?.join(".hanzo-live"),
        };
        let models_dir = match (&cli.models_dir, fc.models_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => expand_home(&d, home)?,
            (None, None) => data_dir.join("models"),
        };
        let site_root = match (&cli.site_root, fc.site_root) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => expand_home(&d, home)?,
            (None, None) => PathBuf::from(DEFAULT_SITE_ROOT),
        };
        Ok(Settings {
            host,
            port,
            data_dir,
            models_dir,
            site_root,
            cpu: cli.cpu || fc.cpu.unwrap_or(false),
            backend: cli.backend.clone().or(fc.backend),
            text_encoder_device: engine::backend::TextEncoderDevice::parse(
                cli.text_encoder_device
                    .as_deref()
                    .or(fc.text_encoder_device.as_deref())
                    .unwrap_or("auto"),
            )
            .map_err(ConfigError::TextEncoderDevice)?,
            require_login: cli.require_login || fc.require_login.unwrap_or(false),
            rtc_udp_addrs: fc.rtc_udp_addrs.unwrap_or_else(default_rtc_udp_addrs),
            max_recording_bytes: cli
                .max_recording_mb
                .or(fc.max_recording_mb)
                .map_or(DEFAULT_MAX_RECORDING_BYTES, |mb| {
                    mb.saturating_mul(1024 * 1024)
                }),
            config_file,
        })
    }

    /// `host:port` as given (the host may be a name such as `localhost`).
    pub fn bind_target(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port) // bare IPv6 literal
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Where compiled GPU kernels and autotune results are kept: `<data-dir>/kernels`.
    pub fn kernels_dir(&self) -> PathBuf {
        self.data_dir.join("kernels")
    }

    /// Where recordings are stored: `<data-dir>/recordings`.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// The SQLite database file: `<data-dir>/hanzo-live.db`.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(crate::db::DB_FILE_NAME)
    }
}

/// WebRTC's default UDP sockets: one per interface (a wildcard skips loopback) and one on
/// loopback, so a browser on the same machine connects either way.
pub fn default_rtc_udp_addrs() -> Vec<String> {
    vec!["0.0.0.0:0".into(), "127.0.0.1:0".into()]
}

/// Reads and parses a `Leptos.toml`.
pub fn read_config_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

fn expand_home(p: &str, home: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match p.strip_prefix("~/") {
        Some(rest) => Ok(home.ok_or(ConfigError::NoHome)?.join(rest)),
        None if p == "~" => Ok(home.ok_or(ConfigError::NoHome)?.to_owned()),
        None => Ok(PathBuf::from(p)),
    }
}

fn parse_host_port(s: &str) -> Option<(String, u16)> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    let (h, p) = s.rsplit_once(':')?;
    Some((h.to_owned(), p.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            home: Some(PathBuf::from("/home/u")),
            leptos_site_addr: None,
        }
    }

    fn file(text: &str) -> Option<(PathBuf, FileConfig)> {
        Some((PathBuf::from("Leptos.toml"), toml::from_str(text).unwrap()))
    }

    #[test]
    fn defaults_without_flags_or_file() {
        let s = Settings::resolve(&Cli::default(), None, &env()).unwrap();
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.port, 3000);
        assert_eq!(s.data_dir, PathBuf::from("/home/u/.hanzo-live"));
        assert_eq!(s.models_dir, PathBuf::from("/home/u/.hanzo-live/models"));
        assert_eq!(s.site_root, PathBuf::from("target/site"));
        assert_eq!(
            s.database_path(),
            PathBuf::from("/home/u/.hanzo-live/hanzo-live.db")
        );
        assert!(!s.cpu && !s.require_login);
    }

    #[test]
    fn the_file_overrides_defaults_and_flags_override_the_file() {
        let f = file(
            "[server]\nhost = \"0.0.0.0\"\nport = 8080\ndata_dir = \"~/studio\"\nrequire_login = true\n",
        );
        let s = Settings::resolve(&Cli::default(), f, &env()).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("0.0.0.0", 8080));
        assert_eq!(s.data_dir, PathBuf::from("/home/u/studio"));
        assert_eq!(s.models_dir, PathBuf::from("/home/u/studio/models"));
        assert!(s.require_login);

        let f = file("[server]\nport = 8080\ndata_dir = \"/srv/a\"\n");
        let cli = Cli {
            port: Some(9000),
            data_dir: Some("/srv/b".into()),
            models_dir: Some("/models".into()),
            ..Cli::default()
        };
        let s = Settings::resolve(&cli, f, &env()).unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.data_dir, PathBuf::from("/srv/b"));
        assert_eq!(s.models_dir, PathBuf::from("/models"));
    }

    #[test]
    fn leptos_site_addr_only_fills_what_nothing_else_sets() {
        let e = Environment {
            leptos_site_addr: Some("127.0.0.2:3100".into()),
            ..env()
        };
        let s = Settings::resolve(&Cli::default(), None, &e).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.2", 3100));
        let s = Settings::resolve(&Cli::default(), file("[server]\nport = 5000\n"), &e).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.2", 5000));
        let bad = Environment {
            leptos_site_addr: Some("nonsense".into()),
            ..env()
        };
        assert!(matches!(
            Settings::resolve(&Cli::default(), None, &bad),
            Err(ConfigError::SiteAddr(_))
        ));
    }

    #[test]
    fn the_recording_limit_defaults_to_2_gib_and_follows_the_precedence() {
        let s = Settings::resolve(&Cli::default(), None, &env()).unwrap();
        assert_eq!(s.max_recording_bytes, 2 << 30);
        assert_eq!(
            s.recordings_dir(),
            PathBuf::from("/home/u/.hanzo-live/recordings")
        );
        let f = || file("[server]\nmax_recording_mb = 10\n");
        let s = Settings::resolve(&Cli::default(), f(), &env()).unwrap();
        assert_eq!(s.max_recording_bytes, 10 << 20);
        let cli = Cli {
            max_recording_mb: Some(3),
            ..Cli::default()
        };
        let s = Settings::resolve(&cli, f(), &env()).unwrap();
        assert_eq!(s.max_recording_bytes, 3 << 20);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let err = toml::from_str::<FileConfig>("[server]\nprot = 1\n").unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        assert!(toml::from_str::<FileConfig>("[srever]\n").is_err());
    }

    #[test]
    fn the_repository_leptos_toml_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Leptos.toml");
        let fc = read_config_file(&path).unwrap();
        assert_eq!(fc.server.port, Some(DEFAULT_PORT));
    }

    #[test]
    fn no_home_and_no_data_dir_is_an_error() {
        let e = Environment::default();
        assert!(matches!(
            Settings::resolve(&Cli::default(), None, &e),
            Err(ConfigError::NoHome)
        ));
        let cli = Cli {
            data_dir: Some("/d".into()),
            ..Cli::default()
        };
        assert!(Settings::resolve(&cli, None, &e).is_ok());
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let cli = Cli {
            host: Some("::1".into()),
            port: Some(1),
            ..Cli::default()
        };
        let s = Settings::resolve(&cli, None, &env()).unwrap();
        assert_eq!(s.bind_target(), "[::1]:1");
    }

    #[test]
    fn cli_parses_flags() {
        let cli = Cli::try_parse_from([
            "hanzo-live",
            "--port",
            "4000",
            "--data-dir",
            "/tmp/x",
            "--require-login",
            "--cpu",
        ])
        .unwrap();
        assert_eq!(cli.port, Some(4000));
        assert!(cli.require_login && cli.cpu);
        assert!(Cli::try_parse_from(["hanzo-live", "--port", "99999"]).is_err());
    }
}
