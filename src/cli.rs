//! Command-line interface.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::{api::Duration, names::Log, telemetry::LogFormat};

/// Brings up private Sigstore stacks from `SigstoreStack` resources.
#[derive(Debug, Parser)]
#[command(name = "sigstore-operator", version, about)]
pub struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value_t, env = "LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller until SIGTERM.
    Run(RunArgs),
    /// Print the SigstoreStack CRD as YAML.
    Crd,
    /// Run one bootstrap stage, as the operator's Jobs do.
    #[command(subcommand)]
    Stage(StageCommand),
}

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080", env = "HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Stacks reconciled at once (0: no limit).
    #[arg(long, default_value_t = 4)]
    pub concurrency: u16,
}

/// The bootstrap stages. Each writes its results into ConfigMaps and Secrets
/// of the stack and never replaces key material that exists.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Create (or adopt) a log's Trillian tree and record its ID.
    Createtree(CreateTreeArgs),
}

/// Flags every stage takes.
#[derive(Debug, clap::Args)]
pub struct StageArgs {
    /// The SigstoreStack's name.
    #[arg(long, env = "STACK")]
    pub stack: String,
    /// The stack's namespace (in a Job: from the downward API).
    #[arg(long, env = "NAMESPACE")]
    pub namespace: String,
    /// How long to wait for inputs and servers before failing, as a Go
    /// duration.
    #[arg(long, default_value = "5m")]
    pub timeout: Duration,
}

/// Flags of `stage createtree`.
#[derive(Debug, clap::Args)]
pub struct CreateTreeArgs {
    #[command(flatten)]
    pub common: StageArgs,
    /// Which log the tree is for.
    #[arg(long, value_enum)]
    pub log: Log,
    /// Trillian log server gRPC address, `host:port`.
    #[arg(long, env = "TRILLIAN_ADDRESS")]
    pub trillian_address: String,
    /// ConfigMap to record the tree ID in (default `<stack>-<log>-config`).
    #[arg(long)]
    pub config_map: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults() {
        let cli = Cli::try_parse_from(["sigstore-operator", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.http_addr.port(), 8080);
        assert_eq!(args.watch_namespace, None);
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    #[test]
    fn createtree_flags() {
        let cli = Cli::try_parse_from([
            "sigstore-operator",
            "stage",
            "createtree",
            "--stack",
            "demo",
            "--namespace",
            "ns",
            "--log",
            "ctlog",
            "--trillian-address",
            "trillian:8090",
            "--timeout",
            "90s",
        ])
        .unwrap();
        let Command::Stage(StageCommand::Createtree(args)) = cli.command else {
            panic!("expected createtree")
        };
        assert_eq!(args.log, Log::Ctlog);
        assert_eq!(args.common.timeout.as_std().as_secs(), 90);
        let err = Cli::try_parse_from([
            "sigstore-operator",
            "stage",
            "createtree",
            "--stack",
            "demo",
            "--namespace",
            "ns",
            "--log",
            "fulcio",
            "--trillian-address",
            "t:1",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("--log"), "{err}");
    }

    #[test]
    fn log_format_is_checked() {
        let err = Cli::try_parse_from(["sigstore-operator", "--log-format", "xml", "crd"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log-format"), "{err}");
    }
}
