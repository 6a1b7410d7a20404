//! The `syncto` binary: arguments → configuration → logging → serve until
//! SIGTERM/SIGINT, then drain and exit 0.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use syncto::cli::{self, Action};
use syncto::config::{self, Config};
use syncto::{logging, systemd};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("syncto: {message}");
            ExitCode::from(1)
        }
    }
}

/// `--strict` with configuration warnings: they are logged, then the process stops.
const WARNINGS_ARE_ERRORS: u8 = 2;

fn run() -> Result<ExitCode, String> {
    let args = cli::parse(std::env::args_os().skip(1))?;
    match args.action {
        Action::Help => {
            print!("{}", cli::HELP);
            return Ok(ExitCode::SUCCESS);
        }
        Action::Version => {
            println!("syncto {}", syncto::VERSION);
            return Ok(ExitCode::SUCCESS);
        }
        Action::ListSettings => {
            print!("{}", config::settings_list());
            return Ok(ExitCode::SUCCESS);
        }
        Action::Run | Action::CheckConfig => {}
    }
    let env = config::process_env().map_err(|e| e.to_string())?;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = Config::load(&args, &env).map_err(|e| e.to_string())?;
    // Before --check-config too: what a start would log, the check shows.
    logging::init(config.log_format, config.log_level);
    logging::install_panic_hook();
    for w in &config.warnings {
        log::warn!("{w}");
    }
    let warnings = config.warnings.len();
    if args.strict && warnings > 0 {
        eprintln!("syncto: {warnings} configuration warning(s) and --strict: not starting");
        return Ok(ExitCode::from(WARNINGS_ARE_ERRORS));
    }
    if matches!(args.action, Action::CheckConfig) {
        let summary = config.summary();
        // Building the state validates the TLS material as a start would.
        syncto::build(config).map_err(|e| e.to_string())?;
        println!("{summary}");
        match warnings {
            0 => println!("configuration OK"),
            n => println!("configuration OK, with {n} warning(s) (--strict makes them errors)"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Every connection costs a descriptor: take what the hard limit allows.
    let files = syncto::startup::raise_open_files_limit();
    if files.error.is_some() {
        log::warn!("{files}");
    } else {
        log::info!("{files}");
    }
    // Signals are registered before serving so that an early SIGTERM is
    // never lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let workers = config.workers;
    // Before any thread of ours starts: what the limit leaves to all of them.
    let tasks = syncto::startup::task_limit();
    let (running, _app) = syncto::start(config).map_err(|e| e.to_string())?;
    log::info!(
        "syncto {} listening on {} with {workers} workers, at most {} connections",
        syncto::VERSION,
        running.addr(),
        running.max_connections()
    );
    // Every connection costs a thread or two: say when the task limit
    // (RLIMIT_NPROC, the pids cgroup) can't give them all.
    if let Some(tasks) = tasks {
        let room = syncto::startup::connections_for_tasks(tasks, workers);
        if (running.max_connections() as u64) > room {
            log::warn!(
                "the task limit leaves {tasks} threads, enough for {room} connections, \
                 not max_connections = {}: connections that get no thread are answered 503",
                running.max_connections()
            );
        } else {
            log::info!("task limit: {tasks} more threads");
        }
    }
    systemd::notify("READY=1");
    for signal in signals.forever() {
        // There is nothing to reload in place (a new configuration means a
        // new process); a stray SIGHUP must not kill a daemon.
        if signal == signal_hook::consts::SIGHUP {
            log::warn!("SIGHUP ignored: restart syncto to apply a new configuration");
            continue;
        }
        log::info!("signal {signal}: finishing requests in flight, then exiting");
        break;
    }
    systemd::notify("STOPPING=1");
    running.shutdown();
    log::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
