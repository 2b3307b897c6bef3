//! `wa login`: links a new companion device by QR code (drawn in the terminal) or by a phone-number pairing code.

use anyhow::Context as _;
use whatsapp_client::Event;
use whatsapp_client::store::Backend as _;

use crate::account::{self, SqlClient};
use crate::cli::Global;
use crate::failure::{client_error, fix};

/// The line prefix before the raw QR data, printed under the drawing (for terminals that cannot show it, and
/// for scripts).
pub(crate) const QR_DATA_PREFIX: &str = "QR data: ";

/// The line prefix before a pairing code.
pub(crate) const CODE_PREFIX: &str = "Pairing code: ";

/// Links a device unless the database already has one (for the number of `--phone` or `--account`, when given).
pub(crate) async fn run(global: &Global, phone: Option<&str>) -> anyhow::Result<()> {
    let phone = phone.map(phone_number).transpose()?;
    let number = match (&phone, &global.account) {
        (Some(phone), _) => Some(phone.clone()),
        (None, Some(account)) => Some(phone_number(account)?),
        (None, None) => None,
    };
    let store = account::open_store(&global.database).await?;
    let linked = account::linked_accounts(&store).await?;
    let already = match &number {
        Some(number) => linked.iter().find(|(_, jid)| jid.user() == number),
        None => linked.first(),
    };
    if let Some((_, jid)) = already {
        println!(
            "Already logged in as {jid} (run `wa logout` first, or `wa login --phone NUMBER` to link another number)"
        );
        return Ok(());
    }
    let (client, mut events) = account::builder(store.clone(), global)?
        .build()
        .await
        .map_err(|error| client_error(error, "creating the device"))?;
    let result = account::interruptible(async {
        client
            .connect()
            .await
            .map_err(|error| client_error(error, "connecting"))?;
        pair(&client, &mut events, phone.as_deref()).await
    })
    .await;
    client.disconnect().await;
    if result.is_err() && matches!(client.jid().await, Ok(None)) {
        // The new device was never linked: leave no unusable account behind.
        let _ = store.delete_account(client.account_id()).await;
    }
    result
}

/// Follows the pairing events until the new device logged in.
async fn pair(
    client: &SqlClient,
    events: &mut whatsapp_client::Events,
    phone: Option<&str>,
) -> anyhow::Result<()> {
    let mut asked_for_code = false;
    while let Some(event) = events.recv().await {
        match event {
            Event::Qr { code, timeout } => match phone {
                Some(phone) if !asked_for_code => {
                    asked_for_code = true;
                    let pairing_code = client
                        .pair_phone(phone)
                        .await
                        .map_err(|error| client_error(error, "asking for a pairing code"))?;
                    println!("{CODE_PREFIX}{pairing_code}");
                    println!(
                        "On the phone: Settings > Linked devices > Link a device > Link with phone number instead, and type it."
                    );
                }
                Some(_) => {}
                None => {
                    println!("{}", draw_qr(&code)?);
                    println!(
                        "On the phone: Settings > Linked devices > Link a device, and scan this code within {} s.",
                        timeout.as_secs()
                    );
                    println!("{QR_DATA_PREFIX}{code}");
                }
            },
            Event::PairSuccess { jid, .. } => println!("Linked as {jid}; logging in"),
            Event::PairError { error } => return Err(anyhow::Error::new(error).context("pairing failed")),
            Event::QrTimeout => anyhow::bail!("no QR code was scanned in time; run `wa login` again"),
            Event::Connected => {
                let jid = client.jid().await.context("reading the device")?;
                let jid = jid.map(|jid| jid.to_string()).unwrap_or_default();
                println!("Logged in as {jid}");
                return Ok(());
            }
            other => {
                if let Some(error) = account::stopping_error(&other) {
                    return Err(error);
                }
            }
        }
    }
    anyhow::bail!("the client stopped before the login finished")
}

/// The QR code of `data` drawn with Unicode half blocks, two rows of modules per line.
fn draw_qr(data: &str) -> anyhow::Result<String> {
    let qr = qrcode::QrCode::new(data.as_bytes()).context("drawing the QR code")?;
    Ok(qr
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

/// The digits of a phone number in international form (`+1 555-123 4567` gives `15551234567`).
pub(crate) fn phone_number(text: &str) -> anyhow::Result<String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
        .collect();
    // E.164 numbers have at most 15 digits; the shortest in use have 7 or 8.
    if (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(digits)
    } else {
        Err(fix(format!(
            "{text:?} is not a phone number; give it in international form with the country code, like 15551234567"
        )))
    }
}
