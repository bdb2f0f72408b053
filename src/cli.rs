//! Command-line interface.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::{
    api::{Duration, KeyAlgorithm},
    names::Log,
    telemetry::LogFormat,
};

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
    /// Print the API reference (Markdown) generated from the CRD's schema.
    ApiDocs,
    /// Print every pinned image a stack runs, one per line; with
    /// `--image-registry`, each followed by where a mirror must hold it
    /// (the pairs to copy, e.g. with `crane copy`).
    Images(ImagesArgs),
    /// Run one bootstrap stage, as the operator's Jobs do.
    #[command(subcommand)]
    Stage(StageCommand),
    /// Serve a TUF repository from a mounted repository ConfigMap.
    ServeTuf(ServeTufArgs),
    /// Serve a tile-based log's read path (checkpoint and tiles) from its
    /// volume, read-only.
    ServeTiles(ServeTilesArgs),
}

/// Flags of `serve-tiles`.
#[derive(Debug, clap::Args)]
pub struct ServeTilesArgs {
    /// Where the log's volume is mounted.
    #[arg(long, default_value = "/var/run/tiles")]
    pub dir: std::path::PathBuf,
    /// `PREFIX=URL`: requests under PREFIX (e.g. `/api/`) go to the log's
    /// server at URL (e.g. `http://127.0.0.1:3000`).
    #[arg(long, value_parser = parse_forward)]
    pub forward: Option<crate::files::Forward>,
    /// Address to serve on.
    #[arg(long, default_value = "0.0.0.0:8080", env = "HTTP_ADDR")]
    pub http_addr: SocketAddr,
}

/// Flags of `images`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// The mirror the operator will be started with.
    #[arg(long, value_parser = crate::build::images::parse_registry)]
    pub image_registry: Option<String>,
}

/// Flags of `serve-tuf`.
#[derive(Debug, clap::Args)]
pub struct ServeTufArgs {
    /// Where the repository ConfigMap is mounted.
    #[arg(long, default_value = "/var/run/tuf")]
    pub dir: std::path::PathBuf,
    /// Address to serve on.
    #[arg(long, default_value = "0.0.0.0:8080", env = "HTTP_ADDR")]
    pub http_addr: SocketAddr,
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
    /// The operator's own image, which the stage Jobs run.
    #[arg(long, env = "OPERATOR_IMAGE", default_value = "sigstore-operator:dev")]
    pub image: String,
    /// Pull every default image of every stack from this registry (and
    /// path) instead of its upstream one, keeping path and digest:
    /// `ghcr.io/sigstore/fulcio@sha256:…` becomes
    /// `<registry>/sigstore/fulcio@sha256:…`. Images a stack's spec names
    /// are used as written.
    #[arg(long, env = "IMAGE_REGISTRY", value_parser = crate::build::images::parse_registry)]
    pub image_registry: Option<String>,
    /// A Secret (`kubernetes.io/dockerconfigjson`) put in
    /// `imagePullSecrets` of every Pod a stack runs, stage Jobs included.
    /// It must exist in each stack's namespace. Repeatable; the env var is
    /// comma-separated.
    #[arg(long = "image-pull-secret", env = "IMAGE_PULL_SECRETS", value_delimiter = ',', value_parser = parse_secret_name)]
    pub image_pull_secrets: Vec<String>,
    /// How long one stage attempt may wait for its inputs and servers.
    #[arg(long, env = "STAGE_TIMEOUT", default_value = "5m")]
    pub stage_timeout: Duration,
    /// Pod retries within one stage Job before the Job counts as failed.
    #[arg(long, env = "STAGE_BACKOFF_LIMIT", default_value_t = 3, value_parser = clap::value_parser!(i32).range(0..=20))]
    pub stage_backoff_limit: i32,
    /// Delay before a failed stage Job is replaced; it doubles with each
    /// failure in a row, up to 5 minutes.
    #[arg(long, env = "STAGE_RETRY_BASE", default_value = "10s")]
    pub stage_retry_base: Duration,
    /// Elect one leader among replicas on a Lease: only the leader
    /// reconciles; the others serve /healthz and /metrics and take over
    /// when it stops renewing.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// The Lease's namespace (default: POD_NAMESPACE, else the client's
    /// namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// The Lease's name.
    #[arg(long, default_value = "sigstore-operator")]
    pub leader_election_id: String,
    /// This replica's identity in the Lease (default: POD_NAME, else the
    /// host name and process ID).
    #[arg(long, env = "POD_NAME")]
    pub leader_election_identity: Option<String>,
    /// How long a Lease that is not renewed stays its holder's.
    #[arg(long, default_value = "15s")]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps reconciling without a successful renewal
    /// (shorter than the lease duration).
    #[arg(long, default_value = "10s")]
    pub leader_election_renew_deadline: Duration,
    /// How often the leader renews and a standby looks.
    #[arg(long, default_value = "2s")]
    pub leader_election_retry_period: Duration,
}

