//! Established Signal sessions between one account (ours, in a `whatsapp-store` backend) and many remote devices:
//! the starting point of the group-send and receive benchmarks.
//!
//! Each remote device is a full peer: it publishes a bundle, our account starts a session from it and sends a
//! `pkmsg`, the peer answers with a `msg`, and our account decrypts the answer. Afterwards both sides hold an
//! acknowledged session, so our next message to the peer is a plain `msg` (no `pkmsg`, no device identity), as
//! in a chat that has been going on for a while.

#![allow(clippy::expect_used, clippy::panic, reason = "benchmark set-up fails loudly")]

use rand::rngs::StdRng;
use whatsapp_binary::Jid;
use whatsapp_core::message::protocol_address;
use whatsapp_core::signal_store::StagedSignalStore;
use whatsapp_signal::{
    CiphertextMessage, KeyPair, LocalIdentity, PreKeyBundle, PreKeySignalMessage, PreKeysForMessage,
    SessionRecord, padding,
};
use whatsapp_store::{AccountStore, Device};

/// A remote device with its side of the session.
#[derive(Debug)]
pub struct Peer {
    /// Its device JID.
    pub jid: Jid,
    /// Its identity.
    pub identity: LocalIdentity,
    /// Its session with our account.
    pub record: SessionRecord,
}

/// `count` device JIDs of LID users, four devices per user (0, 1, 2 and 3), as in a large group.
pub fn device_jids(count: usize) -> Vec<Jid> {
    (0..count)
        .map(|n| Jid::with_device(format!("1{:014}", n / 4), Jid::LID_SERVER, (n % 4) as u16))
        .collect()
}

/// The pad-and-encrypt input of a typical text message (a serialized `Message` with a 60-character text).
pub fn text_message() -> whatsapp_proto::e2e::Message {
    whatsapp_proto::e2e::Message {
        conversation: Some("Are we still meeting at the station at six? Bring the tickets.".to_owned()),
        ..Default::default()
    }
}

/// Establishes an acknowledged session between `account` (whose keys are `device`'s) and each of `devices`, and
/// commits our side in one transaction. Panics on failure: this is benchmark set-up.
pub async fn establish<A: AccountStore>(
    account: &A,
    device: &Device,
    devices: &[Jid],
    rng: &mut StdRng,
) -> Vec<Peer> {
    let stage = StagedSignalStore::new(account, device);
    let mut peers = Vec::with_capacity(devices.len());
    for (n, jid) in devices.iter().enumerate() {
        let identity = LocalIdentity {
            identity: KeyPair::generate(rng),
            registration_id: n as u32 + 1,
        };
        let signed = KeyPair::generate(rng);
        let one_time = KeyPair::generate(rng);
        let bundle = PreKeyBundle {
            registration_id: identity.registration_id,
            identity_key: identity.identity.public,
            signed_pre_key_id: 1,
            signed_pre_key: signed.public,
            signed_pre_key_signature: identity
                .identity
                .private
                .sign(&signed.public.serialize(), rng)
                .to_vec(),
            pre_key: Some((7, one_time.public)),
        };
        let address = protocol_address(jid);
        whatsapp_signal::store::process_bundle(&stage, &address, &bundle, rng)
            .await
            .expect("process bundle");
        let first = whatsapp_signal::store::encrypt(&stage, &address, &padding::pad(b"hi", rng))
            .await
            .expect("first message");
        let first = PreKeySignalMessage::deserialize(first.serialized()).expect("pkmsg");
        let mut record = SessionRecord::new();
        whatsapp_signal::decrypt_pre_key(
            &mut record,
            &identity,
            &first,
            &PreKeysForMessage {
                signed_pre_key: signed,
                pre_key: Some(one_time),
            },
            rng,
        )
        .expect("peer decrypts the pkmsg");
        let reply = whatsapp_signal::encrypt(&mut record, &padding::pad(b"hello", rng)).expect("reply");
        let CiphertextMessage::Whisper(reply) = reply else {
            panic!("an answer is a msg")
        };
        whatsapp_signal::store::decrypt(&stage, &address, &reply, rng)
            .await
            .expect("our side decrypts the reply");
        peers.push(Peer {
            jid: jid.clone(),
            identity,
            record,
        });
    }
    stage.commit().await.expect("commit the sessions");
    peers
}
