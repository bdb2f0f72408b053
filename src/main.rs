//! The `sigstore-operator` binary: a thin shell over the library.

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use sigstore_operator::{
    Error, Result,
    cli::{Cli, Command, GenerationArg, RunArgs, StageArgs, StageCommand},
    controller, crd, health, leader,
    metrics::Metrics,
    shutdown,
    stage::{
        StageContext, createcertchain, createcerts, createctconfig, createtesseract, createtree,
        createtuf, rekorkey, selfcheck,
    },
    telemetry, tuf,
};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    sigstore_operator::install_crypto_provider();
    telemetry::init(cli.log_format, "info,kube=warn,tower=warn,hyper=warn");
    let is_stage = matches!(cli.command, Command::Stage(_));
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Crd => print_crd(),
        Command::ApiDocs => {
            print!("{}", crd::api_reference());
            Ok(())
        }
        Command::Images(args) => {
            for image in sigstore_operator::build::images::PINNED {
                match &args.image_registry {
                    Some(registry) => println!(
                        "{image} {}",
                        sigstore_operator::build::images::mirrored(image, registry)
                    ),
                    None => println!("{image}"),
                }
            }
            Ok(())
        }
        Command::Stage(stage) => run_stage(stage).await,
        Command::ServeTuf(args) => {
            tuf::serve::serve(args.dir, args.http_addr, shutdown::on_signal()).await
        }
        Command::ServeTiles(args) => {
            sigstore_operator::serve_tiles::serve(
                args.dir,
                args.http_addr,
                args.forward,
                shutdown::on_signal(),
            )
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "sigstore-operator failed");
            if is_stage {
                // The last line of a failed Pod's log becomes its termination
                // message, which the operator shows in the stage condition.
                eprintln!("{error}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run_stage(stage: StageCommand) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let cancel = shutdown::on_signal();
    let context = |common: StageArgs| StageContext {
        client: client.clone(),
        namespace: common.namespace,
        stack: common.stack,
        cancel: cancel.clone(),
        timeout: common.timeout.as_std(),
    };
    match stage {
        StageCommand::Createtree(args) => {
            let ctx = context(args.common);
            let stage_args = createtree::Args {
                log: args.log,
                trillian: args.trillian_address,
                config_map: args.config_map,
            };
            let outcome = createtree::run(&ctx, &stage_args).await?;
            // The ID on stdout, for scripts.
            println!("{}", outcome.tree_id());
        }
        StageCommand::Createcerts(args) => {
            let stage_args = createcerts::Args {
                spec: createcerts::CaSpec {
                    common_name: args.common_name,
                    organization: args.organization,
                    validity: args.validity.as_std(),
                    algorithm: args.key_algorithm.into(),
                },
                existing_secret: args.existing_secret,
            };
            createcerts::run(&context(args.common), &stage_args).await?;
        }
        StageCommand::Rekorkey(args) => {
            let log = match args.generation {
                GenerationArg::V1 => rekorkey::Log::V1,
                GenerationArg::V2 => rekorkey::Log::V2(args.key_algorithm.into()),
            };
            rekorkey::run(&context(args.common), log).await?;
        }
        StageCommand::Createtesseract(common) => {
            createtesseract::run(&context(common)).await?;
        }
        StageCommand::Createcertchain(common) => {
            createcertchain::run(&context(common)).await?;
        }
        StageCommand::Createctconfig(args) => {
            let stage_args = createctconfig::Args {
                prefix: args.prefix,
                trillian: args.trillian_address,
                keys_dir: args.keys_dir,
            };
            createctconfig::run(&context(args.common), &stage_args).await?;
        }
        StageCommand::Createtuf(args) => {
            let expiry = tuf::Expiry {
                root: args.root_expiry.as_std(),
                targets: args.targets_expiry.as_std(),
                snapshot: args.snapshot_expiry.as_std(),
                timestamp: args.timestamp_expiry.as_std(),
            };
            createtuf::run(&context(args.common), &expiry).await?;
        }
        StageCommand::Selfcheck(args) => {
            let stage_args = selfcheck::Args {
                token: args.token,
                inputs: args.inputs,
            };
            selfcheck::run(&context(args.common), &stage_args).await?;
        }
    }
    Ok(())
}

fn print_crd() -> Result<()> {
    let yaml = crd::crd_yaml()?;
    print!("{yaml}");
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let shutdown = shutdown::on_signal();
    let metrics = Arc::new(Metrics::default());
    let ready = health::Readiness::default();
    let server = tokio::spawn(health::serve(
        args.http_addr,
        ready.clone(),
        metrics.clone(),
        shutdown.clone(),
    ));
    let options = controller::Options {
        namespace: args.watch_namespace,
        concurrency: args.concurrency,
        jobs: sigstore_operator::stage::job::JobSettings {
            image: args.image,
            timeout: args.stage_timeout,
            backoff_limit: args.stage_backoff_limit,
            source: sigstore_operator::build::images::ImageSource {
                registry: args.image_registry,
                pull_secrets: args.image_pull_secrets,
            },
        },
        stage_retry_base: args.stage_retry_base.as_std(),
    };
    let result = if args.leader_elect {
        let settings = leader::Settings {
            namespace: args
                .leader_election_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            name: args.leader_election_id.clone(),
            identity: args
                .leader_election_identity
                .clone()
                .unwrap_or_else(default_identity),
            lease_duration: args.leader_election_lease_duration.as_std(),
            renew_deadline: args.leader_election_renew_deadline.as_std(),
            retry_period: args.leader_election_retry_period.as_std(),
        }
        .validated()?;
        lead(client, settings, options, metrics, ready, shutdown.clone()).await
    } else {
        metrics.leader.set(1);
        controller::run(client, options, metrics, ready, shutdown.clone()).await
    };
    // Whatever ended the controller ends the server too.
    shutdown.cancel();
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "HTTP server failed"),
        Err(error) => tracing::error!(%error, "HTTP server task panicked"),
    }
    result?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// This host's name and process ID: an identity for a replica run outside
