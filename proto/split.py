#!/usr/bin/env python3
"""Regenerates the files of this directory from a single WAProto.proto: python3 proto/split.py WAProto.proto proto

Each top-level message and enum goes to the module of the area it belongs to; cross-file references are
qualified with the target package; the import graph must stay acyclic; unlabeled fields become `required`."""
import re, sys, collections
src = open(sys.argv[1]).read()
outdir = sys.argv[2]
# Top-level blocks.
blocks = collections.OrderedDict()
i = 0
lines = src.split('\n')
pat = re.compile(r'^(message|enum) (\w+) \{')
text = src
pos = 0
for m in re.finditer(r'^(message|enum) (\w+) \{', text, re.M):
    start = m.start()
    depth = 0
    j = m.end() - 1
    while True:
        c = text[j]
        if c == '{': depth += 1
        elif c == '}':
            depth -= 1
            if depth == 0: break
        j += 1
    blocks[m.group(2)] = text[start:j+1]
names = set(blocks)
def nested(body):
    return set(re.findall(r'^\s+(?:message|enum) (\w+) \{', body, re.M))
TYPE_RE = re.compile(r'(^\s*(?:optional |repeated |required )?|map<\s*\w+\s*,\s*)([A-Z]\w*)((?:\.\w+)*)(?=\s*>?\s*\w+\s*=\s*\d+)', re.M)
def refs(name):
    body = blocks[name]
    nest = nested(body)
    out = set()
    for m in TYPE_RE.finditer(body):
        t = m.group(2)
        if t in names and t not in nest and t != name:
            out.add(t)
    return out
deps = {n: refs(n) for n in names}
seeds = {
  'adv': [n for n in names if n.startswith('ADV')],
  'cert': ['CertChain', 'NoiseCertificate'],
  'handshake': ['HandshakeMessage', 'ClientPayload'],
  'companion_reg': ['DeviceProps', 'ClientPairingProps', 'CompanionEphemeralIdentity', 'CompanionCommitment', 'EncryptedPairingRequest', 'PairingRequest', 'PrimaryEphemeralIdentity', 'ProloguePayload'],
  'signal': ['PreKeySignalMessage', 'SignalMessage', 'SenderKeyMessage', 'SenderKeyDistributionMessage', 'KeyExchangeMessage', 'SessionStructure', 'RecordStructure', 'PreKeyRecordStructure', 'SignedPreKeyRecordStructure', 'IdentityKeyPairStructure', 'SenderKeyRecordStructure', 'SenderKeyStateStructure'],
  'server_sync': [n for n in names if n.startswith('Syncd')] + ['ExternalBlobReference', 'KeyId', 'ExitCode', 'PatchDebugData'],
  'sync_action': ['SyncActionValue', 'SyncActionData'],
  'history_sync': ['HistorySync', 'HistorySyncMsg', 'Conversation', 'WebMessageInfo', 'WebNotificationsInfo'],
  'mms_retry': ['MediaRetryNotification', 'ServerErrorReceipt'],
  'e2e': ['Message'],
}
mod = {}
for m, ns in seeds.items():
    for n in ns:
        assert n in names, n
        mod[n] = m
def reach(roots):
    seen = set(); st = list(roots)
    while st:
        n = st.pop()
        for d in deps[n]:
            if d not in seen and d not in mod:
                seen.add(d); st.append(d)
    return seen
e2e_reach = reach(seeds['e2e'])
for n in e2e_reach: mod[n] = 'e2e'
for m, ns in seeds.items():
    if m == 'e2e': continue
    for n in sorted(reach(ns)):
        if n in mod: 
            if mod[n] != m and mod[n] != 'e2e': mod[n] = 'e2e'
        else:
            mod[n] = m
for n in names:
    mod.setdefault(n, 'e2e')
# Recompute: a type reached from two non-e2e modules was moved to e2e; its deps must be in e2e too.
changed = True
while changed:
    changed = False
    for n in names:
        if mod[n] == 'e2e':
            for d in deps[n]:
                if mod[d] != 'e2e' and d not in sum(seeds.values(), []):
                    mod[d] = 'e2e'; changed = True
imports = collections.defaultdict(set)
for n in names:
    for d in deps[n]:
        if mod[d] != mod[n]: imports[mod[n]].add(mod[d])
# cycle check
def cyc():
    state = {}
    def dfs(u, path):
        state[u] = 1
        for v in imports[u]:
            if state.get(v) == 1: raise SystemExit('cycle %s -> %s (%s)' % (path, v, [ (n,d) for n in names for d in deps[n] if mod[n]==u and mod[d]==v]))
            if v not in state: dfs(v, path+[v])
        state[u] = 2
    for u in list(imports): 
        if u not in state: dfs(u, [u])
cyc()
def rewrite(name):
    body = blocks[name]
    nest = nested(body)
    me = mod[name]
    def sub(m):
        t = m.group(2)
        if t in names and t not in nest and mod[t] != me:
            return m.group(1) + mod[t] + '.' + t + m.group(3)
        return m.group(0)
    return TYPE_RE.sub(sub, body)
for m in sorted(set(mod.values())):
    members = [n for n in blocks if mod[n] == m]
    out = ['// WhatsApp protobuf schema, module `%s`.' % m,
           '// Split from WAProto.proto of @whiskeysockets/baileys (MIT); see proto/README.md.',
           'syntax = "proto2";', 'package %s;' % m, '']
    for imp in sorted(imports[m]):
        out.append('import "%s.proto";' % imp)
    if imports[m]: out.append('')
    for n in members:
        out.append(rewrite(n)); out.append('')
    open('%s/%s.proto' % (outdir, m), 'w').write('\n'.join(out))
    print(m, len(members), sorted(imports[m]))

# proto2 needs a label on every field outside a oneof; the source left `required` fields unlabeled.
import glob
FIELD = re.compile(r'^(\s+)([A-Za-z_][\w.]*) (\w+) = (\d+)(.*);')
for path in glob.glob('%s/*.proto' % outdir):
    out = []
    stack = []
    for line in open(path).read().split('\n'):
        s = line.strip()
        m = FIELD.match(line)
        if m and (not stack or stack[-1] != 'oneof') and m.group(2) not in ('optional', 'repeated', 'required', 'reserved', 'option') and not s.startswith('map<'):
            line = '%srequired %s' % (m.group(1), line.lstrip())
        if s.endswith('{'):
            stack.append(s.split()[0])
        elif s.startswith('}'):
            stack.pop()
        out.append(line)
    open(path, 'w').write('\n'.join(out))
