//! Generates the prost types from the schema in the workspace's `proto/` directory.
//!
//! protox compiles the `.proto` files in pure Rust, so no system `protoc` is needed.
//!
//! Messages that carry secret bytes (media keys, message secrets, private keys, chain keys, tokens) do not get
//! prost's derived `Debug`: this script writes a `Debug` impl for each of them instead, which prints every field
//! as prost would except the secret ones, shown only by their length. Every `bytes` field whose name looks like key
//! material must be listed as [`SECRET`] or [`NOT_SECRET`]; an unlisted one fails the build, so a schema update
//! cannot bring in a key that `{:?}` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

/// The schema modules, one file each under `proto/`.
const MODULES: &[&str] = &[
    "adv",
    "cert",
    "companion_reg",
    "e2e",
    "handshake",
    "history_sync",
    "mms_retry",
    "server_sync",
    "signal",
    "sync_action",
];

/// `bytes` fields that hold secrets, as `package.Message[.Nested].field`: `Debug` shows only their length.
const SECRET: &[&str] = &[
    // Media keys: whoever has one can decrypt the file.
    "e2e.Message.ImageMessage.mediaKey",
    "e2e.Message.VideoMessage.mediaKey",
    "e2e.Message.AudioMessage.mediaKey",
    "e2e.Message.DocumentMessage.mediaKey",
    "e2e.Message.StickerMessage.mediaKey",
    "e2e.Message.StickerPackMessage.mediaKey",
    "e2e.Message.ExtendedTextMessage.mediaKey",
    "e2e.Message.HistorySyncNotification.mediaKey",
    "e2e.Message.InvoiceMessage.attachmentMediaKey",
    "e2e.Message.MMSThumbnailMetadata.mediaKey",
    "e2e.Message.MessageHistoryBundle.mediaKey",
    "e2e.Message.PeerDataOperationRequestResponseMessage.PeerDataOperationResult.LinkPreviewResponse.\
     LinkPreviewHighQualityThumbnail.mediaKey",
    "e2e.EmbeddedMusic.artworkMediaKey",
    "e2e.PaymentBackground.MediaData.mediaKey",
    "history_sync.StickerMetadata.mediaKey",
    "server_sync.ExternalBlobReference.mediaKey",
    "sync_action.SyncActionValue.StickerAction.mediaKey",
    // App-state keys, message secrets and the keys of end-to-end features.
    "e2e.Message.AppStateSyncKeyData.keyData",
    "e2e.Message.BCallMessage.masterKey",
    "e2e.Message.Call.callKey",
    "e2e.Message.PollCreationMessage.encKey",
    "e2e.MessageContextInfo.messageSecret",
    "e2e.MessageContextInfo.botMessageSecret",
    "e2e.MsgOpaqueData.messageSecret",
    "e2e.MsgOpaqueData.botMessageSecret",
    "e2e.ContextInfo.ephemeralSharedSecret",
    "history_sync.WebMessageInfo.messageSecret",
    "mms_retry.MediaRetryNotification.messageSecret",
    "e2e.Message.SenderKeyDistributionMessage.axolotlSenderKeyDistributionMessage",
    "companion_reg.PairingRequest.advSecret",
    "history_sync.HistorySync.threadIdUserSecret",
    "history_sync.HistorySync.shareableChatIdentifierEncryptionKey",
    // The salt `cstoken`s are derived from.
    "history_sync.HistorySync.nctSalt",
    // Signal: private keys, chain and root keys, sender-key seeds.
    "signal.IdentityKeyPairStructure.privateKey",
    "signal.SignedPreKeyRecordStructure.privateKey",
    "signal.PreKeyRecordStructure.privateKey",
    "signal.SenderKeyDistributionMessage.chainKey",
    "signal.SenderKeyStateStructure.SenderChainKey.seed",
    "signal.SenderKeyStateStructure.SenderMessageKey.seed",
    "signal.SenderKeyStateStructure.SenderSigningKey.private",
    "signal.SessionStructure.rootKey",
    "signal.SessionStructure.Chain.ChainKey.key",
    "signal.SessionStructure.Chain.MessageKey.cipherKey",
    "signal.SessionStructure.Chain.MessageKey.macKey",
    "signal.SessionStructure.Chain.senderRatchetKeyPrivate",
    "signal.SessionStructure.PendingKeyExchange.localBaseKeyPrivate",
    "signal.SessionStructure.PendingKeyExchange.localRatchetKeyPrivate",
    "signal.SessionStructure.PendingKeyExchange.localIdentityKeyPrivate",
    // Tokens that authenticate the account to the server or to a contact.
    "e2e.BotLinkedAccountsMetadata.acAuthTokens",
    "handshake.ClientPayload.InteropData.token",
    "history_sync.Conversation.tcToken",
];

