// The package works outside the repository: `npm pack`, install the tarball into a new project in
// a temporary folder, import it by name and talk to a real broker started by this test.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { startBroker } from '../testing/broker.js';

const run = promisify(execFile);
const PKG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let broker;
let tmp;

before(async () => {
  broker = await startBroker();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'a2a-node-pack-'));
});

after(async () => {
  await broker?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const SCRIPT = `
import { BrokerClient, PROTO_DIR } from 'a2a-broker-client';
const client = new BrokerClient(process.argv[1], { timeoutMs: 10000 });
await client.register({ agentId: 'from-a-tarball', maxConcurrentTasks: 1 });
const { agents } = await client.listAgents();
client.close();
console.log(JSON.stringify({ protoDir: PROTO_DIR, agents: agents.map((a) => a.agentId) }));
`;

test('npm pack, install the tarball in another project, import it and reach a broker', { timeout: 180000 }, async () => {
  // Packed from a copy laid out as in the repository: `npm pack` copies the protos into the package's
  // folder while it runs, and the other test files, running meanwhile, load them from that folder.
  const stage = path.join(tmp, 'repo', 'clients', 'node');
  for (const entry of ['package.json', 'README.md', 'src', 'scripts']) {
    fs.cpSync(path.join(PKG, entry), path.join(stage, entry), { recursive: true });
  }
  fs.cpSync(path.join(PKG, '..', '..', 'protos'), path.join(tmp, 'repo', 'protos'), { recursive: true });
  const { stdout: packed } = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: stage, timeout: 60000 });
  const [{ filename, files }] = JSON.parse(packed);
  const shipped = files.map((f) => f.path);
  assert.ok(shipped.includes('protos/a2a/broker/v1/tasks.proto'), `no protos in the package: ${shipped}`);
  assert.ok(!shipped.some((f) => f.startsWith('test/') || f.startsWith('node_modules/')), `${shipped}`);
  assert.ok(!fs.existsSync(path.join(stage, 'protos')), 'the copy of the protos was left in the source folder');
  assert.ok(!fs.existsSync(path.join(PKG, 'protos')), 'the protos were copied into the repository');

  const project = path.join(tmp, 'project');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-the-client', version: '1.0.0', private: true, type: 'module' }));
  // The dependencies come from npm's cache (filled by `npm ci`), or the registry.
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(tmp, filename)], {
    cwd: project,
    timeout: 120000,
  });
  const env = { ...process.env };
  delete env.A2A_BROKER_PROTO_DIR;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', SCRIPT, broker.address], { cwd: project, env, timeout: 30000 });
  const out = JSON.parse(stdout);
  assert.equal(out.protoDir, path.join(project, 'node_modules', 'a2a-broker-client', 'protos'));
  assert.ok(out.agents.includes('from-a-tarball'), stdout);
});
