//! The hostile-server faults: what a broken or malicious server may send a logged-in client. Stanzas that make no
//! sense, frames that are not binary nodes, frame headers that claim more than ever follows, frames dribbled a
//! byte at a time, replays of message copies already delivered, and acks held back.
//!
//! The switches live in [`Hostile`] (in the server state); the connection task asks [`before_send`] how to write
//! each stanza and runs an [`Act`] when a test orders one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use whatsapp_binary::{Jid, Node};
use whatsapp_noise::{NoiseSocket, SocketError};

use crate::routing::Queued;
use crate::state::{Command, Shared, State};

/// The hostile switches and what they need to remember.
#[derive(Debug, Default)]
pub(crate) struct Hostile {
    /// The last message copy written to each device, for replays.
    last_message: HashMap<Jid, Node>,
    /// Devices whose next message copy is written one byte per WebSocket message, with this pause between bytes.
    dribble_next: HashMap<Jid, Duration>,
    /// Devices whose next message copy is written twice in one WebSocket message.
    twice_next: HashSet<Jid>,
    /// How long the server holds back its acks of the messages clients send.
    pub(crate) ack_delay: Duration,
}

/// Something a connection task is told to do to its client's byte stream.
#[derive(Debug)]
pub(crate) enum Act {
    /// Encrypt these bytes as one frame, whatever they are.
    Frame(Vec<u8>),
    /// Write a frame header claiming `claimed` bytes, then `filler` bytes of it, then nothing ever again: the
    /// connection reads and ignores whatever the client sends until it is dropped or the client leaves.
    HeaderThenSilence {
        /// The length the header claims.
        claimed: u32,
        /// How many bytes of the claimed frame follow.
        filler: usize,
    },
}

/// How the connection writes a stanza.
pub(crate) enum Write {
    /// As one frame, at once.
    Whole,
    /// One byte per WebSocket message, pausing between bytes.
    Dribble(Duration),
    /// Later: the stanza was handed to a task that sends it after the delay.
    Deferred,
    /// Twice, both frames in one WebSocket message.
    Twice,
}

/// Called before the connection of `device` writes `node`: remembers message copies for replays, and says how to
/// write it.
pub(crate) fn before_send(
    shared: &Shared,
    tx: &mpsc::UnboundedSender<Command>,
    device: Option<&Jid>,
    node: &Node,
) -> Write {
    let mut state = shared.lock();
    if node.tag == "ack"
        && node.optional_str_attr("class") == Some("message")
        && !state.hostile.ack_delay.is_zero()
    {
        let delay = state.hostile.ack_delay;
        let tx = tx.clone();
        let frame = whatsapp_binary::encode_frame(node);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The connection may have ended meanwhile; then the ack is lost, as it would be in the network.
            let _ = tx.send(Command::Hostile(Act::Frame(frame)));
        });
        return Write::Deferred;
    }
    let Some(device) = device else {
        return Write::Whole;
    };
    if node.tag != "message" {
        return Write::Whole;
    }
    state.hostile.last_message.insert(device.clone(), node.clone());
    if state.hostile.twice_next.remove(device) {
        return Write::Twice;
    }
    match state.hostile.dribble_next.remove(device) {
        Some(pause) => Write::Dribble(pause),
        None => Write::Whole,
    }
}

/// Arms the dribbling of the next message copy for `device`.
pub(crate) fn dribble_next_message(state: &mut State, device: &Jid, pause: Duration) {
    state.hostile.dribble_next.insert(device.clone(), pause);
}

/// Arms the double write of the next message copy for `device`.
pub(crate) fn send_next_message_twice(state: &mut State, device: &Jid) {
    state.hostile.twice_next.insert(device.clone());
}

/// Sends `device` the last message copy it was sent again, under `id` (queued until acked, as any copy), and
/// returns whether there was one and the device is connected.
pub(crate) fn replay(state: &mut State, device: &Jid, id: Option<String>) -> bool {
    let Some(mut copy) = state.hostile.last_message.get(device).cloned() else {
        return false;
    };
    if let Some(id) = id {
        copy = copy.attr("id", id);
    }
    let Some(id) = copy.optional_str_attr("id").map(str::to_owned) else {
        return false;
    };
    let Some((_, conn)) = state.conn_of(device) else {
        return false;
    };
    let sent = conn.tx.send(Command::Send(copy.clone())).is_ok();
    state.inboxes.entry(device.clone()).or_default().push(Queued {
        class: "message",
        id,
        stanza: copy,
    });
    sent
}

/// Writes an already-encoded frame payload one byte per WebSocket message, pausing between bytes.
pub(crate) async fn dribble(
    socket: &mut NoiseSocket<TcpStream>,
    plaintext: &[u8],
    pause: Duration,
) -> Result<(), SocketError> {
    let mut sealed = BytesMut::new();
    socket.seal_frame(plaintext, &mut sealed)?;
    for byte in sealed.iter() {
        socket.send_raw(Bytes::copy_from_slice(&[*byte])).await?;
        tokio::time::sleep(pause).await;
    }
    Ok(())
}

/// Runs `act` on the connection; `Ok(false)` when the connection must end afterwards.
pub(crate) async fn perform(
    socket: &mut NoiseSocket<TcpStream>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    act: Act,
) -> Result<bool, SocketError> {
    match act {
        Act::Frame(plaintext) => {
            socket.send_frame(&plaintext).await?;
            Ok(true)
        }
        Act::HeaderThenSilence { claimed, filler } => {
            let claimed = claimed.min(0xFF_FFFF);
            let mut bytes = claimed.to_be_bytes()[1..].to_vec();
            bytes.resize(3 + filler, 0x5A);
            socket.send_raw(Bytes::from(bytes)).await?;
            loop {
                tokio::select! {
                    frame = socket.recv_frame() => match frame {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => return Ok(false),
                    },
                    command = commands.recv() => match command {
                        Some(Command::Abort | Command::Close(_)) | None => return Ok(false),
                        Some(Command::Send(_) | Command::Hostile(_)) => {}
                    },
                }
            }
        }
    }
}
