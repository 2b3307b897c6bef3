//! The `ClientPayload` sent in the Noise handshake's final message (protocol-facts §3.2).
//!
//! A device that has never paired sends a *registration* payload carrying its public keys; a paired device sends
//! a *login* payload naming its phone-number user and device id.

use md5::{Digest, Md5};
use whatsapp_proto::companion_reg::{self, DeviceProps};
use whatsapp_proto::handshake::{ClientPayload, client_payload};

/// The WhatsApp Web version a client announces. A server that answers `<failure reason="405">` considers it too
/// old; the fix is a newer version here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClientVersion(pub [u32; 3]);

impl ClientVersion {
    /// The version whatsmeow announced when this library was written (protocol-facts §3.2).
    pub const CURRENT: ClientVersion = ClientVersion([2, 3000, 1_045_649_367]);

    /// The MD5 of the dotted version string, sent as the registration `buildHash`.
    pub fn build_hash(&self) -> [u8; 16] {
        let [a, b, c] = self.0;
        Md5::digest(format!("{a}.{b}.{c}").as_bytes()).into()
    }
}

impl std::fmt::Display for ClientVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a}.{b}.{c}")
    }
}

/// How the client describes itself to the server and, through `DeviceProps`, to the phone's list of linked devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The announced WhatsApp Web version.
    pub version: ClientVersion,
    /// The operating-system name shown on the phone, for example `"Chrome (Linux)"`. Pairing with a phone-number
    /// code is refused unless this starts with a browser name (protocol-facts §3.2).
    pub os: String,
    /// The platform type shown on the phone.
    pub platform: companion_reg::device_props::PlatformType,
}

impl Default for ClientIdentity {
    fn default() -> Self {
        ClientIdentity {
            version: ClientVersion::CURRENT,
            os: "Chrome (Linux)".to_owned(),
            platform: companion_reg::device_props::PlatformType::Chrome,
        }
    }
}

/// The public keys a new device registers with; all of them come from the device's store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationKeys {
    /// The Signal registration id.
    pub registration_id: u32,
    /// The Signal identity public key (32 bytes, no type prefix).
    pub identity_public: [u8; 32],
    /// The signed prekey's id (sent as 3 bytes big-endian).
    pub signed_prekey_id: u32,
    /// The signed prekey's public key.
    pub signed_prekey_public: [u8; 32],
    /// The XEdDSA signature of the identity key over the signed prekey's 33-byte form.
    pub signed_prekey_signature: [u8; 64],
}

/// The Curve25519 key type byte (`DjbType`) that prefixes Signal public keys.
pub const DJB_KEY_TYPE: u8 = 0x05;

impl ClientIdentity {
    /// The fields common to login and registration payloads (protocol-facts §3.2).
    fn base_payload(&self) -> ClientPayload {
        use client_payload::user_agent::{AppVersion, Platform, ReleaseChannel};
        let [primary, secondary, tertiary] = self.version.0;
        ClientPayload {
            user_agent: Some(client_payload::UserAgent {
                platform: Some(Platform::Web as i32),
                release_channel: Some(ReleaseChannel::Release as i32),
                app_version: Some(AppVersion {
                    primary: Some(primary),
                    secondary: Some(secondary),
                    tertiary: Some(tertiary),
                    ..Default::default()
                }),
                mcc: Some("000".to_owned()),
                mnc: Some("000".to_owned()),
                os_version: Some("0.1".to_owned()),
                manufacturer: Some(String::new()),
                device: Some("Desktop".to_owned()),
                os_build_number: Some("0.1".to_owned()),
                locale_language_iso6391: Some("en".to_owned()),
                locale_country_iso31661_alpha2: Some("US".to_owned()),
                ..Default::default()
            }),
            web_info: Some(client_payload::WebInfo {
                web_sub_platform: Some(client_payload::web_info::WebSubPlatform::WebBrowser as i32),
                ..Default::default()
            }),
            connect_type: Some(client_payload::ConnectType::WifiUnknown as i32),
            connect_reason: Some(client_payload::ConnectReason::UserActivated as i32),
            ..Default::default()
        }
    }

