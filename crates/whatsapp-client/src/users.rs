//! Other users: whether phone numbers are on WhatsApp, their about text, photos (and groups' photos) and
//! devices, business profiles, and this account's about text (stanzas in `whatsapp_core::user` and
//! `whatsapp_core::business`).

use whatsapp_binary::Jid;
use whatsapp_core::business::{BusinessProfile, business_profile_query, parse_business_profile};
use whatsapp_core::user::{
    OnWhatsApp, PictureInfo, UserInfo, contact_query, info_query, parse_contacts, parse_picture,
    parse_user_info, picture_query, set_status_query,
};
use whatsapp_store::{Backend, LidMapping};

use crate::{Client, ClientError};

/// The largest profile photo [`Client::download_profile_picture`] accepts. WhatsApp scales full photos to
/// 640x640 JPEGs (well under 1 MiB); the limit keeps a misbehaving host from filling memory.
const MAX_PICTURE_BYTES: usize = 8 * 1024 * 1024;

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
    /// this account) is an error ([`ClientError::Stanza`] for "none set", [`ClientError::Iq`] 401 or 404); so is
    /// a group without one, or one this account is not in. Fetch the bytes with
    /// [`download_profile_picture`](Self::download_profile_picture).
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

    /// Downloads the JPEG a [`PictureInfo`] points to (from [`profile_picture`](Self::profile_picture), for a
    /// user or a group). Profile photos are not encrypted: the URL is fetched as it is. A host that answers with
    /// an error status, or with more than a photo's worth of bytes, is [`ClientError::Http`].
    pub async fn download_profile_picture(&self, picture: &PictureInfo) -> Result<Vec<u8>, ClientError> {
        let http = |error: reqwest::Error| ClientError::Http(error.to_string());
        let mut response = self.shared.http.get(&picture.url).send().await.map_err(http)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Http(format!(
                "profile photo download: HTTP {status}"
            )));
        }
        let mut jpeg = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http)? {
            if jpeg.len() + chunk.len() > MAX_PICTURE_BYTES {
                return Err(ClientError::Http(format!(
                    "profile photo larger than {MAX_PICTURE_BYTES} bytes"
                )));
            }
            jpeg.extend_from_slice(&chunk);
        }
        Ok(jpeg)
    }

    /// The business profile of `user` (address, email, hours, categories, websites), or `None` when the
    /// account is not a business.
    pub async fn business_profile(&self, user: &Jid) -> Result<Option<BusinessProfile>, ClientError> {
        let answer = self.send_iq(business_profile_query(user)).await?;
        Ok(parse_business_profile(&answer)?)
    }

    /// Sets this account's about text.
    pub async fn set_status_message(&self, text: &str) -> Result<(), ClientError> {
        self.send_iq(set_status_query(text)).await?;
        Ok(())
    }
}