/// a Pod.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sigstore-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Stands by until this replica holds the Lease, then reconciles until
/// shutdown (releasing the Lease once the controller stopped) or until the
/// Lease is lost (an error: the process exits and starts again as a
/// standby). Standing by is ready: a rollout of several replicas goes on.
async fn lead(
    client: kube::Client,
    settings: leader::Settings,
    options: controller::Options,
    metrics: Arc<Metrics>,
    ready: health::Readiness,
    shutdown: CancellationToken,
) -> Result<()> {
    let elector = Arc::new(leader::Elector::new(client.clone(), settings));
    metrics.leader.set(0);
    ready.set(true);
    if !elector.acquire(&shutdown).await {
        return Ok(());
    }
    metrics.leader.set(1);
    let lost = CancellationToken::new();
    let renewing = CancellationToken::new();
    let holder = {
        let (elector, lost, until) = (elector.clone(), lost.clone(), renewing.clone());
        tokio::spawn(async move { elector.hold(&until, &lost).await })
    };
    // The controller stops on shutdown or the moment the Lease is lost.
    let stop = CancellationToken::new();
    {
        let (stop, shutdown, lost) = (stop.clone(), shutdown.clone(), lost.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = lost.cancelled() => {}
            }
            stop.cancel();
        });
    }
    let result = controller::run(client, options, metrics.clone(), ready, stop).await;
    renewing.cancel();
    let ended = holder.await;
    metrics.leader.set(0);
    match ended {
        Ok(leader::Ended::Lost(why)) => {
            tracing::error!(%why, "stopped leading");
            result.and(Err(Error::LeaseLost(why)))
        }
        _ => {
            // Only now that nothing acts: the next replica may take over.
            elector.release().await;
            result
        }
    }
}
