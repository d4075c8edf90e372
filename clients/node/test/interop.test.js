// The Node.js client against a real broker started by this test, with the
// Python client on the other side (testing/pyside.py).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Agent, BrokerClient, BrokerError, decodePayload, grpc, toDate } from '../src/index.js';
import { pyside, startBroker } from '../testing/broker.js';

const here = path.dirname(fileURLToPath(import.meta.url));
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

const within = (ms, promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref()),
  ]);

test('registry calls and error mapping from Node', { timeout: 30000 }, async () => {
  const reg = await client.register({ agentId: 'node-1', capabilities: ['node', 'js'], maxConcurrentTasks: 2 });
  assert.equal(reg.created, true);
  assert.deepEqual(reg.agent.capabilities, ['js', 'node']);
  assert.equal(reg.agent.status, 'AGENT_STATUS_AVAILABLE');
  assert.ok(toDate(reg.agent.registeredAt) instanceof Date);

  const hb = await client.heartbeat('node-1', { status: 'AGENT_STATUS_BUSY' });
  assert.equal(hb.agent.status, 'AGENT_STATUS_BUSY');
  const listed = await client.listAgents({ capability: 'node' });
  assert.deepEqual(listed.agents.map((a) => a.agentId), ['node-1']);

  await assert.rejects(client.getAgent('nobody'), (err) => {
    assert.ok(err instanceof BrokerError);
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(err.codeName, 'NOT_FOUND');
    return true;
  });
  await assert.rejects(client.register({ agentId: 'bad', maxConcurrentTasks: 0 }), (err) => {
    assert.equal(err.codeName, 'INVALID_ARGUMENT');
    assert.match(err.details, /max_concurrent_tasks/);
    return true;
  });
});

test('a Node agent receives a message sent from Python and acks it', { timeout: 30000 }, async () => {
  await client.register({ agentId: 'node-1', capabilities: ['node', 'js'], maxConcurrentTasks: 2 });
  const stream = client.subscribe('node-1', { ackDeadlineSeconds: 30 });
  const sent = await pyside(broker.address, 'send', 'py-sender', 'node-1', JSON.stringify({ hello: 'from python' }));
  const received = await within(
    10000,
    (async () => {
      for await (const msg of stream) return msg;
      throw new Error('stream ended');
    })(),
    'message from Python',
  );
  assert.equal(received.messageId, sent.message_id);
  assert.equal(received.senderId, 'py-sender');
  assert.equal(received.contentType, 'application/json');
  assert.deepEqual(decodePayload(received.payload, received.contentType), { hello: 'from python' });
  assert.equal(received.attempt, 1);
  const ack = await client.ack('node-1', [received.messageId]);
  assert.equal(ack.acked, 1);
  stream.cancel();
  const seen = await pyside(broker.address, 'message', sent.message_id);
  assert.deepEqual(seen, { status: 'processed', attempt: 1, payload: { hello: 'from python' } });
});

test('a Node agent claims a task submitted from Python and completes it; Python sees the result', { timeout: 60000 }, async () => {
  await client.register({ agentId: 'node-1', capabilities: ['node', 'js'], maxConcurrentTasks: 2 });
  const { task_id: taskId } = await pyside(broker.address, 'submit', 'add numbers', 'node', JSON.stringify({ a: 2, b: 3 }));
  const claimed = await client.claim('node-1', { maxTasks: 1, waitSeconds: 10 });
  assert.equal(claimed.assignments.length, 1);
  const [{ task, attempt }] = claimed.assignments;
  assert.equal(task.taskId, taskId);
  assert.equal(task.status, 'TASK_STATUS_RUNNING');
  const { a, b } = decodePayload(task.spec.payload, task.spec.contentType);
  await client.extendLease(taskId, 'node-1', attempt, { progress: 50, statusNote: 'adding' });
  const done = await client.complete(taskId, 'node-1', attempt, { sum: a + b });
  assert.equal(done.task.status, 'TASK_STATUS_COMPLETED');
  await assert.rejects(client.complete(taskId, 'node-1', attempt, {}), (err) => err.codeName === 'FAILED_PRECONDITION');

  const seen = await pyside(broker.address, 'wait-task', taskId, '20');
  assert.deepEqual(seen, { status: 'completed', result: { sum: 5 }, attempt: 1, agent: 'node-1' });
});

