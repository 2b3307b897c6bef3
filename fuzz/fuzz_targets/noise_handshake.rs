//! Fuzzes the Noise handshake message parsers: a responder reading an arbitrary ClientHello, an initiator reading an
//! arbitrary ServerHello, and a responder reading an arbitrary ClientFinish after a valid hello. Each may fail,
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_noise::{
    ChainParams, Initiator, KeyPair, PrivateKey, Responder, ResponderIdentity, TrustRoot, issue_chain,
};

const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let mut rng = StdRng::seed_from_u64(7);
    let root = PrivateKey::generate(&mut rng);
    let intermediate = PrivateKey::generate(&mut rng);
    let server_static = KeyPair::generate(&mut rng);
    let chain = issue_chain(
        &ChainParams {
            root: &root,
            intermediate: &intermediate,
            server_static: &server_static.public,
            intermediate_serial: 1,
            not_before: 0,
            not_after: NOW + 3600,
        },
        &mut rng,
    );
    let identity = ResponderIdentity {
        static_key: server_static,
        cert_chain: chain,
    };
    let trust = TrustRoot::custom(root.public_key());

    let _ = Responder::generate(&mut rng).read_client_hello(data, &identity);
    let _ = Initiator::generate(&mut rng).read_server_hello(data, &trust, NOW);

    let initiator = Initiator::generate(&mut rng);
    if let Ok((responder, _server_hello)) =
        Responder::generate(&mut rng).read_client_hello(&initiator.client_hello(), &identity)
    {
        let _ = responder.read_client_finish(data);
    }
});
