//! Fuzzes the Noise handshake message parsers: a responder reading an arbitrary ClientHello, an initiator reading an
//! arbitrary ServerHello, a responder reading an arbitrary ClientFinish after a valid hello, and the certificate
//! chain check on arbitrary bytes. Each may fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_noise::{Initiator, Responder, self_issued_identity, verify_chain};

const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let mut rng = StdRng::seed_from_u64(7);
    let (identity, trust) = self_issued_identity(&mut rng, 0, NOW + 3600);

    let _ = Responder::generate(&mut rng).read_client_hello(data, &identity);
    let _ = Initiator::generate(&mut rng).read_server_hello(data, &trust, NOW);
    let _ = verify_chain(data, &trust, identity.static_key.public.as_bytes(), NOW);

    let initiator = Initiator::generate(&mut rng);
    if let Ok((responder, _server_hello)) =
        Responder::generate(&mut rng).read_client_hello(&initiator.client_hello(), &identity)
    {
        let _ = responder.read_client_finish(data);
    }
});
