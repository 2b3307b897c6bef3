//! `Debug` of every key-holding type prints no key bytes: app-state sync keys, their expanded mutation keys and
//! the patch builder that holds them.

use whatsapp_appstate::{AppStateKey, PatchBuilder};
use whatsapp_test_support::assert_hidden;

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
