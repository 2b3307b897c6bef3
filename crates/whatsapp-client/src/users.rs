//! Other users: whether phone numbers are on WhatsApp, their about text, photos and devices, and this
//! account's about text (stanzas in `whatsapp_core::user`).

use whatsapp_binary::Jid;
use whatsapp_core::user::{
    OnWhatsApp, PictureInfo, UserInfo, contact_query, info_query, parse_contacts, parse_picture,
    parse_user_info, picture_query, set_status_query,
};
use whatsapp_store::{Backend, LidMapping};

use crate::{Client, ClientError};

impl<B: Backend> Client<B> {
    /// Which of `phones` (international form, `+` and separators allowed) are on WhatsApp, with their JIDs.
    pub async fn is_on_whatsapp(&self, phones: &[&str]) -> Result<Vec<OnWhatsApp>, ClientError> {
        if phones.is_empty() {
            return Ok(Vec::new());
        }
        let sid = format!("{}", rand::random::<u64>());
        let query =
            contact_query(phones, &sid).ok_or(ClientError::InvalidRequest("a phone number has no digits"))?;
        let answer = self.send_iq(query).await?;
        Ok(parse_contacts(&answer)?)
    }

    /// The about text, photo id, devices, LID and verified business name of each of `users`, as far as their
    /// privacy settings let this account see them. LIDs learned are stored.
    pub async fn user_info(&self, users: &[Jid]) -> Result<Vec<UserInfo>, ClientError> {
        let mut list = Vec::with_capacity(users.len());
        for user in users {
            list.push((user.to_non_ad(), self.privacy_token_for(user).await?));
        }
        let sid = format!("{}", rand::random::<u64>());
        let answer = self.send_iq(info_query(&list, &sid)).await?;
        let info = parse_user_info(&answer)?;
        let mappings: Vec<LidMapping> = info
            .iter()
            .filter(|user| user.jid.server() == Jid::DEFAULT_USER_SERVER)
            .filter_map(|user| Some(LidMapping::new(user.lid.as_ref()?, &user.jid)))
            .collect();
        if !mappings.is_empty() {
            self.shared.put_lid_mappings(&mappings).await?;
        }
        Ok(info)
    }

    /// Where `user`'s (or a group's) profile photo is: the full image, or the small `preview`. With
    /// `existing_id`, `Ok(None)` means the photo is still that one. A user without a photo (or who hides it from
    /// this account) is an error ([`ClientError::Stanza`] for "none set", [`ClientError::Iq`] 401 or 404).
    pub async fn profile_picture(
        &self,
        user: &Jid,
        preview: bool,
        existing_id: Option<&str>,
    ) -> Result<Option<PictureInfo>, ClientError> {
        let token = if user.is_group() {
            None
        } else {
            self.privacy_token_for(user).await?
        };
        let answer = self
            .send_iq(picture_query(user, preview, existing_id, token.as_deref()))
            .await?;
        Ok(parse_picture(&answer, existing_id.is_some())?)
    }

    /// Sets this account's about text.
    pub async fn set_status_message(&self, text: &str) -> Result<(), ClientError> {
        self.send_iq(set_status_query(text)).await?;
        Ok(())
    }
}
