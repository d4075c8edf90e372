// The Node.js client against a broker with --auth token and mutual TLS: the token and the
// TLS files come from the options or the environment.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { BrokerClient, grpc } from '../src/index.js';
import { PYTHON, REPO, startBroker } from '../testing/broker.js';

const run = promisify(execFile);
let broker;
let dir;
let files;
// Every process warning of this file's process (the tests below connect to 127.0.0.1).
const warnings = [];
process.on('warning', (w) => warnings.push(`${w.name} ${w.code ?? ''}: ${w.message}`));

// Certificates made by the Python tests' helper: a server CA and a client CA.
const CERTS = `
import sys
from pathlib import Path
sys.path.insert(0, ${JSON.stringify(REPO)})
from tests.integration.tls_support import CA, write_server_files
d = Path(sys.argv[1])
ca, clients = CA(), CA("clients")
write_server_files(d, ca, clients)
(d / "ca.pem").write_bytes(ca.pem)
c = clients.issue("host-1")
(d / "client.pem").write_bytes(c.cert)
(d / "client.key").write_bytes(c.key)
`;

async function token(agent, role = 'agent') {
  const { stdout } = await run(PYTHON, ['-m', 'broker', '--json', 'tokens', '--db', path.join(dir, 'broker.db'), 'create', '--agent', agent, '--role', role], { cwd: REPO });
  return JSON.parse(stdout).token;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'a2a-node-sec-'));
  await run(PYTHON, ['-c', CERTS, dir], { cwd: REPO });
  // (the broker's certificate names 127.0.0.1 and localhost)
  files = { ca: path.join(dir, 'ca.pem'), clientCert: path.join(dir, 'client.pem'), clientKey: path.join(dir, 'client.key') };
  broker = await startBroker({
    dir,
    env: {
      A2A_BROKER_AUTH: 'token',
      A2A_BROKER_TLS_CERT: path.join(dir, 'server.pem'),
      A2A_BROKER_TLS_KEY: path.join(dir, 'server.key'),
      A2A_BROKER_TLS_CLIENT_CA: path.join(dir, 'client-ca.pem'),
    },
  });
});

after(async () => {
  await broker?.stop();
});

test('a token over mutual TLS names the agent; another agent id is refused', async () => {
  const client = new BrokerClient(broker.address, { timeoutMs: 10000, token: await token('n1'), ...files });
  try {
    const res = await client.register({ agentId: 'n1', maxConcurrentTasks: 1 });
    assert.equal(res.agent.agentId, 'n1');
    await assert.rejects(client.register({ agentId: 'n2', maxConcurrentTasks: 1 }), (err) => err.code === grpc.status.PERMISSION_DENIED);
  } finally {
    client.close();
  }
});

test('a bad token is UNAUTHENTICATED; a plaintext client does not get through', async () => {
  const bad = new BrokerClient(broker.address, { timeoutMs: 10000, retries: 0, token: 'a2a.x.y', ...files });
  const plain = new BrokerClient(broker.address, { timeoutMs: 3000, retries: 0, tls: false });
  try {
    await assert.rejects(bad.register({ agentId: 'n1', maxConcurrentTasks: 1 }), (err) => err.code === grpc.status.UNAUTHENTICATED);
    await assert.rejects(plain.register({ agentId: 'n1', maxConcurrentTasks: 1 }), (err) => err.code === grpc.status.UNAVAILABLE);
  } finally {
    bad.close();
    plain.close();
  }
});

test('credentials come from A2A_BROKER_TOKEN, A2A_BROKER_CA and the client certificate variables', async () => {
  const env = { A2A_BROKER_TOKEN: await token('n3'), A2A_BROKER_CA: files.ca, A2A_BROKER_CLIENT_CERT: files.clientCert, A2A_BROKER_CLIENT_KEY: files.clientKey };
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const client = new BrokerClient(broker.address, { timeoutMs: 10000 });
    try {
      const res = await client.register({ agentId: 'n3', maxConcurrentTasks: 1 });
      assert.equal(res.agent.agentId, 'n3');
    } finally {
      client.close();
    }
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k];
  }
});

test('TLS to 127.0.0.1 sets no IP address as the TLS server name (no DEP0123 warning); a host name still verifies', async () => {
  const client = new BrokerClient(broker.address, { timeoutMs: 10000, token: await token('n4'), ...files });
  const named = new BrokerClient(`localhost:${broker.port}`, { timeoutMs: 10000, token: await token('n5'), ...files });
  try {
    assert.equal((await client.register({ agentId: 'n4', maxConcurrentTasks: 1 })).agent.agentId, 'n4');
    assert.equal((await named.register({ agentId: 'n5', maxConcurrentTasks: 1 })).agent.agentId, 'n5');
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.deepEqual(warnings.filter((w) => /ServerName|DEP0123/.test(w)), []);
  } finally {
    client.close();
    named.close();
  }
});
