//! Pairing by QR code: the QR string, and checking the phone's `pair-success` (protocol-facts §3.4).
//!
//! The phone signs an ADV device identity that binds this device's identity key to the account. The device checks
//! the HMAC made with the ADV secret it showed in the QR code, checks the account signature, countersigns, and
//! answers with `pair-device-sign`. Nothing is stored here: [`complete_pair_success`] returns what the caller must
//! persist before it sends the reply.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::adv::{
    AdvDeviceIdentity, AdvEncryptionType, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac,
};
use whatsapp_signal::{KeyPair, PublicKey};

use crate::error::PairError;

/// Prefix of the message the account key signs (`AdvAccountSignaturePrefix`, protocol-facts §3.4).
pub const ADV_ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [0x06, 0x00];
/// Prefix of the message the device key countersigns (`AdvDeviceSignaturePrefix`, protocol-facts §3.4).
pub const ADV_DEVICE_SIGNATURE_PREFIX: [u8; 2] = [0x06, 0x01];
/// Prefix of the HMAC input and of the account signature for hosted accounts (protocol-facts §3.4).
pub const ADV_HOSTED_ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [0x06, 0x05];

/// The start of every QR code a companion shows (protocol-facts §3.4).
pub const QR_PREFIX: &str = "https://wa.me/settings/linked_devices#";

/// The one-character platform code at the end of a QR string and in phone-number pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairClientType {
    /// Unknown platform (`0`).
    Unknown,
    /// Chrome (`1`).
    Chrome,
    /// Edge (`2`).
    Edge,
    /// Firefox (`3`).
    Firefox,
    /// Safari (`6`).
    Safari,
    /// Any other web client (`9`).
    OtherWebClient,
    /// macOS desktop app (`c`).
    MacOs,
}

impl PairClientType {
    /// The character sent on the wire.
    pub fn code(self) -> char {
        match self {
            PairClientType::Unknown => '0',
            PairClientType::Chrome => '1',
            PairClientType::Edge => '2',
            PairClientType::Firefox => '3',
            PairClientType::Safari => '6',
            PairClientType::OtherWebClient => '9',
            PairClientType::MacOs => 'c',
        }
    }
}

/// The string a QR code encodes: `https://wa.me/settings/linked_devices#ref,noise,identity,adv,type`, with the
/// three keys in standard base64.
pub fn qr_code(
    reference: &[u8],
    noise_public: &[u8; 32],
    identity_public: &[u8; 32],
    adv_secret: &[u8; 32],
    client_type: PairClientType,
) -> String {
    format!(
        "{QR_PREFIX}{},{},{},{},{}",
        String::from_utf8_lossy(reference),
        STANDARD.encode(noise_public),
        STANDARD.encode(identity_public),
        STANDARD.encode(adv_secret),
        client_type.code(),
    )
}

/// The refs of a `<iq><pair-device><ref/>...</pair-device></iq>`: one QR code each, shown in turn.
pub fn pair_device_refs(iq: &Node) -> Result<Vec<Vec<u8>>, PairError> {
    let pair_device = iq
        .child("pair-device")
        .ok_or(PairError::MissingElement("pair-device"))?;
    Ok(pair_device
        .children_by_tag("ref")
        .filter_map(|r| r.content_bytes().map(|b| b.to_vec()))
        .collect())
}

/// What the phone's `pair-success` says about the new device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSuccess {
    /// The id of the IQ, to answer.
    pub iq_id: String,
    /// The device's phone-number JID (`user:device@s.whatsapp.net`).
    pub jid: Jid,
    /// The device's LID (`user:device@lid`).
    pub lid: Jid,
    /// The business name, for business accounts.
    pub business_name: Option<String>,
    /// The phone's platform name.
    pub platform: Option<String>,
    /// The marshaled `ADVSignedDeviceIdentityHMAC`.
    pub device_identity: Vec<u8>,
}

impl PairSuccess {
    /// Reads a `<iq><pair-success>...</pair-success></iq>` stanza.
    pub fn parse(iq: &Node) -> Result<PairSuccess, PairError> {
        let success = iq
            .child("pair-success")
            .ok_or(PairError::MissingElement("pair-success"))?;
        let device = success
            .child("device")
            .ok_or(PairError::MissingElement("device"))?;
        let device_identity = success
            .child("device-identity")
            .and_then(Node::content_bytes)
            .ok_or(PairError::MissingElement("device-identity"))?;
        Ok(PairSuccess {
            iq_id: iq.str_attr("id")?.to_owned(),
            jid: device.jid_attr("jid")?,
            lid: device.jid_attr("lid")?,
            business_name: success
                .child("biz")
                .and_then(|b| b.optional_str_attr("name"))
                .map(str::to_owned),
            platform: success
                .child("platform")
                .and_then(|p| p.optional_str_attr("name"))
                .map(str::to_owned),
            device_identity: device_identity.to_vec(),
        })
    }
}

