//! `Debug` of every key-holding type prints no key bytes: app-state sync keys, their expanded mutation keys and
//! the patch builder that holds them.

use whatsapp_appstate::{AppStateKey, PatchBuilder};

/// Fails if `text` shows any 8-byte run of `secret` as lower or upper hex, or as the decimal or hex list that
/// `{:?}` / `{:x?}` print for byte slices.
fn assert_hidden(text: &str, secret: &[u8], what: &str) {
    assert!(secret.len() >= 8, "{what}: too short to check");
    let lower = text.to_lowercase();
    for run in secret.windows(8) {
        let hex: String = run.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!lower.contains(&hex), "{what} shown as hex in {text}");
        let decimal = format!("{run:?}");
        assert!(
            !text.contains(&decimal[1..decimal.len() - 1]),
            "{what} shown as a decimal list in {text}"
        );
        let hex_list = format!("{run:x?}");
        assert!(
            !lower.contains(&hex_list[1..hex_list.len() - 1]),
            "{what} shown as a hex list in {text}"
        );
    }
}

#[test]
fn app_state_keys_and_builders_hide_key_material() {
    let data: Vec<u8> = (0..32u8).map(|i| 0x60 + i).collect();
    let key = AppStateKey::new(data.clone());
    let keys = key.expand();
    let builder = PatchBuilder::new(vec![0, 0, 0, 1, 0, 0xa1], &key);
    let secrets = [
        ("key data", data.as_slice()),
        ("index key", keys.index().as_slice()),
        ("value encryption key", keys.value_encryption().as_slice()),
        ("value MAC key", keys.value_mac().as_slice()),
        ("snapshot MAC key", keys.snapshot_mac().as_slice()),
        ("patch MAC key", keys.patch_mac().as_slice()),
    ];
    for text in [format!("{key:?}"), format!("{keys:#?}"), format!("{builder:?}")] {
        for (what, secret) in secrets {
            assert_hidden(&text, secret, what);
        }
    }
    // The key id is not secret and stays visible.
    assert!(format!("{builder:?}").contains("0000000100a1"));
}
