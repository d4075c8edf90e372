// Breaking out of any stream iterator cancels its call: a process that reads one item from
// consume(), work(), subscribe(), listen(), watchAgents() or watchTasks(), breaks, and closes
// the client exits on its own (the README's loops), against a real broker started by this test.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

import { BrokerClient } from '../src/index.js';
import { startBroker } from '../testing/broker.js';

const INDEX = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'index.js')).href;
const EXIT_WITHIN_MS = 10000;

let broker;
let client;

before(async () => {
  broker = await startBroker();
  client = new BrokerClient(broker.address, { timeoutMs: 10000 });
});

after(async () => {
  client?.close();
  await broker?.stop();
});

/**
 * Run `body` (an ES module fragment with `client` in scope) in a child node process; resolves to
 * {code, output, ms} once it exits, or {code: null} when it is still running after EXIT_WITHIN_MS
 * (then killed).
 */
function runChild(body) {
  const source = `
import { BrokerClient } from ${JSON.stringify(INDEX)};
const client = new BrokerClient(${JSON.stringify(broker.address)}, { timeoutMs: 10000 });
${body}
client.close();
console.log('closed');
`;
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_WITHIN_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: signal ? null : code, output, ms: Date.now() - started });
    });
  });
}

async function assertExits(body) {
  const { code, output, ms } = await runChild(body);
  assert.match(output, /closed/, `the loop did not end: ${output}`);
  assert.notEqual(code, null, `still running ${EXIT_WITHIN_MS} ms after client.close(): ${output}`);
  assert.equal(code, 0, output);
  return ms;
}

test('break out of consume() then close(): the process exits', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'x-consume', maxConcurrentTasks: 1 });
  await client.send('x-consume', 'x-consume', 'hello');
  await assertExits(`
const messages = client.consume('x-consume');
for await (const msg of messages) {
  await messages.ack(msg.messageId);
  break;
}`);
});

test('break out of work() then close(): the process exits', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'x-work', maxConcurrentTasks: 1, capabilities: ['x-work'] });
  await client.submit({ title: 'exit test', requiredCapabilities: ['x-work'] });
  await assertExits(`
const work = client.work('x-work');
for await (const { assignments } of work) {
  for (const { task, attempt } of assignments) await work.complete(task.taskId, attempt, { ok: true });
  break;
}`);
});

test('break out of subscribe() and listen() then close(): the process exits', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'x-sub', maxConcurrentTasks: 1, capabilities: ['x-listen'] });
  await client.send('x-sub', 'x-sub', 'hello');
  await client.submit({ title: 'exit test', requiredCapabilities: ['x-listen'] });
  await assertExits(`
for await (const msg of client.subscribe('x-sub')) break;
for await (const ev of client.listen('x-sub')) break;`);
});

test('break out of watchAgents() and watchTasks() then close(): the process exits', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'x-watch', maxConcurrentTasks: 1 });
  const { task } = await client.submit({ title: 'watched', requiredCapabilities: ['nobody'] });
  await assertExits(`
for await (const ev of client.watchAgents({ includeSnapshot: true })) break;
for await (const ev of client.watchTasks({ taskId: ${JSON.stringify(task.taskId)}, includeSnapshot: true })) break;`);
});

test('close() while loops wait on consume() and work() ends them, and the process exits', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'x-idle', maxConcurrentTasks: 1 });
  await assertExits(`
const loops = [client.consume('x-idle'), client.work('x-idle'), client.subscribe('x-idle')].map(async (s) => {
  for await (const item of s) throw new Error('nothing was sent');
});
await client.waitReady(5000);
client.close();
await Promise.all(loops); // they end quietly`);
});
