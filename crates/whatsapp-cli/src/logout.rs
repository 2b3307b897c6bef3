//! `wa logout`: unlinks the device from the phone and deletes it from the database.

use crate::account;
use crate::cli::Global;
use crate::failure::client_error;

/// Logs the database's linked device out.
pub(crate) async fn run(global: &Global) -> anyhow::Result<()> {
    let (client, mut events, jid) = account::linked_client(global, false).await?;
    let connected = account::interruptible(account::connect_logged_in(&client, &mut events)).await;
    if let Err(error) = connected {
        client.disconnect().await;
        // Unlinked on the phone already: the client deleted the device when the server said so.
        let store = account::open_store(&global.database).await?;
        if account::linked_account(&store, global).await?.is_none() {
            println!(
                "{jid} was already unlinked; it is removed from {}",
                account::without_password(&global.database)
            );
            return Ok(());
        }
        return Err(error);
    }
    let result = account::interruptible(async {
        (client.logout().await).map_err(|error| client_error(error, "logging out"))
    })
    .await;
    client.disconnect().await;
    result?;
    println!(
        "Logged out {jid}; the device is removed from {}",
        account::without_password(&global.database)
    );
    Ok(())
}
