//! `conveyor`: the controller and the command line. Composition root; anyhow lives only here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use conveyor::config::Config;
use conveyor::leader::Election;
use conveyor::reconcile::{self, Context};
use conveyor::telemetry::{self, Metrics};
use tokio_util::sync::CancellationToken;

/// Ships releases through environments in order: package, deploy, verify, promote, roll back.
#[derive(Parser)]
#[command(name = "conveyor", version, about)]
struct Cli {
    /// Configuration file (see config/conveyor.yaml); every key is also read from CONVEYOR_<KEY>.
    #[arg(long, global = true, env = "CONVEYOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (both reconcilers, leader election, /metrics, /healthz, /readyz).
    Controller,
    /// Print the CustomResourceDefinitions as YAML (`conveyor crds | kubectl apply --server-side -f -`).
    Crds {
        /// Write one file per CRD into this directory instead (how `crds/` is regenerated).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Package a git source into a reproducible artifact and print its digest (same code as the controller).
    Package(conveyor::cli::package::Args),
    /// Tag a new version in a local repository, prepend its notes to the changelog, print or apply its Release.
    Release(conveyor::cli::release::Args),
    /// Let a release into a `Manual` environment (records approve.conveyor.dev/<ENV> on the Pipeline).
    Approve(conveyor::cli::control::ApproveArgs),
    /// Put an earlier healthy release back into an environment (records rollback.conveyor.dev/<ENV> on the Pipeline).
    Rollback(conveyor::cli::rollback::RollbackArgs),
    /// Show each environment of a Pipeline (table), or every deployment as a report (-o json|yaml).
    Status(conveyor::cli::status::StatusArgs),
    /// Stop new deployments of a Pipeline; deployments in flight finish (records conveyor.dev/paused).
    Pause(conveyor::cli::control::PipelineArgs),
    /// Let a paused Pipeline start deployments again (removes conveyor.dev/paused).
    Resume(conveyor::cli::control::PipelineArgs),
}

fn main() -> ExitCode {
    let cli = parse_cli();
    match cli.command {
        Command::Crds { dir: None } => {
            print!("{}", conveyor::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Crds { dir: Some(dir) } => match write_crds(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("conveyor: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Package(args) => cli_command(cli.config.as_deref(), |c| conveyor::cli::package::run(args, c)),
        Command::Release(args) => cli_command(cli.config.as_deref(), |c| conveyor::cli::release::run(args, c)),
        // The gates only talk to the cluster: no configuration to load.
        Command::Approve(args) => exit_code(conveyor::cli::control::approve(args)),
        Command::Rollback(args) => exit_code(conveyor::cli::rollback::rollback(args)),
        Command::Status(args) => exit_code(conveyor::cli::status::status(args)),
        Command::Pause(args) => exit_code(conveyor::cli::control::pause(args)),
        Command::Resume(args) => exit_code(conveyor::cli::control::resume(args)),
        Command::Controller => {
            let config = match load_config(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            telemetry::init_tracing(config.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime can be built on this platform");
            match runtime.block_on(controller(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Parses the command line. kubectl runs a plugin `kubectl conveyor …` as the executable
/// `kubectl-conveyor` on PATH (a symlink or copy of this binary), with that path as argv[0]:
/// under that name, usage and help say `kubectl conveyor`.
fn parse_cli() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let plugin = argv0.as_deref().and_then(|p| p.file_stem()).is_some_and(|n| n == "kubectl-conveyor");
    if !plugin {
        return Cli::parse();
    }
    let matches = Cli::command().bin_name("kubectl conveyor").get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Loads the configuration; on error prints it and gives exit code 2.
fn load_config(file: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(file).map_err(|e| {
        eprintln!("conveyor: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

/// Runs a human command: configuration errors exit 2, other errors 1, each printed once.
fn cli_command(file: Option<&std::path::Path>, run: impl FnOnce(&Config) -> anyhow::Result<()>) -> ExitCode {
    let config = match load_config(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    exit_code(run(&config))
}

/// Exit code 0, or 1 with the error printed once.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conveyor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_crds(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for crd in conveyor::api::crds() {
        let path = dir.join(conveyor::api::crd_file_name(&crd));
        std::fs::write(&path, conveyor::api::crd_yaml(&crd))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// This replica's name in the Lease and in Events: the pod name, else host and process id.
fn identity() -> String {
    std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "conveyor".into());
        format!("{}-{}", host.trim(), std::process::id())
    })
}

async fn controller(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let kube_config = kube::Config::infer()
        .await
        .context("cannot build a Kubernetes client (is KUBECONFIG or in-cluster config set?)")?;
    // Kept to build impersonating clients for environments that name a ServiceAccount.
    let client = kube::Client::try_from(kube_config.clone()).context("cannot build a Kubernetes client")?;
    let identity = identity();
    let metrics = Arc::new(Metrics::new());
    let ctx = Arc::new(
        Context::new(client.clone(), kube_config, config.clone(), metrics.clone(), identity.clone())
            .with_context(|| format!("cannot use artifact_dir {}", config.artifact_dir.display()))?,
    );
    reconcile::check_crds(&ctx).await.map_err(anyhow::Error::msg)?;

    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));

    let ready = Arc::new(AtomicBool::new(false));
    let (addr, server) =
        telemetry::bind(config.metrics_address, metrics.clone(), ready.clone(), shutdown.clone().cancelled_owned())
            .await
            .with_context(|| format!("cannot listen on metrics_address {}", config.metrics_address))?;
    tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    let server = tokio::spawn(server);

    let mut election = None;
    if config.leader_election {
        let namespace = if config.lease_namespace.is_empty() {
            std::env::var("POD_NAMESPACE").unwrap_or_else(|_| client.default_namespace().to_owned())
        } else {
            config.lease_namespace.clone()
        };
        let lease = format!("{namespace}/{}", config.lease_name);
        let mut e = Election::join(client.clone(), &namespace, &config.lease_name, &identity, config.lease_duration)
            .await
            .with_context(|| format!("cannot join leader election on Lease {lease}"))?;
        tracing::info!(%identity, %lease, "waiting to become leader");
        // A standby is ready: it serves probes and takes over when the leader goes away.
        ready.store(true, Ordering::Release);
        tokio::select! {
            acquired = e.acquired() => if !acquired { anyhow::bail!("leader election on Lease {lease} ended unexpectedly") },
            () = shutdown.cancelled() => {
                e.release().await;
                let _ = server.await;
                return Ok(());
            }
        }
        ready.store(false, Ordering::Release);
        tracing::info!(%identity, %lease, "became leader");
        metrics.leader.set(1);
        election = Some(e);
    }

    // Reconcile until shutdown, or stop at once when leadership is lost; release the Lease
    // only after the controllers have stopped.
    let stop = shutdown.child_token();
    let lost = CancellationToken::new();
    let stopped = CancellationToken::new();
    let keeper = election.map(|mut e| {
        let (stop, lost, stopped) = (stop.clone(), lost.clone(), stopped.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = e.lost() => {
                    lost.cancel();
                    stop.cancel();
                }
                () = stopped.cancelled() => {}
            }
            stopped.cancelled().await;
            e.release().await;
        })
    });
    reconcile::run(ctx.clone(), ready, stop).await;
    metrics.leader.set(0);
    stopped.cancel();
    // What happened is still announced on the way out, while the Lease is released.
    let keeper = async {
        if let Some(keeper) = keeper {
            let _ = keeper.await;
        }
    };
    tokio::join!(keeper, ctx.notifier.drain(conveyor::notify::DRAIN_GRACE));
    if lost.is_cancelled() {
        anyhow::bail!("lost the leader Lease; exiting so that a restart rejoins the election");
    }
    shutdown.cancel();
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

async fn signal_shutdown(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    token.cancel();
}
