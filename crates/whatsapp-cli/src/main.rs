//! `wa`: a WhatsApp Web companion device on the command line, built on `whatsapp-client`.
//!
//! Layer: a tool. It links a device (`wa login`, QR code in the terminal or a pairing code), sends text
//! (`wa send`), prints events (`wa listen`, `--json` for JSON lines), lists and shows groups (`wa groups`),
//! exports the history the phone sends as JSON lines (`wa history export`), unlinks (`wa logout`), converts binary
//! stanzas to and from JSON (`wa node`), and runs an offline demo on the embedded test server (`wa demo`).
//! The device lives in a SQLite file (`./whatsapp.db`) or a PostgreSQL database (`--database postgres://...`).
//!
//! What it does not do: no protocol logic of its own (the library has it all), and not yet group administration
//! (changing groups).

mod account;
mod cli;
mod demo;
mod failure;
mod groups;
mod history;
mod listen;
mod login;
mod logout;
mod node;
mod send;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, GroupsCommand, HistoryCommand, NodeCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so that stdout stays clean for `--json` and `wa node`; quiet unless RUST_LOG asks.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    match run(&cli.global, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => failure::report(&error),
    }
}

/// Runs a command on a tokio runtime.
fn run(global: &cli::Global, command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            Command::Login { phone } => login::run(global, phone.as_deref()).await,
            Command::Send { to, text } => send::run(global, &to, &text).await,
            Command::SendFile { to, path, mimetype } => send::run_file(global, &to, &path, &mimetype).await,
            Command::Listen { json } => listen::run(global, json).await,
            Command::History(HistoryCommand::Export { format, output, idle }) => {
                history::export(global, format, &output, std::time::Duration::from_secs(idle)).await
            }
            Command::Groups { command: None, json } => groups::list(global, json).await,
            Command::Groups {
                command: Some(GroupsCommand::Info { jid }),
                json,
            } => groups::info(global, &jid, json).await,
            Command::Logout => logout::run(global).await,
            Command::Demo => demo::run().await,
            Command::Node(NodeCommand::Decode { hex }) => node::decode(&hex),
            Command::Node(NodeCommand::Encode { json }) => node::encode(&json),
        }
    })
}