test('getTree from Node reads every page of a large subtree', { timeout: 60000 }, async () => {
  const { task: root } = await client.submit({ title: 'tree root' });
  const nodes = Array.from({ length: 250 }, (_, i) => ({ key: `c${i}`, task: { title: `c${i}`, parentId: root.taskId } }));
  await client.submitGraph(nodes);
  const tree = await client.getTree(root.taskId, { pageSize: 100 });
  assert.equal(tree.tasks.length, 251); // three pages of 100
  assert.equal(tree.tasks[0].taskId, root.taskId);
  assert.equal(new Set(tree.tasks.map((t) => t.taskId)).size, 251);
  assert.equal(tree.nextPageToken, '');
  const shallow = await client.getTree(root.taskId, { maxDepth: 1 });
  assert.equal(shallow.tasks.length, 251);
});

test('completeBatch from Node: each item judged on its own', { timeout: 60000 }, async () => {
  await client.register({ agentId: 'node-batch', capabilities: ['batch'], maxConcurrentTasks: 2 });
  const ids = [];
  for (const n of [1, 2]) {
    const { task_id: id } = await pyside(broker.address, 'submit', `batch ${n}`, 'batch', JSON.stringify({ n }));
    ids.push(id);
  }
  const claimed = await client.claim('node-batch', { maxTasks: 2, waitSeconds: 10 });
  assert.equal(claimed.assignments.length, 2);
  const [first, second] = claimed.assignments;
  const out = await client.completeBatch([
    { taskId: first.task.taskId, agentId: 'node-batch', attempt: first.attempt, result: { ok: 1 } },
    { taskId: second.task.taskId, agentId: 'node-batch', attempt: second.attempt + 1 },
  ]);
  assert.equal(out.results[0].code, grpc.status.OK);
  assert.equal(out.results[0].task.status, 'TASK_STATUS_COMPLETED');
  assert.equal(out.results[1].code, grpc.status.FAILED_PRECONDITION);
  const stillRunning = await client.getTask(second.task.taskId);
  assert.equal(stillRunning.status, 'TASK_STATUS_RUNNING');
});

test('the Agent helper handles pushed messages and tasks', { timeout: 60000 }, async () => {
  const messages = [];
  let gotMessage;
  const messageSeen = new Promise((resolve) => {
    gotMessage = resolve;
  });
  const agent = new Agent({
    client,
    agentId: 'node-agent',
    capabilities: ['translate'],
    capacity: 2,
    onMessage: async (msg) => {
      messages.push(msg.data);
      gotMessage();
    },
    onTask: async (ctx) => {
      await ctx.progress(50, 'translating');
      return { text: ctx.data.text.toUpperCase() };
    },
  });
  await agent.start();
  try {
    const sent = await pyside(broker.address, 'send', 'py-sender', 'node-agent', JSON.stringify({ ping: 1 }));
    const { task_id: taskId } = await pyside(broker.address, 'submit', 'translate', 'translate', JSON.stringify({ text: 'hola' }));
    await within(10000, messageSeen, 'message pushed to the Agent');
    assert.deepEqual(messages, [{ ping: 1 }]);
    const seen = await pyside(broker.address, 'wait-task', taskId, '20');
    assert.deepEqual(seen, { status: 'completed', result: { text: 'HOLA' }, attempt: 1, agent: 'node-agent' });
    let status;
    for (let i = 0; i < 100 && status !== 'processed'; i++) {
      ({ status } = await pyside(broker.address, 'message', sent.message_id));
    }
    assert.equal(status, 'processed');
    assert.equal(agent.stats.completed, 1);
  } finally {
    await agent.stop({ drainMs: 2000 });
  }
  await assert.rejects(client.getAgent('node-agent'), (err) => err.codeName === 'NOT_FOUND');
});

test('the example agent processes a task from Python and stops on SIGTERM', { timeout: 60000 }, async () => {
  const proc = spawn(process.execPath, [path.join(here, '..', 'examples', 'agent.js')], {
    env: { ...process.env, A2A_BROKER_ADDRESS: broker.address, AGENT_ID: 'node-example-test' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise((resolve) => {
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
  });
  const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  try {
    await within(20000, ready, 'example agent ready');
    const { task_id: taskId } = await pyside(broker.address, 'submit', 'shout', 'uppercase', JSON.stringify({ text: 'hi' }));
    const seen = await pyside(broker.address, 'wait-task', taskId, '20');
    assert.deepEqual(seen, { status: 'completed', result: { text: 'HI' }, attempt: 1, agent: 'node-example-test' });
    proc.kill('SIGTERM');
    assert.equal(await within(20000, exited, 'example agent exit'), 0);
    assert.match(out, /stopped/);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
  await assert.rejects(client.getAgent('node-example-test'), (err) => err.codeName === 'NOT_FOUND');
});
