//! Group messages: group metadata, sender keys and their distribution, and the group `<message>` stanza
//! (protocol-facts §3.5, §3.6).
//!
//! A group message is encrypted once with the sender's *sender key* (`skmsg`); devices that do not hold that key
//! yet get a `SenderKeyDistributionMessage` (SKDM) inside a pairwise-encrypted `Message` in the same stanza's
//! `<participants>`. Which devices need the SKDM is the caller's decision: unlike whatsmeow, which sends it to every
//! device on every send, the client tracks the devices it already reached.

use rand_core::{CryptoRng, RngCore};
use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::SenderKeyDistributionMessage as SkdmProto;
use whatsapp_signal::store::SenderKeyName;
use whatsapp_signal::{SenderKeyDistributionMessage, SenderKeyMessage, padding};
use whatsapp_store::AccountStore;

use crate::message::{Encrypted, StanzaAttrs, protocol_address};
use crate::signal_store::StagedSignalStore;

pub use crate::group_admin::{GroupInfo, group_info_query, parse_group_info};

/// The sender-key record name of `sender` in `group`.
pub fn sender_key_name(group: &Jid, sender: &Jid) -> SenderKeyName {
    SenderKeyName {
        group: group.to_string(),
        sender: protocol_address(sender),
    }
}

/// This device's SKDM for `group` (creating its sender key on first use), wrapped in the `Message` that is
/// encrypted pairwise for each device that needs it. `own` is this device's address in the group (its LID).
pub async fn distribution_message<A: AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    group: &Jid,
    own: &Jid,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<Message, whatsapp_signal::Error> {
    let skdm =
        whatsapp_signal::store::create_distribution_message(stage, &sender_key_name(group, own), rng).await?;
    Ok(Message {
        sender_key_distribution_message: Some(SkdmProto {
            group_id: Some(group.to_string()),
            axolotl_sender_key_distribution_message: Some(skdm.serialized().to_vec()),
        }),
        ..Default::default()
    })
}

/// Pads and encrypts a serialized `Message` with this device's sender key for `group`: the `skmsg` bytes.
pub async fn encrypt<A: AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    group: &Jid,
    own: &Jid,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<Vec<u8>, whatsapp_signal::Error> {
    let padded = padding::pad(plaintext, rng);
    let message =
        whatsapp_signal::store::group_encrypt(stage, &sender_key_name(group, own), &padded, rng).await?;
    Ok(message.serialized().to_vec())
}

/// The group `<message>`: SKDM copies in `<participants>` (may be empty), then the `skmsg` for everyone, with
/// the attributes of its message (whatsmeow `send.go` sendGroup: `decrypt-fail` on the pairwise copies,
/// `mediatype` on the `skmsg` only). The caller adds `phash` and, for a LID group, `addressing_mode`.
pub fn message_stanza(
    id: &str,
    group: &Jid,
    attrs: &StanzaAttrs,
    skdm_copies: &[Encrypted],
    skmsg: &[u8],
    device_identity: &[u8],
) -> Node {
    let mut children = Vec::new();
    if !skdm_copies.is_empty() {
        children
            .push(Node::new("participants").children(skdm_copies.iter().map(|copy| attrs.group_copy(copy))));
    }
    children.push(attrs.skmsg(skmsg));
    if skdm_copies.iter().any(|copy| copy.message.kind() == "pkmsg") {
        children.push(Node::new("device-identity").bytes(device_identity.to_vec()));
    }
    let stanza = Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", group.clone());
    attrs.stanza(stanza, children)
}

/// The `<message>` to `status@broadcast`: like a group message, but the server does not know the audience, so
/// `<participants>` names every recipient device, with an `<enc>` (the SKDM copy) only for those in `skdm_copies`
/// and an empty `<to jid>` for the devices that already hold the sender key (whatsmeow `sendGroup` for broadcast
/// lists).
pub fn status_stanza(
    id: &str,
    attrs: &StanzaAttrs,
    recipients: &[Jid],
    skdm_copies: &[Encrypted],
    skmsg: &[u8],
    device_identity: &[u8],
) -> Node {
    let to = |device: &Jid| match skdm_copies.iter().find(|copy| &copy.device == device) {
        Some(copy) => attrs.group_copy(copy),
        None => Node::new("to").attr("jid", device.clone()),
    };
    let mut children = vec![Node::new("participants").children(recipients.iter().map(to))];
    children.push(attrs.skmsg(skmsg));
    if skdm_copies.iter().any(|copy| copy.message.kind() == "pkmsg") {
        children.push(Node::new("device-identity").bytes(device_identity.to_vec()));
    }
    let stanza = Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", Jid::status_broadcast());
    attrs.stanza(stanza, children)
}

/// Stores the sender key a group member distributed (the SKDM inside a decrypted pairwise `Message`).
pub async fn process_distribution<A: AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    group: &Jid,
    sender: &Jid,
    skdm: &SkdmProto,
) -> Result<(), whatsapp_signal::Error> {
    let bytes = skdm.axolotl_sender_key_distribution_message.as_deref().ok_or(
        whatsapp_signal::Error::MissingField {
            field: "axolotlSenderKeyDistributionMessage",
        },
    )?;
    let message = SenderKeyDistributionMessage::deserialize(bytes)?;
    whatsapp_signal::store::process_distribution_message(stage, &sender_key_name(group, sender), &message)
        .await
}

