//! `whatsapp-testserver`: runs the test server as a process.
//!
//! ```text
//! whatsapp-testserver [--listen ADDR] [--phone NUMBER]...
//! ```
//!
//! The first line on stdout is `URL TRUST_ROOT_HEX`; then one line per phone, `phone NUMBER LID IDENTITY_HEX`.
//! Commands are read from stdin, one per line: `scan NUMBER QR`, `code NUMBER CODE`, `drop`, `quit`. Results and
//! errors of commands go to stdout; the log (`RUST_LOG`, default `info`) goes to stderr.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, BufReader};
use tracing_subscriber::EnvFilter;
use whatsapp_testserver::{Phone, ServerConfig, TestServer};

const USAGE: &str = "usage: whatsapp-testserver [--listen ADDR] [--phone NUMBER]...";

fn parse_args() -> Result<(ServerConfig, Vec<String>), String> {
    let mut config = ServerConfig::default();
    let mut phones = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let addr = args.next().ok_or("--listen needs an address")?;
                config.listen = addr
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("--listen {addr}: {e}"))?;
            }
            "--phone" => {
                let number = args.next().ok_or("--phone needs a number")?;
                if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
                    return Err(format!("--phone {number}: digits only, international form"));
                }
                phones.push(number);
            }
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok((config, phones))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let (config, numbers) = match parse_args() {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let server = match TestServer::start_with(config).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "{} {}",
        server.url(),
        hex::encode(server.trust_root().key().as_bytes())
    );
    let mut phones = BTreeMap::new();
    for number in numbers {
        let phone = server.add_phone(&number);
        println!(
            "phone {number} {} {}",
            phone.lid(),
            hex::encode(phone.identity_public())
        );
        phones.insert(number, phone);
    }

    let mut events = server.subscribe();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            tracing::info!(?event, "event");
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["quit"] => break,
            ["drop"] => {
                server.drop_connections();
                println!("ok dropped");
            }
            ["scan", number, qr] => match phone_of(&phones, number) {
                Ok(phone) => match phone.scan_qr(qr).await {
                    Ok(device) => println!("ok pair-success sent for {device}"),
                    Err(error) => println!("error {error}"),
                },
                Err(error) => println!("error {error}"),
            },
            ["code", number, code] => match phone_of(&phones, number) {
                Ok(phone) => match phone.enter_code(code).await {
                    Ok(()) => println!("ok code entered"),
                    Err(error) => println!("error {error}"),
                },
                Err(error) => println!("error {error}"),
            },
            _ => println!("error unknown command; commands: scan NUMBER QR | code NUMBER CODE | drop | quit"),
        }
    }
    server.shutdown();
    std::process::ExitCode::SUCCESS
}

fn phone_of<'a>(phones: &'a BTreeMap<String, Phone>, number: &str) -> Result<&'a Phone, String> {
    phones
        .get(number)
        .ok_or_else(|| format!("no phone {number} (start with --phone {number})"))
}
