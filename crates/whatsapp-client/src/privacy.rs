//! Privacy settings, the blocklist, the default disappearing timer, and privacy tokens: stored when a contact
//! sends one, attached to what we send them (stanzas in `whatsapp_core::privacy`).

use tracing::{debug, warn};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::privacy::{
    AccountSync, BlockAction, Blocklist, PrivacyCategory, PrivacySettings, PrivacyValue, blocklist_query,
    default_disappearing_timer_query, parse_account_sync, parse_privacy_tokens, set_setting_query,
    settings_query, token_cutoff, update_blocklist_query,
};
use whatsapp_store::{Backend, LidMapping, PrivacyToken, SecretStore, StoreError};

use crate::{Client, ClientError, Event, Shared, unix_now};

impl<B: Backend> Client<B> {
    /// This account's privacy settings, as the server lists them.
    pub async fn privacy_settings(&self) -> Result<PrivacySettings, ClientError> {
        let answer = self.send_iq(settings_query()).await?;
        Ok(PrivacySettings::parse_answer(&answer)?)
    }

    /// Changes one privacy setting. The server refuses values the category does not accept.
    pub async fn set_privacy_setting(
        &self,
        category: PrivacyCategory,
        value: PrivacyValue,
    ) -> Result<(), ClientError> {
        self.send_iq(set_setting_query(&category, &value)).await?;
        Ok(())
    }

    /// The users this account blocked.
    pub async fn blocklist(&self) -> Result<Blocklist, ClientError> {
        let answer = self.send_iq(blocklist_query()).await?;
        Ok(Blocklist::parse_answer(&answer)?)
    }

    /// Blocks or unblocks `user` and returns the blocklist as it is now. A phone-number JID is sent with its
    /// LID when the store knows it (whatsmeow names the user by LID and adds the number when blocking).
    pub async fn update_blocklist(&self, user: &Jid, action: BlockAction) -> Result<Blocklist, ClientError> {
        let user = user.to_non_ad();
        let query = match user.server() {
            Jid::DEFAULT_USER_SERVER => match self.shared.lid_of(&user).await? {
                Some(lid) => update_blocklist_query(&Jid::new(lid, Jid::LID_SERVER), action, Some(&user)),
                None => update_blocklist_query(&user, action, None),
            },
            _ => update_blocklist_query(&user, action, None),
        };
        let answer = self.send_iq(query).await?;
        Ok(Blocklist::parse_answer(&answer)?)
    }

    /// Sets the disappearing-message timer new chats start with (`Duration::ZERO` turns it off). The server
    /// counts whole seconds.
    pub async fn set_default_disappearing_timer(
        &self,
        timer: std::time::Duration,
    ) -> Result<(), ClientError> {
        let seconds =
            u32::try_from(timer.as_secs()).map_err(|_| ClientError::InvalidRequest("timer too long"))?;
        self.send_iq(default_disappearing_timer_query(seconds)).await?;
        Ok(())
    }

    /// The privacy token `user` gave us, if we have one that has not expired (stored under the JID the token
    /// came with: the LID when the notification named it, else the phone number).
    pub(crate) async fn privacy_token_for(&self, user: &Jid) -> Result<Option<Vec<u8>>, ClientError> {
        let user = user.to_non_ad();
        let mut candidates = vec![user.clone()];
        if user.server() == Jid::DEFAULT_USER_SERVER
            && let Some(lid) = self.shared.lid_of(&user).await?
        {
            candidates.insert(0, Jid::new(lid, Jid::LID_SERVER));
        }
        let cutoff = token_cutoff(unix_now().as_secs() as i64) * 1000;
        for candidate in candidates {
            if let Some(token) = self.shared.account.privacy_token(&candidate).await?
                && token.timestamp >= cutoff
                && !token.token.is_empty()
            {
                return Ok(Some(token.token));
            }
        }
        Ok(None)
    }
}

impl<B: Backend> Shared<B> {
    /// Stores the tokens of a `privacy_token` notification. A notification that does not parse is logged and
    /// dropped (it is still acknowledged); only a store failure is an error.
    pub(crate) async fn store_privacy_tokens(&self, node: &Node) -> Result<(), StoreError> {
        let parsed = match parse_privacy_tokens(node) {
            Ok(parsed) => parsed,
            Err(error) => {
                warn!(%error, "malformed privacy token notification");
                return Ok(());
            }
        };
        if parsed.tokens.is_empty() {
            return Ok(());
        }
        if let Some(phone_number) = &parsed.phone_number {
            // Tokens are kept under the LID; the mapping finds them when we address the phone number.
            self.put_lid_mappings(&[LidMapping::new(&parsed.sender, phone_number)])
                .await?;
        }
        let (sender, tokens) = (parsed.sender, parsed.tokens);
        let rows: Vec<PrivacyToken> = tokens
            .into_iter()
            .map(|token| PrivacyToken {
                user: sender.clone(),
                token: token.token,
                timestamp: token.timestamp.saturating_mul(1000),
            })
            .collect();
        self.account.put_privacy_tokens(&rows).await?;
        debug!(%sender, count = rows.len(), "stored privacy tokens");
        self.emit(Event::PrivacyToken { from: sender });
        Ok(())
    }

    /// An `account_sync` notification: privacy and blocklist changes made on other devices, as events.
    pub(crate) fn on_account_sync(&self, node: &Node) {
        let items = match parse_account_sync(node) {
            Ok(items) => items,
            Err(error) => {
                warn!(%error, "malformed account_sync notification");
                return;
            }
        };
        for item in items {
            match item {
                AccountSync::Privacy(settings) => self.emit(Event::PrivacySettings(settings)),
                AccountSync::Blocklist(change) => self.emit(Event::Blocklist {
                    action: change.action,
                    dhash: change.dhash,
                    changes: change.changes,
                }),
                other => debug!(?other, "account_sync item not handled"),
            }
        }
    }
}
