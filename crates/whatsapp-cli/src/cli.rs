//! The command line: global options and subcommands, parsed with clap's derive API.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What `wa --help` says after the list of commands.
const AFTER_HELP: &str = "\
Not yet possible: changing groups (wa lists and shows them; the library administers them).

Exit codes: 0 success; 1 the operation failed (network, server, pairing); 2 bad usage or set-up (a wrong
recipient, not logged in, a database that cannot be opened), with one line saying how to fix it.

Logging: RUST_LOG=whatsapp_client=debug shows the protocol steps on stderr.";

/// `wa`: a WhatsApp Web companion device on the command line.
#[derive(Debug, Parser)]
#[command(name = "wa", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub(crate) global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Where the linked device is kept: a SQLite file path, `sqlite:PATH`, or `postgres://USER@HOST/DB`.
    #[arg(long, global = true, env = "WA_DATABASE", default_value = "./whatsapp.db")]
    pub(crate) database: String,
    /// Which linked device of the database to use, by its phone number (needed when it holds several).
    #[arg(long, global = true, env = "WA_ACCOUNT", value_name = "NUMBER")]
    pub(crate) account: Option<String>,
    /// For testing: the WebSocket URL of a `whatsapp-testserver` instead of WhatsApp (needs --root).
    #[arg(long, global = true, env = "WA_SERVER", requires = "root", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// For testing: the test server's certificate root key, 64 hex digits (needs --server).
    #[arg(long, global = true, env = "WA_ROOT", requires = "server", value_name = "HEX")]
    pub(crate) root: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Link this computer to a phone as a companion device (QR code, or a pairing code with --phone).
    Login {
        /// Ask for an 8-character pairing code for this phone number (international form) instead of a QR code.
        #[arg(long, value_name = "NUMBER")]
        phone: Option<String>,
    },
    /// Send a text message to a user or a group.
    Send {
        /// A phone number in international form (15551234567, +1 555 123 4567) or a JID (15551234567@s.whatsapp.net,
        /// 120363000000000000@g.us).
        to: String,
        /// The text.
        text: String,
    },
    /// Send a file as a document to a user or a group.
    SendFile {
        /// A phone number in international form or a JID, as for `send`.
        to: String,
        /// The file.
        path: std::path::PathBuf,
        /// Its MIME type (default: application/octet-stream).
        #[arg(long, default_value = "application/octet-stream")]
        mimetype: String,
    },
    /// Stay connected and print what happens (messages, receipts, connection changes) until Ctrl-C.
    Listen {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Chat history the phone sends to this device.
    #[command(subcommand)]
    History(HistoryCommand),
    /// List the groups this account is in (JID, subject, participant count), or show one with `info JID`.
    Groups {
        /// What to do; without one, list the groups.
        #[command(subcommand)]
        command: Option<GroupsCommand>,
        /// Print JSON instead of text.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Unlink this device from the phone and delete it from the database.
    Logout,
    /// Protocol debugging: binary stanzas <-> their JSON form.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Run everything offline: an embedded test server, two accounts, pairing, messages both ways and a read
    /// receipt, printing each step.
    Demo,
}

/// `wa history ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum HistoryCommand {
    /// Write the messages of the history syncs the phone sends (soon after `wa login`; the server keeps them while
    /// the device is offline), one JSON object per line, until the phone says the sync is complete.
    Export {
        /// The output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: HistoryFormat,
        /// The file to write, or `-` for stdout.
        #[arg(long, short, default_value = "history.jsonl")]
        output: std::path::PathBuf,
        /// Stop when no history has come for this many seconds after login.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        idle: u64,
    },
}

/// How `wa history export` writes messages.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum HistoryFormat {
    /// One JSON object per message: chat, chat_name, id, from_me, sender, push_name, timestamp, text, kind.
    Jsonl,
}

/// `wa groups ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// Show one group: subject, owner, description, settings and participants with their roles.
    Info {
        /// The group's JID (120363000000000000@g.us).
        jid: String,
    },
}

/// `wa node ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Decode a frame payload (hex, flags byte first) into JSON.
    Decode {
        /// The bytes in hex, or `-` to read them from stdin.
        hex: String,
    },
    /// Encode a node given as JSON (`{"tag", "attrs", "content"}`) into a frame payload in hex.
    Encode {
        /// The node as JSON, or `-` to read it from stdin.
        json: String,
    },
}