    /// The `DeviceProps` the phone records for this companion.
    pub fn device_props(&self) -> DeviceProps {
        use companion_reg::device_props::{AppVersion, HistorySyncConfig};
        DeviceProps {
            os: Some(self.os.clone()),
            version: Some(AppVersion {
                primary: Some(0),
                secondary: Some(1),
                tertiary: Some(0),
                ..Default::default()
            }),
            platform_type: Some(self.platform as i32),
            require_full_sync: Some(false),
            history_sync_config: Some(HistorySyncConfig {
                storage_quota_mb: Some(10_240),
                inline_initial_payload_in_e2_ee_msg: Some(true),
                support_call_log_history: Some(true),
                support_bot_user_agent_chat_history: Some(true),
                support_cag_reactions_and_polls: Some(true),
                support_biz_hosted_msg: Some(true),
                support_recent_sync_chunk_message_count_tuning: Some(true),
                support_hosted_group_msg: Some(true),
                support_fbid_bot_chat_history: Some(true),
                support_message_association: Some(true),
                support_group_history: Some(true),
                thumbnail_sync_days_limit: Some(60),
                ..Default::default()
            }),
        }
    }

    /// The payload of a device that is not paired yet: it carries the keys the phone will bind to the account.
    pub fn registration_payload(&self, keys: &RegistrationKeys) -> ClientPayload {
        use whatsapp_proto::ProtoMessage;
        let mut payload = self.base_payload();
        payload.device_pairing_data = Some(client_payload::DevicePairingRegistrationData {
            e_regid: Some(keys.registration_id.to_be_bytes().to_vec()),
            e_keytype: Some(vec![DJB_KEY_TYPE]),
            e_ident: Some(keys.identity_public.to_vec()),
            e_skey_id: Some(keys.signed_prekey_id.to_be_bytes()[1..].to_vec()),
            e_skey_val: Some(keys.signed_prekey_public.to_vec()),
            e_skey_sig: Some(keys.signed_prekey_signature.to_vec()),
            build_hash: Some(self.version.build_hash().to_vec()),
            device_props: Some(self.device_props().encode_to_vec()),
        });
        payload.passive = Some(false);
        payload.pull = Some(false);
        payload
    }

    /// The payload of a paired device: its phone-number user (as a number) and device id.
    pub fn login_payload(&self, user: u64, device: u16) -> ClientPayload {
        let mut payload = self.base_payload();
        payload.username = Some(user);
        payload.device = Some(u32::from(device));
        payload.passive = Some(true);
        payload.pull = Some(true);
        payload.lid_db_migrated = Some(true);
        payload.lc = Some(1);
        payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RegistrationKeys {
        RegistrationKeys {
            registration_id: 0x0102_0304,
            identity_public: [1; 32],
            signed_prekey_id: 0x00AB_CDEF,
            signed_prekey_public: [2; 32],
            signed_prekey_signature: [3; 64],
        }
    }

    #[test]
    fn build_hash_is_md5_of_the_dotted_version() {
        // MD5("2.3000.1045649367") computed independently.
        let version = ClientVersion::CURRENT;
        assert_eq!(version.to_string(), "2.3000.1045649367");
        let expected = Md5::digest(b"2.3000.1045649367");
        assert_eq!(version.build_hash().as_slice(), expected.as_slice());
    }

    #[test]
    fn registration_payload_carries_keys_in_wire_form() {
        let payload = ClientIdentity::default().registration_payload(&keys());
        let data = payload.device_pairing_data.unwrap();
        assert_eq!(data.e_regid.unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(data.e_keytype.unwrap(), vec![0x05]);
        assert_eq!(data.e_skey_id.unwrap(), vec![0xAB, 0xCD, 0xEF]);
        assert_eq!(data.e_skey_sig.unwrap().len(), 64);
        assert_eq!(payload.passive, Some(false));
        assert_eq!(payload.pull, Some(false));
        assert_eq!(payload.username, None);
    }

    #[test]
    fn login_payload_names_the_user_and_device() {
        let payload = ClientIdentity::default().login_payload(15_551_234_567, 7);
        assert_eq!(payload.username, Some(15_551_234_567));
        assert_eq!(payload.device, Some(7));
        assert_eq!(payload.passive, Some(true));
        assert_eq!(payload.lc, Some(1));
        assert!(payload.device_pairing_data.is_none());
    }
}
