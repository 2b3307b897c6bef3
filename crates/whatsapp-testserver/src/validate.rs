//! The server's checks of what clients send: registration payloads (protocol-facts §3.2) and prekey uploads
//! (protocol-facts §3.5). Each check names what failed, so a test sees why the server refused.

use whatsapp_binary::{Content, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::companion_reg::DeviceProps;
use whatsapp_proto::handshake::client_payload::DevicePairingRegistrationData;
use whatsapp_signal::PublicKey;

use crate::state::Registration;

/// The Curve25519 key type byte that prefixes Signal public keys (`DjbType`).
pub(crate) const DJB_KEY_TYPE: u8 = 0x05;

/// Why the server refused a stanza: the error code it answers with and the failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl Refusal {
    pub(crate) fn bad_request(reason: impl Into<String>) -> Refusal {
        Refusal {
            code: 400,
            reason: reason.into(),
        }
    }
}

/// `field` as exactly `N` bytes.
fn fixed<const N: usize>(bytes: Option<&[u8]>, field: &str) -> Result<[u8; N], String> {
    let bytes = bytes.ok_or_else(|| format!("{field} is missing"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{field} is {} bytes, expected {N}", bytes.len()))
}

/// A 3-byte big-endian id.
fn id24(bytes: [u8; 3]) -> u32 {
    u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
}

/// Checks a registration payload's `devicePairingData`: sizes, key type, the signed prekey's signature by the
/// identity key, the build hash and the device props.
pub(crate) fn registration(data: &DevicePairingRegistrationData) -> Result<Registration, String> {
    let registration_id = u32::from_be_bytes(fixed::<4>(data.e_regid.as_deref(), "eRegid")?);
    let key_type = fixed::<1>(data.e_keytype.as_deref(), "eKeytype")?;
    if key_type != [DJB_KEY_TYPE] {
        return Err(format!("eKeytype is {key_type:02x?}, expected [05]"));
    }
    let identity = fixed::<32>(data.e_ident.as_deref(), "eIdent")?;
    let signed_prekey_id = id24(fixed::<3>(data.e_skey_id.as_deref(), "eSkeyID")?);
    let signed_prekey = fixed::<32>(data.e_skey_val.as_deref(), "eSkeyVal")?;
    let signed_prekey_signature = fixed::<64>(data.e_skey_sig.as_deref(), "eSkeySig")?;
    if !signed_prekey_verifies(&identity, &signed_prekey, &signed_prekey_signature) {
        return Err("eSkeySig does not verify with eIdent".to_owned());
    }
    fixed::<16>(data.build_hash.as_deref(), "buildHash")?;
    let props = data
        .device_props
        .as_deref()
        .ok_or_else(|| "deviceProps is missing".to_owned())?;
    DeviceProps::decode(props).map_err(|e| format!("deviceProps does not decode: {e}"))?;
    Ok(Registration {
        registration_id,
        identity,
        signed_prekey_id,
        signed_prekey,
        signed_prekey_signature,
    })
}

/// Whether `signature` is the identity key's XEdDSA signature over the signed prekey's 33-byte form.
fn signed_prekey_verifies(identity: &[u8; 32], signed_prekey: &[u8; 32], signature: &[u8; 64]) -> bool {
    let mut message = [0u8; 33];
    message[0] = DJB_KEY_TYPE;
    message[1..].copy_from_slice(signed_prekey);
    PublicKey::from_bytes(*identity).verify_signature(&message, signature)
}

/// The bytes of a node's content: raw bytes, or a string written with the string rules (a short digit string
/// such as `"1"` comes back from the wire as a packed string, not bytes).
pub(crate) fn content_bytes(node: &Node) -> Option<Vec<u8>> {
    match &node.content {
        Content::Bytes(bytes) => Some(bytes.to_vec()),
        Content::Str(s) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

/// The content of child `tag` as exactly `N` bytes.
pub(crate) fn child_fixed<const N: usize>(node: &Node, tag: &str) -> Result<[u8; N], String> {
    let bytes = node.child(tag).and_then(content_bytes);
    fixed::<N>(bytes.as_deref(), tag)
}

/// A checked prekey upload.
#[derive(Debug)]
pub(crate) struct PrekeyUpload {
    pub(crate) prekeys: Vec<(u32, [u8; 32])>,
    pub(crate) signed_prekey_id: u32,
    pub(crate) signed_prekey: [u8; 32],
    pub(crate) signed_prekey_signature: [u8; 64],
}

/// Checks `<iq xmlns="encrypt" type="set">` against the device's registration: the registration id and identity
/// key must be the ones it paired with, every key has a 3-byte id and a 32-byte value, and the signed prekey's
/// signature verifies (406 when it does not, 400 for everything else).
pub(crate) fn prekey_upload(iq: &Node, linked: &Registration) -> Result<PrekeyUpload, Refusal> {
    fn bad(reason: impl Into<String>) -> Refusal {
        Refusal::bad_request(reason)
    }
    let registration_id = u32::from_be_bytes(child_fixed::<4>(iq, "registration").map_err(bad)?);
    if registration_id != linked.registration_id {
        return Err(bad(format!(
            "registration id {registration_id} is not the paired device's {}",
            linked.registration_id
        )));
    }
    if child_fixed::<1>(iq, "type").map_err(bad)? != [DJB_KEY_TYPE] {
        return Err(bad("key type is not 05"));
    }
    let identity = child_fixed::<32>(iq, "identity").map_err(bad)?;
    if identity != linked.identity {
        return Err(bad("identity key is not the paired device's"));
    }
    let list = iq.child("list").ok_or_else(|| bad("list is missing"))?;
    let mut prekeys = Vec::new();
    for key in list.child_nodes() {
        if key.tag != "key" {
            return Err(bad(format!("unexpected <{}> in list", key.tag)));
        }
        let id = id24(child_fixed::<3>(key, "id").map_err(bad)?);
        let value = child_fixed::<32>(key, "value").map_err(bad)?;
        prekeys.push((id, value));
    }
    let skey = iq.child("skey").ok_or_else(|| bad("skey is missing"))?;
    let signed_prekey_id = id24(child_fixed::<3>(skey, "id").map_err(bad)?);
    let signed_prekey = child_fixed::<32>(skey, "value").map_err(bad)?;
    let signed_prekey_signature = child_fixed::<64>(skey, "signature").map_err(bad)?;
    if !signed_prekey_verifies(&identity, &signed_prekey, &signed_prekey_signature) {
        return Err(Refusal {
            code: 406,
            reason: "signed prekey signature does not verify".to_owned(),
        });
    }
    Ok(PrekeyUpload {
        prekeys,
        signed_prekey_id,
        signed_prekey,
        signed_prekey_signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_names_the_field_and_sizes() {
        assert_eq!(fixed::<2>(Some(&[1, 2]), "x"), Ok([1, 2]));
        assert_eq!(
            fixed::<2>(Some(&[1]), "x"),
            Err("x is 1 bytes, expected 2".to_owned())
        );
        assert_eq!(fixed::<2>(None, "x"), Err("x is missing".to_owned()));
        assert_eq!(id24([0xab, 0xcd, 0xef]), 0x00ab_cdef);
    }

    #[test]
    fn packed_string_content_reads_as_bytes() {
        assert_eq!(content_bytes(&Node::new("a").text("1")), Some(b"1".to_vec()));
        assert_eq!(content_bytes(&Node::new("a").bytes(vec![0])), Some(vec![0]));
        assert_eq!(content_bytes(&Node::new("a")), None);
    }
}
