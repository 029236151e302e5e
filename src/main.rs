//! The `edgeguard` command: clap parsing, exit codes, and printing. The only
//! user of `anyhow`.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use edgeguard::config::{self, Diagnostics};
use edgeguard::gateway::Shared;
use edgeguard::geo::Country;
use edgeguard::policy::{self, Policy};
use edgeguard::probe::Probe;
use edgeguard::{explain, probe, request_id, ruletest, server};

/// An access-control gateway: decides every request against an ordered TOML
/// rulebook, forwards what is allowed, and says exactly why it refuses the rest.
#[derive(Parser)]
#[command(name = "edgeguard", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// The rulebook. Relative paths inside it are relative to its own folder.
    #[arg(
        long,
        env = "EDGEGUARD_CONFIG",
        default_value = "config/edgeguard.toml",
        value_name = "PATH"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Start the gateway in the foreground, logging JSON lines to stdout.
    /// SIGHUP reloads the rulebook; SIGTERM or SIGINT shut down gracefully.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the rulebook and run its [[test]] cases; print a summary, or
    /// every problem as PATH:LINE:COLUMN: message. Exit 0 when it loads, 1 when not.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Also fail (exit 1) on warnings: rules that can never match,
        /// overlapping CIDRs, unknown country codes.
        #[arg(long)]
        strict: bool,
    },
    /// Run the rulebook's [[test]] cases, print each with pass or fail and,
    /// for a failure, how every rule decided. Exit 0 when all pass.
    Test {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show how the rulebook decides one request, rule by rule.
    Explain(ExplainArgs),
    /// Probe the admin /healthz (for container HEALTHCHECKs): exit 0 when it
    /// answers 200 within 3 seconds, 1 otherwise.
    Health {
        /// The admin address; default: server.admin of the rulebook
        /// (127.0.0.1 standing for a wildcard address).
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// The client address (as found after any trusted-proxy walk).
    #[arg(long, value_name = "IP")]
    ip: IpAddr,
    /// The request path, optionally with ?query, as a client would send it.
    #[arg(long, default_value = "/", value_name = "P")]
    path: String,
    /// The request method.
    #[arg(long, default_value = "GET", value_name = "M")]
    method: String,
    /// The Host header.
    #[arg(long, value_name = "H")]
    host: Option<String>,
    /// The Referer header.
    #[arg(long, value_name = "URL")]
    referer: Option<String>,
    /// A request header, as 'Name: value'; repeat for several.
    #[arg(long = "header", value_name = "'Name: value'")]
    headers: Vec<String>,
    /// Stand for a verified bearer token with these roles (comma-separated;
    /// an empty value is a token without roles).
    #[arg(long, value_name = "a,b")]
    roles: Option<String>,
    /// Stand for the GeoIP answer (two letters, XX for unknown).
    #[arg(long, value_name = "CC")]
    country: Option<String>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config, strict } => check(&config.config, strict),
        Command::Test { config } => test(&config.config),
        Command::Explain(args) => explain_cmd(args),
        Command::Run { config } => run(&config.config),
        Command::Health { admin, config } => health(admin.as_deref(), &config.config),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edgeguard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_warnings(warnings: &[config::ConfigError]) {
    for w in warnings {
        eprintln!("{}: warning: {}", w.location, w.message);
    }
}

/// `1 rule`, `2 rules`.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn check(path: &Path, strict: bool) -> anyhow::Result<ExitCode> {
    match policy::load(path) {
        Ok(loaded) => {
            print_warnings(&loaded.warnings);
            let p = &loaded.policy;
            let warnings = match loaded.warnings.len() {
                0 => String::new(),
                n => format!(", {}", plural(n, "warning")),
            };
            println!(
                "{}: ok: {}, {}, {}, {}, {} passed{warnings}",
                path.display(),
                plural(p.rules.len(), "rule"),
                plural(p.lists.len(), "list"),
                plural(p.cidr_count(), "CIDR"),
                plural(p.routes.all().len(), "route"),
                plural(p.tests.len(), "test"),
            );
            if strict && !loaded.warnings.is_empty() {
                eprintln!("edgeguard: --strict: {} warnings", loaded.warnings.len());
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "edgeguard: {} error{} in {}",
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" },
                path.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Reads and compiles without running the rulebook's tests.
fn compile(path: &Path) -> Option<Policy> {
    let mut diags = Diagnostics::default();
    let policy = config::read(path, &mut diags).and_then(|book| Policy::compile(&book, &mut diags));
    diags.sort();
    match policy {
        Some(p) if !diags.has_errors() => Some(p),
        _ => {
            for e in &diags.errors {
                eprintln!("{e}");
            }
            None
        }
    }
}

fn test(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(policy) = compile(path) else {
        return Ok(ExitCode::FAILURE);
    };
    let mut failed = 0;
    let mut out = std::io::stdout().lock();
    for t in &policy.tests {
        let outcome = ruletest::run(&policy, t);
        if outcome.passed() {
            writeln!(out, "ok    {}", t.name)?;
        } else {
            failed += 1;
            writeln!(out, "FAIL  {} ({})", t.name, t.location)?;
            for m in &outcome.mismatches {
                writeln!(out, "      {m}")?;
            }
            let id = request_id::new();
            let report = explain::to_text(&policy, &t.probe, &outcome.result, id.as_str());
            for line in report.lines() {
                writeln!(out, "      | {line}")?;
            }
        }
    }
    writeln!(
        out,
        "{} tests, {} passed, {} failed",
        policy.tests.len(),
        policy.tests.len() - failed,
        failed
    )?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn explain_cmd(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let Some(policy) = compile(&args.config.config) else {
        return Ok(ExitCode::FAILURE);
    };
    let probe = build_probe(&args)?;
    let result = probe::run(&policy, &probe);
    let id = request_id::new();
    if args.json {
        let value = explain::to_json(&policy, &probe, &result, id.as_str());
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!(
            "{}",
            explain::to_text(&policy, &probe, &result, id.as_str())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn build_probe(args: &ExplainArgs) -> anyhow::Result<Probe> {
    let mut probe = Probe::new(args.ip);
    probe.method = policy::values::parse_method(&args.method).map_err(anyhow::Error::msg)?;
    probe.target = args.path.clone();
    if let Some(host) = &args.host {
        probe.host = host.clone();
    }
    if let Some(referer) = &args.referer {
        probe
            .referer(referer)
            .with_context(|| format!("invalid --referer {referer:?}"))?;
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("invalid --header {header:?}: write 'Name: value'");
        };
        let name = http::HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("invalid header name in --header {header:?}"))?;
        let value = http::HeaderValue::from_str(value.trim())
            .with_context(|| format!("invalid header value in --header {header:?}"))?;
        probe.headers.append(name, value);
    }
    if let Some(roles) = &args.roles {
        probe.roles = Some(
            roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        );
    }
    if let Some(country) = &args.country {
        probe.country = Some(
            Country::parse(country)
                .with_context(|| format!("invalid --country {country:?}: write two letters"))?,
        );
    }
    Ok(probe)
}

fn run(path: &Path) -> anyhow::Result<ExitCode> {
    edgeguard::log::init_events();
    let loaded = match policy::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("edgeguard: the rulebook {} did not load", path.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!(location = %w.location, "{}", w.message);
    }
    let workers = std::env::var("EDGEGUARD_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Signals are caught from before the start is announced: SIGHUP's
    // default action would end the process.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal handler")?;
    let (mut term, mut int, mut hup) = {
        use tokio::signal::unix::{SignalKind, signal};
        let _runtime = signals.enter();
        (
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::hangup())?,
        )
    };
    let shared = Shared::new(loaded.policy, edgeguard::log::AccessLog::stdout());
    let control = shared.control.clone();
    let running = server::start(shared, workers)?;
    if let Err(e) = control.reloader.start(running.shared(), true) {
        tracing::error!(error = %e, "rulebook reloads are off");
    }
    {
        let live = running.shared().policy();
        let policy = &live.policy;
        let listen: Vec<String> = running.listen.iter().map(ToString::to_string).collect();
        let tls: Vec<String> = running.tls_listen.iter().map(ToString::to_string).collect();
        let admin = running
            .admin
            .map_or_else(|| "off".to_owned(), |a| a.to_string());
        tracing::info!(
            config = %path.display(),
            sha256 = %policy.source.sha256,
            rules = policy.rules.len(),
            routes = policy.routes.all().len(),
            cidrs = policy.cidr_count(),
            listen = %listen.join(" "),
            tls = %tls.join(" "),
            admin = %admin,
            workers,
            "edgeguard started"
        );
    }
    signals.block_on(async {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => reload(&control.reloader),
            }
        }
        tracing::info!("shutting down: no longer ready, finishing in-flight requests");
        anyhow::Ok(())
    })?;
    running.begin_shutdown();
    running.wait();
    control.reloader.stop();
    tracing::info!("edgeguard stopped");
    Ok(ExitCode::SUCCESS)
}

/// Asks the reload thread to load the rulebook again (SIGHUP); it swaps the
/// new one in, or keeps the current one when it fails.
fn reload(reloader: &edgeguard::reload::Reloader) {
    reloader.request(edgeguard::reload::Trigger::Signal);
}

fn health(admin: Option<&str>, config: &Path) -> anyhow::Result<ExitCode> {
    let addr = match admin {
        Some(a) => a.to_owned(),
        None => admin_address(config)?,
    };
    let mut addr: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("invalid admin address {addr:?}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    match probe_healthz(addr) {
        Ok(200) => {
            println!("healthy: {addr}/healthz answered 200");
            Ok(ExitCode::SUCCESS)
        }
        Ok(status) => {
            eprintln!("unhealthy: {addr}/healthz answered {status}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {addr}/healthz: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `server.admin` of the rulebook, read without compiling it.
fn admin_address(config: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", config.display()))?;
    let admin = table
        .get("server")
        .and_then(|s| s.get("admin"))
        .and_then(|a| a.as_str())
        .unwrap_or("127.0.0.1:9901");
    if admin == "off" {
        bail!("the admin listener is off in {}", config.display());
    }
    Ok(admin.to_owned())
}

fn probe_healthz(addr: std::net::SocketAddr) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}
