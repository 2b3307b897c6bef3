//! The conformance suite on the in-memory backend, driven by a minimal executor (the backend's futures are
//! always ready, so no runtime is needed).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use whatsapp_store::{MemoryBackend, conformance};

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[test]
fn memory_backend_passes_the_conformance_suite() {
    block_on(conformance::run(&MemoryBackend::new()));
}