/// `PREFIX=URL` of `serve-tiles --forward`.
fn parse_forward(value: &str) -> Result<crate::files::Forward, String> {
    match value.split_once('=') {
        Some((prefix, upstream)) if prefix.starts_with('/') && upstream.starts_with("http://") => {
            Ok(crate::files::Forward {
                prefix: prefix.to_owned(),
                upstream: upstream.to_owned(),
            })
        }
        _ => Err(format!(
            "{value:?} is not PREFIX=URL, e.g. /api/=http://127.0.0.1:3000"
        )),
    }
}

/// A Secret's name: a DNS subdomain.
fn parse_secret_name(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a Secret name (lower-case letters, digits, '-' and '.')"
        ))
    }
}

/// The bootstrap stages. Each writes its results into ConfigMaps and Secrets
/// of the stack and never replaces key material that exists.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Create (or adopt) a log's Trillian tree and record its ID.
    Createtree(CreateTreeArgs),
    /// Create Fulcio's CA, or import the user's, once.
    Createcerts(CreateCertsArgs),
    /// Create a Rekor log's signing key once.
    Rekorkey(RekorKeyArgs),
    /// Create TesseraCT's key once and keep the Fulcio roots it trusts.
    Createtesseract(StageArgs),
    /// Create the CT log's key once and write ct_server's config.
    Createctconfig(CreateCtConfigArgs),
    /// Create the timestamp authority's key and certificate chain once.
    Createcertchain(StageArgs),
    /// Create the TUF role keys once and sign the TUF repository (again
    /// when its inputs change or a role comes due).
    Createtuf(CreateTufArgs),
    /// Sign a blob with the stack's Fulcio, TSA and every Rekor log, verify
    /// the bundles with nothing but the published trust root, and record
    /// the result and the proof in ConfigMap `<stack>-selfcheck`.
    Selfcheck(SelfCheckArgs),
}

/// Flags of `stage selfcheck`.
#[derive(Debug, clap::Args)]
pub struct SelfCheckArgs {
    #[command(flatten)]
    pub common: StageArgs,
    /// The service-account token to sign with (audience `sigstore`).
    #[arg(long, default_value = "/var/run/sigstore/token")]
    pub token: std::path::PathBuf,
    /// What the operator runs this check for (recorded with the result);
    /// without it, the trust root's fingerprint.
    #[arg(long)]
    pub inputs: Option<String>,
}

/// Flags of `stage rekorkey`.
#[derive(Debug, clap::Args)]
pub struct RekorKeyArgs {
    #[command(flatten)]
    pub common: StageArgs,
    /// Which Rekor's key: v1 (ECDSA P-256) or v2.
    #[arg(long, value_enum, default_value = "v1")]
    pub generation: GenerationArg,
    /// The key of Rekor v2 (v1's is always ECDSA P-256).
    #[arg(long, value_enum, default_value = "ed25519")]
    pub key_algorithm: LogKeyAlgorithmArg,
}

/// Rekor generations on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GenerationArg {
    /// Rekor v1.
    V1,
    /// Rekor v2.
    V2,
}

/// Log key algorithms on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogKeyAlgorithmArg {
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256.
    EcdsaP256,
}

impl From<LogKeyAlgorithmArg> for crate::keys::Algorithm {
    fn from(a: LogKeyAlgorithmArg) -> Self {
        match a {
            LogKeyAlgorithmArg::Ed25519 => Self::Ed25519,
            LogKeyAlgorithmArg::EcdsaP256 => Self::EcdsaP256,
        }
    }
}

