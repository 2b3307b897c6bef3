//! Privacy settings, the blocklist, the default disappearing timer, and privacy tokens: stored when a contact
//! sends one, attached to what we send them, and this account's own token issued to each contact it writes to
//! once per 7-day bucket; without a token, a `cstoken` derived from the NCT salt (stanzas in
//! `whatsapp_core::privacy`).

use tracing::{debug, warn};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::privacy::{
    AccountSync, BlockAction, Blocklist, NctSalt, PrivacyCategory, PrivacySettings, PrivacyValue,
    blocklist_query, default_disappearing_timer_query, exchanges_tokens_with, issue_token_query,
    parse_account_sync, parse_privacy_tokens, set_setting_query, settings_query, should_issue_token,
    token_cutoff, update_blocklist_query,
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

    /// The `cstoken` for a one-to-one message to `user` when no privacy token is known: the HMAC of the
    /// recipient's LID under the NCT salt. `None` when there is no salt, the LID is not known, or `user` is not a
    /// contact tokens are exchanged with.
    pub(crate) async fn cstoken_for(&self, user: &Jid) -> Result<Option<Vec<u8>>, ClientError> {
        if !exchanges_tokens_with(user) {
            return Ok(None);
        }
        let Some(salt) = self.shared.account.nct_salt().await?.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let lid = match user.server() {
            Jid::LID_SERVER => user.to_non_ad(),
            _ => match self.shared.lid_of(user).await? {
                Some(lid) => Jid::new(lid, Jid::LID_SERVER),
                None => return Ok(None),
            },
        };
        Ok(Some(NctSalt(salt).cstoken(&lid)))
    }

    /// After a one-to-one message to `to` was sent: issues this account's privacy token to `to` when it has not
    /// issued one in the current 7-day bucket (whatsmeow `sendDM`, `issuePrivacyTokenAndSave`). The decision is
    /// taken here, from memory or the store; the IQ goes out beside the caller, and its success is stored under
    /// the contact's LID when known (so a restart does not issue again within the bucket). Failures are logged,
    /// never returned: the message is already sent.
    pub(crate) async fn issue_privacy_token(&self, to: &Jid) {
        if !exchanges_tokens_with(to) {
            return;
        }
        let contact = match self.token_contact(to).await {
            Ok(contact) => contact,
            Err(error) => {
                warn!(%error, %to, "could not resolve the contact to issue a privacy token to");
                return;
            }
        };
        let now = unix_now().as_secs() as i64;
        let remembered = self.shared.issued_tokens_memory().get(&contact).copied();
        let last = match remembered {
            Some(last) => Some(last),
            None => match self.shared.account.issued_privacy_token(&contact).await {
                Ok(stored) => stored.map(|ms| ms.div_euclid(1000)),
                Err(error) => {
                    warn!(%error, %contact, "could not read when a privacy token was last issued");
                    return;
                }
            },
        };
        if !should_issue_token(last, now) {
            if let Some(last) = last {
                self.shared.issued_tokens_memory().insert(contact, last);
            }
            return;
        }
        // Claimed before the IQ leaves, so messages sent meanwhile do not issue again.
        self.shared.issued_tokens_memory().insert(contact.clone(), now);
        let client = Client {
            shared: std::sync::Arc::clone(&self.shared),
        };
        tokio::spawn(async move {
            let outcome = match client.send_iq(issue_token_query(&contact, now)).await {
                Ok(_) => client
                    .shared
                    .account
                    .put_issued_privacy_token(&contact, now.saturating_mul(1000))
                    .await
                    .map_err(ClientError::from),
                Err(error) => {
                    client.shared.issued_tokens_memory().remove(&contact);
                    Err(error)
                }
            };
            match outcome {
                Ok(()) => debug!(%contact, "issued our privacy token"),
                Err(error) => warn!(%error, %contact, "could not issue our privacy token"),
            }
        });
    }

    /// The JID a contact's tokens are kept under: its LID when known, else the JID itself (whatsmeow
    /// `resolveTCTokenStorageLID`).
    async fn token_contact(&self, user: &Jid) -> Result<Jid, ClientError> {
        let user = user.to_non_ad();
        if user.server() == Jid::DEFAULT_USER_SERVER
            && let Some(lid) = self.shared.lid_of(&user).await?
        {
            return Ok(Jid::new(lid, Jid::LID_SERVER));
        }
        Ok(user)
    }
}

impl<B: Backend> Shared<B> {
    fn issued_tokens_memory(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Jid, i64>> {
        self.issued_tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

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