/// `bytes` fields whose names look like key material but that hold public keys, key ids, hashes or signatures.
const NOT_SECRET: &[&str] = &[
    "adv.ADVSignedDeviceIdentity.accountSignatureKey",
    "adv.ADVSignedKeyIndexList.accountSignatureKey",
    "cert.CertChain.NoiseCertificate.Details.key",
    "cert.NoiseCertificate.Details.key",
    "companion_reg.CompanionEphemeralIdentity.publicKey",
    "companion_reg.PairingRequest.companionPublicKey",
    "companion_reg.PairingRequest.companionIdentityKey",
    "companion_reg.PrimaryEphemeralIdentity.publicKey",
    "e2e.DeviceListMetadata.senderKeyHash",
    "e2e.DeviceListMetadata.recipientKeyHash",
    "e2e.Message.AppStateSyncKeyId.keyId",
    "handshake.ClientPayload.DevicePairingRegistrationData.eKeytype",
    "handshake.ClientPayload.DevicePairingRegistrationData.eSkeyId",
    "handshake.ClientPayload.DevicePairingRegistrationData.eSkeyVal",
    "handshake.ClientPayload.DevicePairingRegistrationData.eSkeySig",
    "history_sync.Conversation.contactPrimaryIdentityKey",
    "server_sync.PatchDebugData.firstFourBytesFromAHashOfSnapshotMacKey",
    "signal.IdentityKeyPairStructure.publicKey",
    "signal.KeyExchangeMessage.baseKey",
    "signal.KeyExchangeMessage.ratchetKey",
    "signal.KeyExchangeMessage.identityKey",
    "signal.KeyExchangeMessage.baseKeySignature",
    "signal.PreKeyRecordStructure.publicKey",
    "signal.PreKeySignalMessage.baseKey",
    "signal.PreKeySignalMessage.identityKey",
    "signal.SenderKeyDistributionMessage.signingKey",
    "signal.SessionStructure.aliceBaseKey",
    "signal.SessionStructure.Chain.senderRatchetKey",
    "signal.SessionStructure.PendingKeyExchange.localBaseKey",
    "signal.SessionStructure.PendingKeyExchange.localRatchetKey",
    "signal.SessionStructure.PendingKeyExchange.localIdentityKey",
    "signal.SessionStructure.PendingPreKey.baseKey",
    "signal.SignalMessage.ratchetKey",
    "signal.SignedPreKeyRecordStructure.publicKey",
];

/// Whether a `bytes` field's name suggests key material, so it must be classified.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "key",
        "secret",
        "seed",
        "token",
        "private",
        "password",
        "passphrase",
        "salt",
    ]
    .iter()
    .any(|word| name.contains(word))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let proto_dir = manifest.join("../../proto");
    let files: Vec<PathBuf> = MODULES
        .iter()
        .map(|m| proto_dir.join(format!("{m}.proto")))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&proto_dir])?;

    let redacted = redacted_messages(&descriptors)?;
    prost_build::Config::new()
        .skip_debug(redacted.keys().map(|message| format!(".{message}")))
        .compile_fds(descriptors.clone())?;
    write_debug_impls(&descriptors, &redacted, &out_dir)?;
    Ok(())
}

