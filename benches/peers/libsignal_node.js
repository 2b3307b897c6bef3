// Peer benchmark: the same 1:1 operations as benches/benches/signal.rs, run on libsignal-node
// (npm `libsignal` 6.0.0, WhiskeySockets/libsignal-node), to compare in the same run.
//
// Usage: mkdir /tmp/peer && cd /tmp/peer && npm install libsignal@6.0.0
//        NODE_PATH=/tmp/peer/node_modules node benches/peers/libsignal_node.js
// libsignal-node has no sender-key cipher, so only sessions and X3DH are measured.
'use strict';

const libsignal = require('libsignal');

// libsignal-node logs every closed session and ratchet step; printing would dominate the timings.
for (const level of ['log', 'info', 'warn', 'debug']) console[level] = () => {};
const print = (line) => process.stdout.write(line + '\n');

class Store {
    constructor(identity, registrationId) {
        this.identity = identity;
        this.registrationId = registrationId;
        this.sessions = new Map();
        this.preKeys = new Map();
        this.signedPreKeys = new Map();
    }
    async getOurIdentity() { return this.identity; }
    async getOurRegistrationId() { return this.registrationId; }
    async isTrustedIdentity() { return true; }
    async loadSession(id) { return this.sessions.get(id); }
    async storeSession(id, record) { this.sessions.set(id, record); }
    async loadPreKey(id) { return this.preKeys.get(id); }
    async removePreKey(id) { this.preKeys.delete(id); }
    async loadSignedPreKey(id) { return this.signedPreKeys.get(id); }
}

function device(registrationId) {
    const store = new Store(libsignal.keyhelper.generateIdentityKeyPair(), registrationId);
    const signed = libsignal.keyhelper.generateSignedPreKey(store.identity, 1);
    store.signedPreKeys.set(1, signed.keyPair);
    return { store, signed };
}

function bundle(dev, preKeyId) {
    const preKey = libsignal.keyhelper.generatePreKey(preKeyId);
    dev.store.preKeys.set(preKeyId, preKey.keyPair);
    return {
        identityKey: dev.store.identity.pubKey,
        registrationId: dev.store.registrationId,
        preKey: { keyId: preKeyId, publicKey: preKey.keyPair.pubKey },
        signedPreKey: { keyId: 1, publicKey: dev.signed.keyPair.pubKey, signature: dev.signed.signature },
    };
}

async function measure(name, count, body) {
    const start = process.hrtime.bigint();
    await body();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    print(`${name.padEnd(32)} ${Math.round(count / seconds).toString().padStart(10)} ops/s`);
}

async function main() {
    const N = Number(process.env.N || 2000);
    const plaintext = Buffer.alloc(120, 0x61);
    const alice = device(1111);
    const bob = device(2222);
    const aliceAddr = new libsignal.ProtocolAddress('alice', 0);
    const bobAddr = new libsignal.ProtocolAddress('bob', 1);

    await measure('x3dh_setup (process bundle)', N, async () => {
        const b = bundle(bob, 1);
        for (let i = 0; i < N; i++) {
            await new libsignal.SessionBuilder(alice.store, bobAddr).initOutgoing(b);
        }
    });

    // Establish a fresh session and acknowledge it, so later messages are plain `msg`.
    alice.store.sessions.clear();
    await new libsignal.SessionBuilder(alice.store, bobAddr).initOutgoing(bundle(bob, 2));
    const toBob = new libsignal.SessionCipher(alice.store, bobAddr);
    const toAlice = new libsignal.SessionCipher(bob.store, aliceAddr);
    const first = await toBob.encrypt(plaintext);
    await toAlice.decryptPreKeyWhisperMessage(first.body);
    await new libsignal.SessionCipher(alice.store, bobAddr).decryptWhisperMessage((await toAlice.encrypt(plaintext)).body);

    const messages = [];
    await measure('encrypt (within chain)', N, async () => {
        for (let i = 0; i < N; i++) messages.push((await toBob.encrypt(plaintext)).body);
    });
    await measure('decrypt (within chain)', N, async () => {
        for (const body of messages) await toAlice.decryptWhisperMessage(body);
    });
    const fromBob = new libsignal.SessionCipher(alice.store, bobAddr);
    await measure('encrypt+decrypt (DH ratchet step)', N, async () => {
        for (let i = 0; i < N / 2; i++) {
            await toAlice.decryptWhisperMessage((await toBob.encrypt(plaintext)).body);
            await fromBob.decryptWhisperMessage((await toAlice.encrypt(plaintext)).body);
        }
    });
}

main().catch((error) => { console.error(error); process.exit(1); });