/// Flags of `stage createtuf`: each role's metadata lifetime.
#[derive(Debug, clap::Args)]
pub struct CreateTufArgs {
    #[command(flatten)]
    pub common: StageArgs,
    /// Lifetime of root.json.
    #[arg(long, default_value = "87600h")]
    pub root_expiry: Duration,
    /// Lifetime of targets.json.
    #[arg(long, default_value = "87600h")]
    pub targets_expiry: Duration,
    /// Lifetime of snapshot.json.
    #[arg(long, default_value = "8760h")]
    pub snapshot_expiry: Duration,
    /// Lifetime of timestamp.json.
    #[arg(long, default_value = "8760h")]
    pub timestamp_expiry: Duration,
}

/// Flags of `stage createcerts`.
#[derive(Debug, clap::Args)]
pub struct CreateCertsArgs {
    #[command(flatten)]
    pub common: StageArgs,
    /// Subject CN of a generated CA.
    #[arg(long, default_value = "sigstore-operator")]
    pub common_name: String,
    /// Subject O of a generated CA.
    #[arg(long, default_value = "sigstore-operator")]
    pub organization: String,
    /// Validity of a generated CA, as a Go duration.
    #[arg(long, default_value = "87600h")]
    pub validity: Duration,
    /// Key algorithm of a generated CA.
    #[arg(long, value_enum, default_value = "ecdsa-p256")]
    pub key_algorithm: KeyAlgorithmArg,
    /// Import the CA in this Secret (keys `cert`, `private`, optional
    /// `password`) instead of generating one.
    #[arg(long)]
    pub existing_secret: Option<String>,
}

/// Key algorithms on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlgorithmArg {
    /// ECDSA P-256.
    EcdsaP256,
    /// ECDSA P-384.
    EcdsaP384,
    /// RSA 3072.
    Rsa3072,
}

impl From<KeyAlgorithmArg> for KeyAlgorithm {
    fn from(a: KeyAlgorithmArg) -> Self {
        match a {
            KeyAlgorithmArg::EcdsaP256 => Self::EcdsaP256,
            KeyAlgorithmArg::EcdsaP384 => Self::EcdsaP384,
            KeyAlgorithmArg::Rsa3072 => Self::Rsa3072,
        }
    }
}

/// Flags of `stage createctconfig`.
#[derive(Debug, clap::Args)]
pub struct CreateCtConfigArgs {
    #[command(flatten)]
    pub common: StageArgs,
    /// The CT log's URL path segment.
    #[arg(long, default_value = "sigstorescaffolding")]
    pub prefix: String,
    /// Trillian log server gRPC address, `host:port`.
    #[arg(long, env = "TRILLIAN_ADDRESS")]
    pub trillian_address: String,
    /// Where ct_server's pod mounts the CT Secret.
    #[arg(long, default_value = "/ctfe-keys")]
    pub keys_dir: String,
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

    fn parse(args: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sigstore-operator").chain(args.split_whitespace()))
    }

    #[test]
    fn createtree_flags() {
        let base = "stage createtree --stack demo --namespace ns --trillian-address t:8090";
        let cli = parse(&format!("{base} --log ctlog --timeout 90s")).unwrap();
        let Command::Stage(StageCommand::Createtree(args)) = cli.command else {
            panic!("expected createtree")
        };
        assert_eq!(args.log, Log::Ctlog);
        assert_eq!(args.common.timeout.as_std().as_secs(), 90);
        let err = parse(&format!("{base} --log fulcio"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log"), "{err}");
        let err = parse(&format!("{base} --log rekor --timeout soon"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--timeout"), "{err}");
    }

    #[test]
    fn image_source_flags() {
        let cli = parse(
            "run --image-registry mirror.example/sigstore/ --image-pull-secret a \
             --image-pull-secret b",
        )
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(
            args.image_registry.as_deref(),
            Some("mirror.example/sigstore")
        );
        assert_eq!(args.image_pull_secrets, ["a", "b"]);
        let err = parse("run --image-registry https://mirror.example")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--image-registry") && err.contains("no https://"),
            "{err}"
        );
        let err = parse("run --image-pull-secret Reg_Cred")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--image-pull-secret") && err.contains("Secret name"),
            "{err}"
        );
    }

    #[test]
    fn log_format_is_checked() {
        let err = Cli::try_parse_from(["sigstore-operator", "--log-format", "xml", "crd"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--log-format"), "{err}");
    }
}