/// The messages with at least one secret field, by full name, with the names of their secret fields.
fn redacted_messages(set: &FileDescriptorSet) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut redacted = BTreeMap::new();
    let mut unclassified = Vec::new();
    let mut seen = Vec::new();
    for file in &set.file {
        let package = file.package();
        for message in &file.message_type {
            walk(package, message, &mut |name, message| {
                for field in &message.field {
                    if field.r#type() != Type::Bytes {
                        continue;
                    }
                    let path = format!("{name}.{}", field.name());
                    if SECRET.contains(&path.as_str()) {
                        seen.push(path.clone());
                        if field.oneof_index.is_some() {
                            unclassified.push(format!("{path} (secret inside a oneof is not supported)"));
                        }
                        redacted
                            .entry(name.to_owned())
                            .or_insert_with(Vec::new)
                            .push(field.name().to_owned());
                    } else if NOT_SECRET.contains(&path.as_str()) {
                        seen.push(path);
                    } else if looks_secret(field.name()) {
                        unclassified.push(path);
                    }
                }
            });
        }
    }
    let stale: Vec<&&str> = SECRET
        .iter()
        .chain(NOT_SECRET)
        .filter(|path| !seen.iter().any(|s| s == *path))
        .collect();
    if !unclassified.is_empty() || !stale.is_empty() {
        return Err(format!(
            "classify these bytes fields in whatsapp-proto/build.rs (SECRET or NOT_SECRET): {unclassified:?}; \
             listed but not in the schema: {stale:?}"
        ));
    }
    Ok(redacted)
}

/// Calls `visit` with the full name of `message` and of every message nested in it.
fn walk(scope: &str, message: &DescriptorProto, visit: &mut impl FnMut(&str, &DescriptorProto)) {
    let name = format!("{scope}.{}", message.name());
    visit(&name, message);
    for nested in &message.nested_type {
        walk(&name, nested, visit);
    }
}

/// Writes `<package>_debug.rs` next to each generated module, with the `Debug` impls that prost no longer derives:
/// prost-build's `skip_debug` also drops `Debug` from every type nested in a redacted message, so those get one
/// here too (messages field by field, oneofs by variant, enums by their schema name).
fn write_debug_impls(
    set: &FileDescriptorSet,
    redacted: &BTreeMap<String, Vec<String>>,
    out_dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut by_package: BTreeMap<&str, String> = MODULES.iter().map(|m| (*m, String::new())).collect();
    for file in &set.file {
        let package = file.package();
        let Some(code) = by_package.get_mut(package) else {
            continue;
        };
        for message in &file.message_type {
            let mut result = Ok(());
            walk(package, message, &mut |name, message| {
                let covered = redacted.keys().any(|root| {
                    name == root
                        || name
                            .strip_prefix(root.as_str())
                            .is_some_and(|r| r.starts_with('.'))
                });
                if covered && result.is_ok() {
                    let secrets = redacted.get(name).map_or(&[][..], Vec::as_slice);
                    result = debug_impls(code, name, message, secrets);
                }
            });
            result?;
        }
    }
    for (package, code) in by_package {
        std::fs::write(out_dir.join(format!("{package}_debug.rs")), code)?;
    }
    Ok(())
}