/// What a successful pairing gives the device to persist before it answers the phone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairedDevice {
    /// The device's phone-number JID.
    pub jid: Jid,
    /// The device's LID.
    pub lid: Jid,
    /// The signed device identity including the device signature: stored as the device's `Account`, and sent
    /// in `<device-identity>` with pkmsg stanzas.
    pub account: AdvSignedDeviceIdentity,
    /// The primary device's identity key, to store for the Signal address `<lid user>_1:0` (the LID's device 0).
    pub primary_identity: [u8; 32],
    /// The `<iq type="result"><pair-device-sign>` to send once the above is persisted.
    pub reply: Node,
}

/// Checks a `pair-success` against this device's identity key and ADV secret and countersigns it.
///
/// Returns [`PairError`] for a bad HMAC (the phone did not see our QR code), a bad account signature or
/// malformed protobufs; the caller then sends [`pair_error_reply`] with [`PairError::reply_code`].
pub fn complete_pair_success(
    success: &PairSuccess,
    identity: &KeyPair,
    adv_secret: &[u8; 32],
) -> Result<PairedDevice, PairError> {
    let container = AdvSignedDeviceIdentityHmac::decode(success.device_identity.as_slice())
        .map_err(|_| PairError::Malformed("ADVSignedDeviceIdentityHMAC"))?;
    let details = container
        .details
        .as_deref()
        .ok_or(PairError::Malformed("ADVSignedDeviceIdentityHMAC"))?;
    let hosted_account = container.account_type == Some(AdvEncryptionType::Hosted as i32);

    let mut mac = Hmac::<Sha256>::new_from_slice(adv_secret).map_err(|_| PairError::HmacMismatch)?;
    if hosted_account {
        mac.update(&ADV_HOSTED_ACCOUNT_SIGNATURE_PREFIX);
    }
    mac.update(details);
    mac.verify_slice(container.hmac.as_deref().unwrap_or_default())
        .map_err(|_| PairError::HmacMismatch)?;

    let mut signed = AdvSignedDeviceIdentity::decode(details)
        .map_err(|_| PairError::Malformed("ADVSignedDeviceIdentity"))?;
    let identity_details = signed.details.clone().unwrap_or_default();
    let device_details = AdvDeviceIdentity::decode(identity_details.as_slice())
        .map_err(|_| PairError::Malformed("ADVDeviceIdentity"))?;
    let hosted_device = device_details.device_type == Some(AdvEncryptionType::Hosted as i32);

    let account_key: [u8; 32] = signed
        .account_signature_key
        .as_deref()
        .and_then(|k| k.try_into().ok())
        .ok_or(PairError::SignatureMismatch)?;
    let account_signature = signed.account_signature.as_deref().unwrap_or_default();
    let prefix = if hosted_device {
        ADV_HOSTED_ACCOUNT_SIGNATURE_PREFIX
    } else {
        ADV_ACCOUNT_SIGNATURE_PREFIX
    };
    let identity_public = identity.public.as_bytes();
    let signed_message = [&prefix[..], &identity_details, identity_public].concat();
    if !PublicKey::from_bytes(account_key).verify_signature(&signed_message, account_signature) {
        return Err(PairError::SignatureMismatch);
    }

    let device_message = [
        &ADV_DEVICE_SIGNATURE_PREFIX[..],
        &identity_details,
        identity_public,
        &account_key,
    ]
    .concat();
    // The device signature's nonce only needs to be unpredictable; deriving it from the secret key and message
    // (as XEdDSA's deterministic variant does) avoids asking the caller for randomness here.
    let random = device_signature_nonce(adv_secret, &device_message);
    signed.device_signature = Some(
        identity
            .private
            .sign_with_random(&device_message, &random)
            .to_vec(),
    );

    let account = signed.clone();
    // The phone already knows its own key: the reply carries the identity without it.
    signed.account_signature_key = None;
    let reply = Node::new("iq")
        .attr("to", crate::server_jid())
        .attr("type", "result")
        .attr("id", success.iq_id.clone())
        .children([
            Node::new("pair-device-sign").children([Node::new("device-identity")
                .attr(
                    "key-index",
                    device_details.key_index.unwrap_or_default().to_string(),
                )
                .bytes(signed.encode_to_vec())]),
        ]);

    Ok(PairedDevice {
        jid: success.jid.clone(),
        lid: success.lid.clone(),
        account,
        primary_identity: account_key,
        reply,
    })
}

fn device_signature_nonce(adv_secret: &[u8; 32], message: &[u8]) -> [u8; 64] {
    use sha2::{Digest, Sha512};
    let mut hasher = Sha512::new();
    hasher.update(b"whatsapp-core device signature nonce");
    hasher.update(adv_secret);
    hasher.update(message);
    hasher.finalize().into()
}

/// The `<iq type="error">` a device sends when it refuses a `pair-success`.
pub fn pair_error_reply(iq_id: &str, error: &PairError) -> Node {
    let (code, text) = error.reply_code();
    Node::new("iq")
        .attr("to", crate::server_jid())
        .attr("type", "error")
        .attr("id", iq_id.to_owned())
        .children([Node::new("error")
            .attr("code", code.to_string())
            .attr("text", text)])
}
