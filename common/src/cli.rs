//! The shared command line of the four binaries: `serve` (the default), `migrate`, `reencrypt`
//! and `config`, with `--config FILE` (or `HERALD_CONFIG`). Keeps each `main.rs` to a few lines.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ServiceName};
use crate::service::Running;
use crate::store::{Reseal, Store};

#[derive(Debug, Parser)]
#[command(version, about = "Herald: event actions over RabbitMQ")]
pub struct Cli {
    /// A TOML configuration file, layered between the defaults and HERALD_* variables.
    #[arg(long, env = "HERALD_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply database migrations (and seal, with a key, what was stored before sealing
    /// began) and exit.
    Migrate,
    /// Seal every stored secret, handler and provider secret again with the current
    /// `security.encryption_key` (after a rotation: the old key stays in
    /// `security.previous_encryption_keys` until this has run) and exit.
    Reencrypt,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
}

/// Parses the command line, loads configuration and runs `start` until a signal.
/// Bad configuration exits with status 2 and one line naming the key.
pub fn main<F, Fut>(service: ServiceName, start: F) -> ExitCode
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<Running>>,
{
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let loaded = Config::load(service, cli.config.as_deref()).and_then(|config| {
        // Only a service that runs needs its keys: `migrate` and `config` work without.
        if matches!(command, Command::Serve) {
            config.validate_for(service)?;
        }
        Ok(config)
    });
    let config = match loaded {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{}: invalid configuration: {error}", service.binary());
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!(
                "{}: cannot start the async runtime: {error}",
                service.binary()
            );
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry = match crate::telemetry::init(service, &config.telemetry) {
            Ok(guard) => guard,
            Err(error) => {
                eprintln!("{}: cannot start telemetry: {error}", service.binary());
                return ExitCode::FAILURE;
            }
        };
        let outcome = match command {
            Command::Serve => serve(service, config, start).await,
            Command::Migrate => migrate(&config).await,
            Command::Reencrypt => reencrypt(&config).await,
            Command::Config => {
                println!("{config:#?}");
                Ok(())
            }
        };
        match outcome {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "{} failed", service.binary());
                eprintln!("{}: {error:#}", service.binary());
                ExitCode::FAILURE
            }
        }
    })
}

async fn serve<F, Fut>(service: ServiceName, config: Config, start: F) -> anyhow::Result<()>
where
    F: FnOnce(Config, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<Running>>,
{
    let shutdown = CancellationToken::new();
    crate::shutdown::cancel_on_signal(shutdown.clone());
    let running = start(config, shutdown).await?;
    tracing::info!(
        service = service.binary(),
        ops = %running.ops_addr,
        api = running.api_addr.map(|a| a.to_string()),
        "started"
    );
    running.done.await?;
    tracing::info!(service = service.binary(), "stopped");
    Ok(())
}

async fn connect(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::connect(&config.database)
        .await?
        .with_keys(config.security.key_ring()))
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    connect(config).await?.migrate().await?;
    tracing::info!("migrations applied");
    Ok(())
}

async fn reencrypt(config: &Config) -> anyhow::Result<()> {
    let store = connect(config).await?;
    let done = store.reseal(Reseal::NotCurrent).await?;
    println!(
        "sealed again with the current key: {} actions, {} providers, {} secrets",
        done.actions, done.providers, done.secrets
    );
    Ok(())
}