/// Appends to `code` the `Debug` impls of one message, of its oneofs and of the enums declared in it.
fn debug_impls(
    code: &mut String,
    name: &str,
    message: &DescriptorProto,
    secrets: &[String],
) -> std::fmt::Result {
    let path = rust_path(name);
    let module = module_path(name);
    writeln!(code, "impl ::core::fmt::Debug for {path} {{")?;
    writeln!(
        code,
        "    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{"
    )?;
    writeln!(code, "        let mut s = f.debug_struct({:?});", message.name())?;
    let mut oneofs_done = Vec::new();
    for field in &message.field {
        // proto3 `optional` fields sit in a synthetic oneof but are plain `Option` fields in Rust.
        let real_oneof = field.oneof_index.filter(|_| !field.proto3_optional());
        if let Some(index) = real_oneof {
            if oneofs_done.contains(&index) {
                continue;
            }
            oneofs_done.push(index);
            let ident = field_ident(message.oneof_decl[index as usize].name());
            writeln!(
                code,
                "        s.field({:?}, &self.{ident});",
                ident.trim_start_matches("r#")
            )?;
            continue;
        }
        let ident = field_ident(field.name());
        let label = ident.trim_start_matches("r#");
        let value = if secrets.iter().any(|s| s == field.name()) {
            format!("&crate::Redacted(&self.{ident})")
        } else if field.r#type() == Type::Enum {
            enum_value(field, &format!("&self.{ident}"))
        } else {
            format!("&self.{ident}")
        };
        writeln!(code, "        s.field({label:?}, {value});")?;
    }
    writeln!(code, "        s.finish()")?;
    writeln!(code, "    }}")?;
    writeln!(code, "}}")?;

    for (index, oneof) in message.oneof_decl.iter().enumerate() {
        let variants: Vec<_> = message
            .field
            .iter()
            .filter(|f| f.oneof_index == Some(index as i32) && !f.proto3_optional())
            .collect();
        if variants.is_empty() {
            continue;
        }
        let oneof_path = format!("{module}::{}", camel(oneof.name()));
        writeln!(code, "impl ::core::fmt::Debug for {oneof_path} {{")?;
        writeln!(
            code,
            "    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{"
        )?;
        writeln!(code, "        match self {{")?;
        for field in variants {
            let variant = camel(field.name());
            let value = if field.r#type() == Type::Enum {
                enum_value(field, "value")
            } else {
                "value".to_owned()
            };
            writeln!(
                code,
                "            Self::{variant}(value) => f.debug_tuple({variant:?}).field({value}).finish(),"
            )?;
        }
        writeln!(code, "        }}")?;
        writeln!(code, "    }}")?;
        writeln!(code, "}}")?;
    }

    for nested in &message.enum_type {
        writeln!(
            code,
            "impl ::core::fmt::Debug for {module}::{} {{",
            camel(nested.name())
        )?;
        writeln!(
            code,
            "    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{"
        )?;
        writeln!(code, "        f.write_str(self.as_str_name())")?;
        writeln!(code, "    }}")?;
        writeln!(code, "}}")?;
    }
    Ok(())
}

/// The expression that prints an enum-typed field (an `i32`, optional or not) by variant name; repeated enum
/// fields print their numbers.
fn enum_value(field: &FieldDescriptorProto, place: &str) -> String {
    if field.label() == Label::Repeated {
        return place.to_owned();
    }
    let enum_path = rust_path(field.type_name().trim_start_matches('.'));
    format!("&crate::EnumField::<_, {enum_path}>({place}, ::core::marker::PhantomData)")
}

/// The Rust module prost puts the types nested in a message in: `crate::package::outer::inner`.
fn module_path(full_name: &str) -> String {
    let (package, relative) = full_name.split_once('.').unwrap_or(("", full_name));
    let mut path = format!("crate::{package}");
    for part in relative.split('.') {
        path.push_str("::");
        path.push_str(&field_ident(part));
    }
    path
}

/// A type name as prost writes it: upper camel case, `Self` suffixed.
fn camel(name: &str) -> String {
    let mut ident = name.to_upper_camel_case();
    if ident == "Self" {
        ident.push('_');
    }
    ident
}

/// The Rust path of a message or enum, from the crate root, as prost names it: `package::outer::Inner`. The
/// schema's package names are single words, the first part of every full name.
fn rust_path(full_name: &str) -> String {
    let (package, relative) = full_name.split_once('.').unwrap_or(("", full_name));
    let parts: Vec<&str> = relative.split('.').collect();
    let mut path = format!("crate::{package}");
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            path.push_str("::");
            path.push_str(&camel(part));
        } else {
            path.push_str("::");
            path.push_str(&field_ident(part));
        }
    }
    path
}

/// A field or module name as prost writes it: snake case, keywords raw (or suffixed where they cannot be raw).
fn field_ident(name: &str) -> String {
    let ident = name.to_snake_case();
    match ident.as_str() {
        "self" | "super" | "extern" | "crate" => format!("{ident}_"),
        "as" | "break" | "const" | "continue" | "else" | "enum" | "false" | "fn" | "for" | "if" | "impl"
        | "in" | "let" | "loop" | "match" | "mod" | "move" | "mut" | "pub" | "ref" | "return" | "static"
        | "struct" | "trait" | "true" | "type" | "unsafe" | "use" | "where" | "while" | "dyn"
        | "abstract" | "become" | "box" | "do" | "final" | "macro" | "override" | "priv" | "typeof"
        | "unsized" | "virtual" | "yield" | "async" | "await" | "try" | "gen" => format!("r#{ident}"),
        _ => ident,
    }
}