/// Decrypts an `skmsg` from `sender` in `group` and strips the padding.
pub async fn decrypt<A: AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    group: &Jid,
    sender: &Jid,
    ciphertext: &[u8],
) -> Result<Vec<u8>, whatsapp_signal::Error> {
    let message = SenderKeyMessage::deserialize(ciphertext)?;
    let padded =
        whatsapp_signal::store::group_decrypt(stage, &sender_key_name(group, sender), &message).await?;
    Ok(padding::unpad(&padded)?.to_vec())
}

/// The pairwise plaintext of an SKDM copy.
pub fn encode(message: &Message) -> Vec<u8> {
    message.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use whatsapp_store::MemoryBackend;

    use crate::message::{EncKind, IncomingMessage, encrypt_for_devices};
    use crate::testing::{bundle, device_with_prekey};

    #[test]
    fn group_info_lists_participants() {
        let answer = Node::new("iq").children([Node::new("group")
            .attr("id", "123-456")
            .attr("subject", "Friends")
            .children([
                Node::new("participant").attr("jid", Jid::new("111", Jid::DEFAULT_USER_SERVER)),
                Node::new("participant")
                    .attr("jid", Jid::new("222", Jid::DEFAULT_USER_SERVER))
                    .attr("type", "admin"),
            ])]);
        let info = parse_group_info(&answer).unwrap();
        assert_eq!(info.jid, Jid::new("123-456", Jid::GROUP_SERVER));
        assert_eq!(info.subject, "Friends");
        assert_eq!(info.participants.len(), 2);
        assert!(info.participants[1].is_admin);
        assert_eq!(
            parse_group_info(&Node::new("iq")),
            Err(crate::ResponseError::Missing("group"))
        );
        let query = group_info_query(&info.jid);
        assert_eq!(query.jid_attr("to").unwrap(), info.jid);
    }

    #[test]
    fn a_member_reads_the_group_message_after_the_distribution() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(31);
            let backend = MemoryBackend::new();
            let (alice, alice_device) = device_with_prekey(&backend, &mut rng).await;
            let (bob, bob_device) = device_with_prekey(&backend, &mut rng).await;
            let group = Jid::new("123-456", Jid::GROUP_SERVER);
            let alice_jid = Jid::with_device("111", Jid::LID_SERVER, 1);
            let bob_jid = Jid::with_device("222", Jid::LID_SERVER, 1);

            // Alice: a session with Bob's device, her SKDM for it, and the skmsg.
            let stage = StagedSignalStore::new(&alice, &alice_device);
            whatsapp_signal::store::process_bundle(
                &stage,
                &protocol_address(&bob_jid),
                &bundle(&bob, &bob_device).await,
                &mut rng,
            )
            .await
            .unwrap();
            let skdm = distribution_message(&stage, &group, &alice_jid, &mut rng)
                .await
                .unwrap();
            let copies =
                encrypt_for_devices(&stage, std::slice::from_ref(&bob_jid), &encode(&skdm), &mut rng)
                    .await
                    .unwrap();
            let text = Message {
                conversation: Some("hello group".to_owned()),
                ..Default::default()
            };
            let skmsg = encrypt(&stage, &group, &alice_jid, &encode(&text), &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            let stanza = message_stanza(
                "G1",
                &group,
                &StanzaAttrs::of(&Message::default()),
                &copies,
                &skmsg,
                b"identity",
            );
            assert!(stanza.child("device-identity").is_some());

            // What Bob's device receives: its SKDM copy and the skmsg, from the group with Alice as participant.
            let copy = stanza
                .child("participants")
                .unwrap()
                .child("to")
                .unwrap()
                .child("enc")
                .unwrap()
                .clone();
            let delivered = Node::new("message")
                .attr("from", group.clone())
                .attr("participant", alice_jid.clone())
                .attr("id", "G1")
                .attr("type", "text")
                .children([copy, stanza.child("enc").unwrap().clone()]);
            let parsed = IncomingMessage::parse(&delivered).unwrap();
            assert_eq!(parsed.chat, group);
            assert_eq!(parsed.sender, alice_jid);
            assert_eq!(parsed.payloads[1].kind, EncKind::SenderKey);

            let stage = StagedSignalStore::new(&bob, &bob_device);
            // Without the distribution the skmsg does not decrypt.
            assert!(
                decrypt(&stage, &group, &alice_jid, &parsed.payloads[1].ciphertext)
                    .await
                    .is_err()
            );
            let pairwise = crate::message::decrypt(&stage, &alice_jid, &parsed.payloads[0], &mut rng)
                .await
                .unwrap();
            let skdm = Message::decode(pairwise.as_slice())
                .unwrap()
                .sender_key_distribution_message
                .unwrap();
            process_distribution(&stage, &group, &alice_jid, &skdm)
                .await
                .unwrap();
            let plaintext = decrypt(&stage, &group, &alice_jid, &parsed.payloads[1].ciphertext)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            assert_eq!(Message::decode(plaintext.as_slice()).unwrap(), text);

            // Alice's next message needs no distribution.
            let stage = StagedSignalStore::new(&alice, &alice_device);
            let second = encrypt(&stage, &group, &alice_jid, b"\x0a\x03two", &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            let stanza = message_stanza(
                "G2",
                &group,
                &StanzaAttrs::of(&Message::default()),
                &[],
                &second,
                b"identity",
            );
            assert!(stanza.child("participants").is_none());
            assert!(stanza.child("device-identity").is_none());
            let stage = StagedSignalStore::new(&bob, &bob_device);
            assert_eq!(
                decrypt(&stage, &group, &alice_jid, &second).await.unwrap(),
                b"\x0a\x03two"
            );
        });
    }
}
