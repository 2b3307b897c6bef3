//! Checks shared by the tests of the workspace's crates. Not published: the crates list it only as a
//! dev-dependency.
//!
//! Every crate that holds key material has a `tests/secrets.rs` asserting that `{:?}` and `{:#?}` of its
//! key-holding types print no key bytes; they fill the keys with [`known`] bytes and look for them with
//! [`assert_hidden`].

/// 32 distinct known bytes: `start`, `start + 1`, ... (wrapping).
pub fn known(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// Panics if `text` shows any 8-byte run of `secret` as lower- or upper-case hex, or as the decimal or hex list
/// that `{:?}` / `{:x?}` print for byte slices. `what` names the secret in the panic message.
///
/// # Panics
///
/// When the secret is shown, or when `secret` is shorter than 8 bytes (too short to tell from chance).
pub fn assert_hidden(text: &str, secret: &[u8], what: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bytes_count_up_from_start() {
        assert_eq!(known(0xfe)[..3], [0xfe, 0xff, 0x00]);
    }

    #[test]
    fn hidden_secrets_pass() {
        assert_hidden("Key { len: 32 }", &known(0x40), "key");
    }

    #[test]
    #[should_panic(expected = "shown as hex")]
    fn hex_is_caught() {
        let secret = known(0x40);
        let text: String = secret.iter().map(|b| format!("{b:02X}")).collect();
        assert_hidden(&text, &secret, "key");
    }

    #[test]
    #[should_panic(expected = "shown as a decimal list")]
    fn debug_of_bytes_is_caught() {
        let secret = known(0x40);
        assert_hidden(&format!("{:?}", &secret[4..20]), &secret, "key");
    }

    #[test]
    #[should_panic(expected = "shown as a hex list")]
    fn hex_debug_of_bytes_is_caught() {
        let secret = known(0xa0);
        assert_hidden(&format!("{:x?}", &secret[..]), &secret, "key");
    }
}
