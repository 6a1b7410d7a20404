//! Syncto with a pause between a batch's read of its records and its collapsed writes, for
//! the real-client checks of tests/clients/run.mjs (a test tool, not shipped): there a
//! client's push must give the same outcome when another device writes in that moment.
//!
//! Configured as the `syncto` binary is (`--bind`, `SYNCTO_*` variables, `--config`). Each
//! time collapsed writes have read their records, it prints `collapse-hook <collection>` on
//! standard output and waits for a line on standard input (at most 10 s) before writing:
//! the runner makes the other device's writes, then answers. Stops on SIGTERM, or when its
//! standard input closes.

use std::io::{BufRead, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use syncto::config::{self, Config};

fn main() {
    if let Err(e) = run() {
        eprintln!("collapse_hook: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = syncto::cli::parse(std::env::args_os().skip(1))?;
    let env = config::process_env().map_err(|e| e.to_string())?;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = Config::load(&args, &env).map_err(|e| e.to_string())?;
    syncto::logging::init(config.log_format, config.log_level);
    let (running, app) = syncto::start(config).map_err(|e| e.to_string())?;
    eprintln!("collapse_hook listening on {}", running.addr());
    // Lines from standard input; its end stops the process.
    let (lines, answers) = mpsc::channel::<String>();
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
        let _ = stop.send(());
    });
    let answers = Arc::new(Mutex::new(answers));
    app.hook_collapsed_writes(move |collection| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "collapse-hook {collection}");
        let _ = out.flush();
        drop(out);
        let answers = answers.lock().unwrap_or_else(|e| e.into_inner());
        let _ = answers.recv_timeout(Duration::from_secs(10));
    });
    let stop = stop_on_signal(stopped)?;
    let _ = stop.recv();
    running.shutdown();
    Ok(())
}

/// A channel that receives once on SIGTERM or SIGINT, or when `stdin_closed` does.
fn stop_on_signal(stdin_closed: mpsc::Receiver<()>) -> Result<mpsc::Receiver<()>, String> {
    let (tx, rx) = mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let on_signal = tx.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = on_signal.send(());
        }
    });
    std::thread::spawn(move || {
        if stdin_closed.recv().is_ok() {
            let _ = tx.send(());
        }
    });
    Ok(rx)
}
